"""icr_pull_secret and sa_pull_secret against the real local kube-apiserver.

Each test runs the real modules through ansible-playbook, then checks the cluster
with the `fixture` identity and counts the module's own requests (user `admin`) in
the API server's audit log.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading

import pytest
from kubernetes import client as k8s

from containerd.containerd_lab import Registry, make_pki, missing_binaries, write_oci_image
from reliability.common import wait_for_service_accounts

pytestmark = pytest.mark.cluster

CANARY_KEY = "CANARY-iam-key-7f3a9c"
CANARY_PASSWORD = "CANARY-password-51d2e8"


@pytest.fixture
def core(kube_fixture_client):
    return k8s.CoreV1Api(kube_fixture_client)


def dockerconfig(core, namespace, name):
    secret = core.read_namespaced_secret(name, namespace)
    assert secret.type == "kubernetes.io/dockerconfigjson"
    assert set(secret.data) == {".dockerconfigjson"}
    return json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))


def pull_refs(core, namespace, sa="default"):
    return [ref.name for ref in core.read_namespaced_service_account(sa, namespace).image_pull_secrets or []]


def wait_for_sa(core, namespace, sa="default"):
    wait_for_service_accounts(core, [namespace], sa, timeout=30)


def converge(runner, audit, prefix, task, check_first=True):
    """check mode, real run, rerun: returns the three results; asserts the write counts."""
    results = {}
    if check_first:
        mark = audit.mark()
        results["check"] = runner.run([dict(task, name="t")], check=True)
        assert results["check"].rc == 0, results["check"].stdout
        assert audit.writes(mark, namespace_prefix=prefix) == []
    mark = audit.mark()
    results["first"] = runner.run([dict(task, name="t")])
    assert results["first"].rc == 0, results["first"].stdout
    assert audit.writes(mark, namespace_prefix=prefix), "the first run wrote nothing"
    mark = audit.mark()
    results["second"] = runner.run([dict(task, name="t")])
    assert results["second"].rc == 0, results["second"].stdout
    assert results["second"]["t"]["changed"] is False
    assert audit.writes(mark, namespace_prefix=prefix) == []
    if check_first:
        assert results["check"]["t"]["changed"] is True
        assert results["first"]["t"]["changed"] is True
        assert [r["action"] for r in results["check"]["t"]["results"]] == \
            [r["action"] for r in results["first"]["t"]["results"]]
    return results


def test_iam_api_key_with_selector_and_default_service_account(runner, audit, unique_ns, core):
    names = [unique_ns("a"), unique_ns("b")]
    for name in names:
        core.patch_namespace(name, {"metadata": {"labels": {"it": unique_ns.prefix.strip("-")}}})
        wait_for_sa(core, name)
    task = {"ibmcloud.registry.icr_pull_secret": {
        "name": "team-icr-io", "iam_api_key": CANARY_KEY, "regions": ["us-south", "global"],
        "namespace_selector": ["it=%s" % unique_ns.prefix.strip("-")], "service_accounts": ["default"]}}
    runs = converge(runner, audit, unique_ns.prefix, task)
    first = runs["first"]["t"]
    assert first["counts"]["created"] == 2 and first["fingerprint"].startswith("scrypt:")
    assert first["servers"] == ["icr.io", "private.icr.io", "private.us.icr.io", "us.icr.io"]
    for name in names:
        auths = dockerconfig(core, name, "team-icr-io")["auths"]
        assert sorted(auths) == first["servers"]
        assert base64.b64decode(auths["us.icr.io"]["auth"]).decode() == "iamapikey:" + CANARY_KEY
        assert pull_refs(core, name) == ["team-icr-io"]
    # A no-op rerun is one LIST per resource type, whatever the number of namespaces.
    mark = audit.mark()
    runner.run([dict(task, name="t")])
    assert sum(audit.count(mark).values()) <= 3


def test_copy_all_icr_io_to_selected_namespaces_skipping_the_source(runner, audit, unique_ns, core):
    source_ns = unique_ns("src")
    targets = [unique_ns("x"), unique_ns("y")]
    label = unique_ns.prefix.strip("-")
    for name in [source_ns] + targets:
        core.patch_namespace(name, {"metadata": {"labels": {"it": label}}})
    source = {"auths": {"us.icr.io": {"username": "iamapikey", "password": "k", "auth": "aWFtYXBpa2V5Oms="}}}
    core.create_namespaced_secret(source_ns, {
        "metadata": {"name": "all-icr-io", "labels": {"from": "iks"}, "annotations": {"a": "b"}},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(source).encode()).decode()}})
    task = {"ibmcloud.registry.icr_pull_secret": {
        "copy_from": {"namespace": source_ns, "name": "all-icr-io"}, "namespace_selector": ["it=" + label]}}
    runs = converge(runner, audit, unique_ns.prefix, task)
    assert [r["namespace"] for r in runs["first"]["t"]["results"]] == sorted(targets)
    for name in targets:
        copied = core.read_namespaced_secret("all-icr-io", name)
        assert dockerconfig(core, name, "all-icr-io") == source
        assert copied.metadata.labels == {"app.kubernetes.io/managed-by": "ibmcloud.registry"}
        assert not copied.metadata.annotations and not copied.metadata.owner_references
    assert core.read_namespaced_secret("all-icr-io", source_ns).metadata.labels == {"from": "iks"}


def test_copy_source_missing_points_to_pull_secret_apply(runner, audit, unique_ns):
    target = unique_ns("t")
    mark = audit.mark()
    result = runner.run([{"name": "t", "ibmcloud.registry.icr_pull_secret": {
        "copy_from": {"namespace": "default", "name": "all-icr-io"}, "namespaces": [target]}}])
    assert result.rc != 0
    assert "ibmcloud ks cluster pull-secret apply" in result["t"]["msg"]
    assert audit.writes(mark, namespace_prefix=unique_ns.prefix) == []


def test_entitled_registry_and_unlink_on_absent(runner, audit, unique_ns, core):
    name = unique_ns("cp")
    wait_for_sa(core, name)
    core.patch_namespaced_service_account("default", name, {"imagePullSecrets": [{"name": "theirs"}]})
    task = {"ibmcloud.registry.icr_pull_secret": {
        "entitlement_key": CANARY_KEY, "namespaces": [name], "service_accounts": ["default"]}}
    converge(runner, audit, unique_ns.prefix, task)
    auths = dockerconfig(core, name, "entitled-cp-icr-io")["auths"]
    assert list(auths) == ["cp.icr.io"] and auths["cp.icr.io"]["username"] == "cp"
    assert pull_refs(core, name) == ["theirs", "entitled-cp-icr-io"]

    absent = {"ibmcloud.registry.icr_pull_secret": {
        "name": "entitled-cp-icr-io", "state": "absent", "namespaces": [name], "service_accounts": ["default"]}}
    runs = converge(runner, audit, unique_ns.prefix, absent)
    assert runs["first"]["t"]["results"][0]["action"] == "deleted"
    assert pull_refs(core, name) == ["theirs"]


def test_absent_leaves_secrets_it_did_not_create(runner, audit, unique_ns, core):
    name = unique_ns("keep")
    core.create_namespaced_secret(name, {"metadata": {"name": "theirs"}, "type": "kubernetes.io/dockerconfigjson",
                                         "data": {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()}})
    mark = audit.mark()
    result = runner.run([{"name": "t", "ibmcloud.registry.icr_pull_secret": {
        "name": "theirs", "state": "absent", "namespaces": [name]}}])
    assert result.rc != 0 and "not managed by ibmcloud.registry" in result["t"]["msg"]
    assert audit.writes(mark, namespace_prefix=unique_ns.prefix) == []
    assert core.read_namespaced_secret("theirs", name)


def test_sa_pull_secret_keeps_foreign_entries_in_order(runner, audit, unique_ns, core):
    name = unique_ns("sa")
    wait_for_sa(core, name)
    core.create_namespaced_service_account(name, {"metadata": {"name": "builder"}})
    core.patch_namespaced_service_account("builder", name, {
        "imagePullSecrets": [{"name": "builder-dockercfg-abc"}, {"name": "zz"}],
        "secrets": [{"name": "builder-token-x"}, {"name": "builder-dockercfg-abc"}]})
    task = {"ibmcloud.registry.sa_pull_secret": {
        "service_accounts": ["builder"], "secrets": ["icr-writer"], "link_for": ["pull", "mount"],
        "namespaces": [name], "missing_secret": "ignore"}}
    converge(runner, audit, unique_ns.prefix, task)
    # The option's first name still works, with a deprecation warning.
    args = dict(task["ibmcloud.registry.sa_pull_secret"])
    args["for"] = args.pop("link_for")
    old_name = runner.run([{"name": "t", "ibmcloud.registry.sa_pull_secret": args}])
    assert old_name.rc == 0 and old_name["t"]["changed"] is False
    assert any("for" in d["msg"] and "2.0.0" in d.get("version", "") for d in old_name["t"].get("deprecations", []))
    builder = core.read_namespaced_service_account("builder", name)
    assert [r.name for r in builder.image_pull_secrets] == ["builder-dockercfg-abc", "zz", "icr-writer"]
    # The token controller adds its own builder-token-*: it must survive too.
    mounted = [r.name for r in builder.secrets]
    assert mounted[:2] == ["builder-token-x", "builder-dockercfg-abc"] and mounted[-1] == "icr-writer"
    assert mounted.count("icr-writer") == 1


def test_sa_pull_secret_missing_secret_warns_or_fails(runner, unique_ns, core):
    name = unique_ns("miss")
    wait_for_sa(core, name)
    task = {"name": "t", "ibmcloud.registry.sa_pull_secret": {"secrets": ["nope"], "namespaces": [name]}}
    warned = runner.run([task], check=True)
    assert warned.rc == 0 and any("nope" in w for w in warned["t"].get("warnings", []))
    task["ibmcloud.registry.sa_pull_secret"]["missing_secret"] = "fail"
    failed = runner.run([task], check=True)
    assert failed.rc != 0 and "(not found)" in failed["t"]["msg"]


def test_new_namespace_default_sa_is_waited_for(runner, unique_ns, core):
    # Create the namespace in the same play, just before linking: default SA comes later.
    name = unique_ns.prefix + "new"
    result = runner.run([
        {"name": "ns", "kubernetes.core.k8s": {"kind": "Namespace", "name": name}},
        {"name": "t", "ibmcloud.registry.sa_pull_secret": {
            "secrets": ["all-icr-io"], "namespaces": [name], "missing_secret": "ignore"}}])
    assert result.rc == 0, result.stdout
    assert pull_refs(core, name) == ["all-icr-io"]


def test_missing_namespace_is_refused_before_any_write_or_skipped(runner, audit, unique_ns, core):
    ok, ghost = unique_ns("ok"), unique_ns.prefix + "ghost"
    wait_for_sa(core, ok)
    tasks = {
        "ibmcloud.registry.sa_pull_secret": {"secrets": ["x"], "missing_secret": "ignore"},
        "ibmcloud.registry.icr_pull_secret": {"name": "ghostly", "entitlement_key": CANARY_KEY},
    }
    for module, args in tasks.items():
        args = dict(args, namespaces=[ok, ghost])
        mark = audit.mark()
        refused = runner.run([{"name": "t", module: args}])
        assert refused.rc != 0
        assert refused["t"]["msg"].startswith("namespaces: %s does not exist;" % ghost), refused["t"]["msg"]
        assert audit.writes(mark, namespace_prefix=unique_ns.prefix) == []
        skipped = runner.run([{"name": "t", module: dict(args, missing_namespaces="skip")}])
        assert skipped.rc == 0, skipped.stdout
        assert [r["namespace"] for r in skipped["t"]["results"]] == [ok]
        assert "namespaces: %s does not exist; skipped (missing_namespaces=skip)" % ghost in skipped["t"]["warnings"]
    assert pull_refs(core, ok) == ["x"]
    assert dockerconfig(core, ok, "ghostly")["auths"].keys() == {"cp.icr.io"}


def test_concurrent_writer_loses_nothing(cluster, unique_ns, core, kube_fixture_client):
    """Another writer edits the SA between our read and our write: 409, re-read, both survive."""
    from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import client as kube
    from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import service_accounts

    name = unique_ns("race")
    wait_for_sa(core, name)
    config = k8s.Configuration()
    config.host, config.ssl_ca_cert = cluster.server, cluster.ca
    config.api_key = {"authorization": "Bearer " + cluster.admin_token}
    client = kube.KubeClient(k8s.ApiClient(config))
    original = client.core.patch_namespaced_service_account
    raced = threading.Event()

    def patch_after_a_rival(*args, **kwargs):
        if not raced.is_set():
            raced.set()
            core.patch_namespaced_service_account("default", name, {"imagePullSecrets": [{"name": "rival"}]})
        return original(*args, **kwargs)

    client.core.patch_namespaced_service_account = patch_after_a_rival
    items, _diff = service_accounts.ensure_links(client, [name], ["default"], ["mine"])
    assert raced.is_set() and items[0]["action"] == "updated"
    assert pull_refs(core, name) == ["rival", "mine"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if missing_binaries():
        pytest.fail("missing binaries: %s (make deps installs them)" % ", ".join(missing_binaries()))
    work = tmp_path_factory.mktemp("registry")
    pki = make_pki(str(work / "pki"))
    reg = Registry(str(work / "registry"), pki, "deployer", CANARY_PASSWORD)
    layout = str(work / "image")
    write_oci_image(layout)
    reg.push(layout, "v1", "probe/hello:v1")
    yield reg
    reg.stop()


def test_real_registry_client_accepts_the_secret(runner, audit, unique_ns, core, registry, tmp_path):
    name = unique_ns("reg")
    task = {"ibmcloud.registry.icr_pull_secret": {
        "name": "corp", "namespaces": [name], "validate_credentials": True,
        "registry_ca_path": registry.pki["ca"],
        "registry": {"server": registry.host, "username": "deployer", "password": CANARY_PASSWORD}}}
    converge(runner, audit, unique_ns.prefix, task, check_first=False)
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps(dockerconfig(core, name, "corp")))
    inspect = subprocess.run(["skopeo", "inspect", "--authfile", str(authfile), "--cert-dir", registry.cert_dir,
                              "docker://%s/probe/hello:v1" % registry.host],
                             capture_output=True, text=True, check=False)
    assert inspect.returncode == 0, inspect.stderr


def test_wrong_password_fails_validation_with_zero_writes(runner, audit, unique_ns, registry):
    name = unique_ns("bad")
    mark = audit.mark()
    result = runner.run([{"name": "t", "ibmcloud.registry.icr_pull_secret": {
        "name": "corp", "namespaces": [name], "validate_credentials": True,
        "registry_ca_path": registry.pki["ca"],
        "registry": {"server": registry.host, "username": "deployer", "password": "wrong-" + CANARY_PASSWORD}}}])
    assert result.rc != 0 and "rejected the credentials" in result["t"]["msg"]
    assert audit.writes(mark, namespace_prefix=unique_ns.prefix) == []


@pytest.mark.parametrize("check", [False, True])
def test_canaries_appear_nowhere_at_vvvv_diff(runner, unique_ns, core, check):
    name = unique_ns("canary")
    wait_for_sa(core, name)
    # As in real playbooks, secrets come from variables (vault, AWX credentials), not literals.
    tasks = [
        {"name": "iam", "ibmcloud.registry.icr_pull_secret": {
            "name": "c1", "iam_api_key": "{{ key }}", "namespaces": [name], "service_accounts": ["default"]}},
        {"name": "reg", "ibmcloud.registry.icr_pull_secret": {
            "name": "c2", "namespaces": [name],
            "registry": {"server": "registry.example.com", "username": "u", "password": "{{ password }}"}}},
        {"name": "update", "ibmcloud.registry.icr_pull_secret": {
            "name": "c2", "namespaces": [name],
            "registry": {"server": "registry.example.com", "username": "u", "password": "{{ password }}2"}}},
        {"name": "failing", "ignore_errors": True, "ibmcloud.registry.icr_pull_secret": {
            "name": "c3", "namespaces": [name], "validate_credentials": True,
            "registry": {"server": "127.0.0.1:1", "username": "u", "password": "{{ password }}"}}},
    ]
    result = runner.run(tasks, check=check, diff=True, verbosity=4, raw=True,
                        play_vars={"key": CANARY_KEY, "password": CANARY_PASSWORD})
    assert result.rc == 0, result.stdout[-3000:]
    encoded = [base64.b64encode(("u:" + CANARY_PASSWORD).encode()).decode(),
               base64.b64encode(("iamapikey:" + CANARY_KEY).encode()).decode()]
    for needle in [CANARY_KEY, CANARY_PASSWORD] + encoded:
        assert needle not in result.stdout and needle not in result.stderr
    leftovers = [os.path.join(root, f) for root, _d, files in os.walk(runner.workdir) for f in files
                 if f != "play.yml"]
    for path in leftovers:
        with open(path, "rb") as handle:
            data = handle.read()
        assert CANARY_KEY.encode() not in data and CANARY_PASSWORD.encode() not in data, path
