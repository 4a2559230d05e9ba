"""Bad input: every module and role refuses it with a message that names the option or
object, and writes nothing.

One table of cases, each a real module call (or role include) through ``ansible-playbook``
on the suite's private cluster. The cases run in a few playbooks at once, each case in a
block whose rescue records the failure, so one slow start serves many cases. Afterwards:

* the API server's audit log has no write by `admin` (the code under test) since the mark,
  anywhere on the cluster;
* the IAM stand-in saw no request at all (IAM options are validated before the first one);
* the containerd directories are byte-for-byte and mode-for-mode what they were.

Cases covered elsewhere are not repeated: test_pull_secrets.py::test_copy_source_missing_points_to_pull_secret_apply,
::test_absent_leaves_secrets_it_did_not_create, test_openshift.py::test_route_validates_before_writing,
::test_image_stream_tags_validate_before_any_request, ::test_build_secret_missing_secret_fails_before_writing,
::test_plain_kubernetes_fails_with_not_openshift (listed in docs/reliability.md).
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import os
import secrets

import pytest
from kubernetes import client as k8s

from playbook import Runner
from reliability import common
from reliability.common import (  # noqa: F401  pylint: disable=unused-import
    rel_api,
    rel_audit,
    rel_ns,
    reliability_cluster,
)

pytestmark = pytest.mark.cluster

ICR = "ibmcloud.registry.icr_pull_secret"
SA = "ibmcloud.registry.sa_pull_secret"
IAM_PS = "ibmcloud.registry.iam_pull_secret"
ROUTE = "ibmcloud.registry.ocp_registry_route"
CONFIG = "ibmcloud.registry.ocp_registry_config"
INTERNAL = "ibmcloud.registry.ocp_internal_pull_secret"
BUILD = "ibmcloud.registry.ocp_build_secret"
IST = "ibmcloud.registry.ocp_image_stream_tag"
CTD = "ibmcloud.registry.containerd_hosts"
KEY = "bad-input-key-" + secrets.token_hex(6)
ACCOUNT = "0123456789abcdef0123456789abcdef"


def icr(**args):
    base = {"name": "bad-input", "namespaces": ["{{ ns_ok }}"], "entitlement_key": KEY}
    base.update(args)
    return {ICR: {k: v for k, v in base.items() if v is not None}}


def reg(**registry):
    return dict({"server": "registry.example.com", "username": "robot", "password": KEY}, **registry)


def iam(**args):
    base = {"service_id": "bad-input-id", "namespaces": ["{{ ns_ok }}"], "iam_url": "{{ iam_url }}",
            "ibmcloud_api_key": KEY}
    base.update(args)
    return {IAM_PS: {k: v for k, v in base.items() if v is not None}}


def ctd(**args):
    base = {"registry": "myreg.example.com", "config_path": "{{ ctd_root }}/certs.d", "containerd_version": "1.7",
            "server": "https://myreg.example.com"}
    base.update(args)
    return {CTD: {k: v for k, v in base.items() if v is not None}}


def role(name, **role_vars):
    return {"ansible.builtin.include_role": {"name": "ibmcloud.registry." + name}, "vars": role_vars}


# (case id, task, every text the failure message must contain). "{ns_ok}" and "{ns_obj}" are
# replaced by the namespaces of the run; the group decides which playbook runs the case.
CASES = {
    "targets": [
        ("namespace-invalid", icr(namespaces=["Bad_NS"]),
         ["namespaces: 'Bad_NS' is not a valid namespace name"]),
        ("namespace-too-long", icr(namespaces=["n" * 64]),
         ["namespaces: '%s' is not a valid namespace name" % ("n" * 64), "at most 63 characters"]),
        ("secret-name-invalid", icr(name="My_Secret"),
         ["name 'My_Secret' is not a valid Kubernetes object name"]),
        ("service-account-invalid", icr(service_accounts=["Default!"]),
         ["service_accounts: service account 'Default!' is not a valid Kubernetes object name"]),
        ("empty-target-set", icr(namespaces=[]), ["namespaces is an empty list: name at least one namespace"]),
        ("no-targets", icr(namespaces=None), ["one of namespaces, namespace_selector or all_namespaces is required"]),
        ("conflicting-targets", icr(all_namespaces=True),
         ["parameters are mutually exclusive: namespaces|namespace_selector|all_namespaces"]),
        ("selector-syntax", icr(namespaces=None, namespace_selector=["team in (a"]),
         ["namespace_selector: 'team in (a' is not a valid label selector term"]),
        ("selector-matches-nothing", icr(namespaces=None, namespace_selector=["bad-input=matches-nothing"]),
         ["namespace_selector bad-input=matches-nothing matched no namespace"]),
        ("all-namespaces-all-excluded", icr(namespaces=None, all_namespaces=True, exclude_namespaces=["*"]),
         ["all_namespaces (excluding *) matched no namespace"]),
        ("api-retries-range", icr(api_retries=99), ["api_retries must be between 0 and 20, got 99"]),
        ("parallelism-range", icr(parallelism=0), ["parallelism must be between 1 and 64, got 0"]),
        ("service-account-timeout-range", icr(service_account_timeout=-1),
         ["service_account_timeout must be between 0 and 3600 seconds"]),
        ("sa-empty-secrets", {SA: {"secrets": [], "namespaces": ["{{ ns_ok }}"]}},
         ["secrets must name at least one secret"]),
        ("sa-secret-name-invalid", {SA: {"secrets": ["UPPER"], "namespaces": ["{{ ns_ok }}"]}},
         ["secrets: secret 'UPPER' is not a valid Kubernetes object name"]),
        ("sa-empty-service-accounts", {SA: {"secrets": ["x"], "service_accounts": [], "namespaces": ["{{ ns_ok }}"]}},
         ["service_accounts must name at least one service account"]),
        ("sa-empty-link-for", {SA: {"secrets": ["x"], "link_for": [], "namespaces": ["{{ ns_ok }}"]}},
         ["link_for must include pull, mount or both"]),
        # The deprecated alias reaches the same option.
        ("sa-empty-for-alias", {SA: {"secrets": ["x"], "for": [], "namespaces": ["{{ ns_ok }}"]}},
         ["link_for must include pull, mount or both"]),
        # Named namespaces that do not exist: found by the LIST of namespaces, before any write.
        ("namespace-does-not-exist", icr(namespaces=["{{ ns_ok }}", "bad-input-gone-1", "bad-input-gone-2"]),
         ["namespaces: bad-input-gone-1, bad-input-gone-2 do not exist",
          "set missing_namespaces=skip to leave them out with a warning"]),
        ("sa-namespace-does-not-exist", {SA: {"secrets": ["x"], "namespaces": ["bad-input-gone-3", "{{ ns_ok }}"]}},
         ["namespaces: bad-input-gone-3 does not exist", "missing_namespaces=skip"]),
        ("sa-missing-secret-fail", {SA: {"secrets": ["does-not-exist"], "namespaces": ["{{ ns_ok }}"],
                                         "missing_secret": "fail"}},
         ["secret(s) does-not-exist do not exist in namespace {ns_ok}", "not done: {ns_ok}"]),
    ],
    "credentials": [
        ("unknown-region", icr(entitlement_key=None, iam_api_key=KEY, regions=["us-west-9"]),
         ["regions/endpoints: unknown IAM region(s) us-west-9; valid regions are: all, au-syd"]),
        ("unknown-endpoint", icr(entitlement_key=None, iam_api_key=KEY, endpoints=["public", "internal"]),
         ["value of endpoints must be one or more of: public, private", "internal"]),
        ("server-with-space", icr(entitlement_key=None, registry=reg(server="registry example.com")),
         ["registry.server: 'registry example.com' is not a registry server"]),
        ("server-bad-port", icr(entitlement_key=None, registry=reg(server="registry.example.com:99999")),
         ["registry.server: 'registry.example.com:99999' has an invalid port"]),
        ("server-bad-scheme", icr(entitlement_key=None, registry=reg(server="ftp://registry.example.com")),
         ["registry.server: 'ftp://registry.example.com' is not a registry server"]),
        ("username-with-colon", icr(entitlement_key=None, registry=reg(username="robot:ci")),
         ["registry.username must not contain ':'"]),
        ("registry-missing-password", icr(entitlement_key=None, registry={"server": "r.example.com", "username": "u"}),
         ["missing required arguments: password found in registry"]),
        # Over the API server's 1 MiB Secret limit: refused before any request, naming the option.
        ("secret-too-large", icr(entitlement_key=None, registry=reg(password="{{ 'x' * 1048576 }}")),
         ["registry.password: the secret would hold", "more than the 1048576 bytes (1 MiB) a Secret may hold"]),
        ("iam-key-too-large", icr(entitlement_key=None, iam_api_key="{{ 'k' * 20000 }}"),
         ["iam_api_key: the secret would hold"]),
        ("two-credential-sources", icr(iam_api_key=KEY),
         ["choose one credential source, got iam_api_key, entitlement_key"]),
        ("no-credential-source", icr(entitlement_key=None),
         ["state=present needs one credential source: iam_api_key, entitlement_key, registry, copy_from"]),
        ("validate-with-copy", icr(entitlement_key=None, copy_from={"namespace": "default"}, validate_credentials=True),
         ["validate_credentials is not available with copy_from"]),
        ("copy-from-bad-namespace", icr(entitlement_key=None, copy_from={"namespace": "Bad NS"}),
         ["copy_from.namespace: 'Bad NS' is not a valid namespace name"]),
        ("iam-account-id", iam(account_id="xyz"), ["account_id 'xyz' is not an IBM Cloud account ID"]),
        ("iam-url-with-path", iam(iam_url="https://iam.example.com/identity"),
         ["iam_url 'https://iam.example.com/identity' must be a base URL"]),
        ("iam-rotate-absent", iam(rotate=True, state="absent"), ["rotate applies to state=present only"]),
        ("iam-no-api-key", iam(ibmcloud_api_key=None), ["ibmcloud_api_key is required"]),
        ("iam-key-in-quotes", iam(ibmcloud_api_key='"%s"' % KEY),
         ["ibmcloud_api_key must not start or end with spaces, braces or quotes"]),
        ("iam-unknown-region", iam(regions=["mars-1"]), ["regions/endpoints: unknown IAM region(s) mars-1"]),
        ("iam-policy-unknown-role", {"ibmcloud.registry.iam_registry_policy": {
            "service_id": "x", "roles": ["Admin"], "iam_url": "{{ iam_url }}", "ibmcloud_api_key": KEY}},
         ["roles: unknown Container Registry role(s) Admin"]),
    ],
    "objects": [
        ("existing-secret-wrong-type", icr(name="wrong-type", namespaces=["{{ ns_obj }}"]),
         ["Secret {ns_obj}/wrong-type exists with type Opaque, not kubernetes.io/dockerconfigjson"]),
        ("existing-secret-legacy-dockercfg", icr(name="legacy", namespaces=["{{ ns_obj }}"]),
         ["Secret {ns_obj}/legacy exists with type kubernetes.io/dockercfg, not kubernetes.io/dockerconfigjson"]),
        ("existing-secret-unparsable", icr(name="no-auths", namespaces=["{{ ns_obj }}"], service_accounts=["default"]),
         ['Secret {ns_obj}/no-auths: .dockerconfigjson has no "auths" object; set force to overwrite it']),
        ("copy-source-wrong-type", icr(entitlement_key=None, copy_from={"namespace": "{{ ns_obj }}", "name": "wrong-type"},
                                       name="copied"),
         ["copy_from source Secret {ns_obj}/wrong-type has type Opaque, not kubernetes.io/dockerconfigjson"]),
        ("copy-source-unparsable", icr(entitlement_key=None, copy_from={"namespace": "{{ ns_obj }}", "name": "no-auths"},
                                       name="copied"),
         ['copy_from source Secret {ns_obj}/no-auths: .dockerconfigjson has no "auths" object']),
        ("internal-source-unparsable", {INTERNAL: {"registry_host": "registry.example.com", "source_namespace": "{{ ns_obj }}",
                                                   "namespaces": ["{{ ns_ok }}"]}},
         ["Secret {ns_obj}/default-dockercfg-bad: an auths entry has no username and password"]),
        ("route-tls-with-passthrough", {ROUTE: {"namespace": "{{ ns_ok }}", "termination": "passthrough",
                                                "tls": {"certificate": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----",
                                                        "key": "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----" % KEY}}},
         ["tls certificates cannot be set with termination=passthrough"]),
        ("route-wait-timeout-range", {ROUTE: {"namespace": "{{ ns_ok }}", "wait_timeout": -5}},
         ["wait_timeout must be between 0 and 3600 seconds"]),
        ("internal-port-range", {INTERNAL: {"registry_host": "r.example.com", "registry_port": 70000,
                                            "namespaces": ["{{ ns_ok }}"]}},
         ["registry_port must be between 1 and 65535"]),
        ("internal-host-and-route", {INTERNAL: {"registry_host": "r.example.com", "route_name": "x",
                                                "namespaces": ["{{ ns_ok }}"]}},
         ["parameters are mutually exclusive: registry_host|route_name"]),
        ("internal-host-is-url", {INTERNAL: {"registry_host": "https://r.example.com", "namespaces": ["{{ ns_ok }}"]}},
         ["registry_host: 'https://r.example.com' is not a valid host name"]),
        ("config-emptydir-unconfirmed", {CONFIG: {"storage": "emptyDir"}},
         ["storage=emptyDir is not persistent", "allow_non_persistent_storage: true"]),
        ("config-pvc-claim-without-pvc", {CONFIG: {"pvc_claim": "claim"}}, ["pvc_claim is only used with storage=pvc"]),
        ("build-no-secret", {BUILD: {"namespace": "{{ ns_ok }}", "build_configs": ["app"]}},
         ["one of push_secret or pull_secret is required"]),
        ("build-duplicate-build-config", {BUILD: {"namespace": "{{ ns_ok }}", "push_secret": "x",
                                                  "build_configs": ["app", "app"]}},
         ["build_configs names a BuildConfig more than once"]),
        ("image-stream-no-images", {IST: {"namespace": "{{ ns_ok }}", "images": []}},
         ["images must name at least one image"]),
        # The stream's project does not exist: refused before the create would be sent.
        ("image-stream-namespace-does-not-exist", {IST: {"namespace": "{{ ns_ok }}", "images": [
            {"source": "us.icr.io/team/app:1", "target": "app:1"},
            {"source": "us.icr.io/team/app:1", "target": "bad-input-gone-4/app:1"}]}},
         ["namespaces: bad-input-gone-4 does not exist; create it first"]),
    ],
    "nodes": [
        ("containerd-registry-is-url", ctd(registry="https://myreg.example.com"),
         ["registry 'https://myreg.example.com' is not a registry host namespace"]),
        ("containerd-relative-config-path", ctd(config_path="certs.d"),
         ["config_path must be an absolute path, got certs.d"]),
        ("containerd-host-url-scheme", ctd(hosts=[{"url": "ftp://mirror.example.com"}]),
         ["hosts[0].url", "ftp://mirror.example.com"]),
        ("containerd-version", ctd(containerd_version="abc"),
         ["containerd_version 'abc' is not a version such as 1.7 or 2.1.4"]),
        ("containerd-header-value-multiline", ctd(server_settings={"headers": {"Authorization": "a\nb"}}),
         ["server_settings.headers[Authorization] must be a string or a list of single-line strings"]),
        ("containerd-unparsable-config-toml", ctd(registry=None, containerd_config="{{ ctd_root }}/config.toml",
                                                  containerd_config_check="set"),
         ["{ctd_root}/config.toml is not valid TOML"]),
        ("role-pull-secrets-two-sources", role("pull_secrets", pull_secrets_namespaces=["{{ ns_ok }}"],
                                               pull_secrets_secrets=[{"name": "x", "entitlement_key": KEY,
                                                                      "registry": reg()}]),
         ["choose one credential source, got entitlement_key, registry"]),
        ("role-pull-secrets-not-a-list", role("pull_secrets", pull_secrets_secrets="all-icr-io"),
         ["Validation of arguments failed", "'pull_secrets_secrets'"]),
        ("role-entitled-registry-no-key", role("entitled_registry", entitled_registry_namespaces=["{{ ns_ok }}"]),
         ["entitled_registry_entitlement_key is required"]),
        ("role-iam-namespace-mode-no-namespaces", role("iam_pull_secret", iam_pull_secret_mode="namespace",
                                                       iam_pull_secret_cluster_name="c1"),
         ["iam_pull_secret_namespaces (at least one) in namespace mode"]),
        ("role-containerd-duplicate-registry", role(
            "containerd_hosts", containerd_hosts_config_path="{{ ctd_root }}/certs.d",
            containerd_hosts_install_python_deps=False, containerd_hosts_containerd_config_check="none",
            containerd_hosts_registries=[{"registry": "a.example.com"}],
            containerd_hosts_registries_mirrors=[{"prefix": "a.example.com", "mirrors": [{"host": "https://m.example.com"}]}]),
         ["A registry is declared more than once", "a.example.com, a.example.com"]),
        ("role-openshift-registry-emptydir", role("openshift_registry", openshift_registry_storage="emptyDir",
                                                  openshift_registry_route=False),
         ["storage=emptyDir is not persistent"]),
        ("role-openshift-images-bad-source", role(
            "openshift_images", openshift_images_namespace="{{ ns_ok }}",
            openshift_images_images=[{"source": "us.icr.io/Team/app:1", "target": "app:1"}]),
         ["images[0]: source 'us.icr.io/Team/app:1' is not an image reference"]),
    ],
}


def all_cases():
    return [case for group in CASES.values() for case in group]


def test_the_table_has_enough_distinct_cases():
    ids = [case_id for case_id, _task, _texts in all_cases()]
    assert len(ids) == len(set(ids)) and len(ids) >= 25, len(ids)


def tree(root):
    """{relative path: (mode, sha256)} of every file and directory under root."""
    found = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            mode = os.lstat(path).st_mode
            digest = None
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            found[os.path.relpath(path, root)] = (mode, digest)
    return found


@pytest.fixture
def standin():
    import iam_server  # pylint: disable=import-outside-toplevel

    server = iam_server.IamStandIn().start()
    server.add_admin_key(KEY)
    yield server
    server.stop()


def test_bad_input_fails_clearly_and_writes_nothing(reliability_cluster, rel_api, rel_audit, rel_ns, standin,
                                                    tmp_path):
    import openshift_flavour  # pylint: disable=import-outside-toplevel

    openshift_flavour.install(reliability_cluster.fixture_kubeconfig, rel_api)
    core = k8s.CoreV1Api(rel_api)
    ns_ok, ns_obj = rel_ns("ok"), rel_ns("objects")
    common.wait_for_service_accounts(core, [ns_ok, ns_obj])

    def secret(name, secret_type, key, document):
        core.create_namespaced_secret(ns_obj, {"metadata": {"name": name}, "type": secret_type, "data": {
            key: base64.b64encode(document.encode()).decode()}})

    secret("wrong-type", "Opaque", "token", "x")
    secret("legacy", "kubernetes.io/dockercfg", ".dockercfg", json.dumps({"registry.example.com": {"auth": "dTpw"}}))
    # The API server accepts any JSON object here; ours needs an "auths" object.
    secret("no-auths", "kubernetes.io/dockerconfigjson", ".dockerconfigjson", '{"auths": "not-an-object"}')
    # OpenShift's dockercfg secret of `default`, with an entry that has no usable credentials.
    secret("default-dockercfg-bad", "kubernetes.io/dockercfg", ".dockercfg",
           json.dumps({"image-registry.openshift-image-registry.svc:5000": {"email": "x"}}))
    core.patch_namespaced_service_account("default", ns_obj, {"secrets": [{"name": "default-dockercfg-bad"}]})

    ctd_root = tmp_path / "node"
    (ctd_root / "certs.d" / "myreg.example.com").mkdir(parents=True)
    (ctd_root / "certs.d" / "myreg.example.com" / "hosts.toml").write_text('server = "https://old.example.com"\n')
    (ctd_root / "config.toml").write_text("version = 2\n[plugins\nthis is not toml\n")
    before = tree(str(ctd_root))

    play_vars = {"ns_ok": ns_ok, "ns_obj": ns_obj, "iam_url": standin.url, "ctd_root": str(ctd_root)}
    env = {"IC_API_KEY": "", "IBMCLOUD_API_KEY": ""}
    iam_mark, kube_mark = standin.mark(), rel_audit.mark()

    def run(group):
        blocks = []
        for case_id, task, _texts in CASES[group]:
            blocks.append({"name": case_id, "block": [dict(task, name=case_id + " | task"),
                                                      {"name": case_id + " | completed", "ansible.builtin.debug": {}}],
                           "rescue": [{"name": case_id + " | rescued",
                                       "ansible.builtin.debug": {"var": "ansible_failed_result"}}]})
        workdir = tmp_path / group
        workdir.mkdir()
        runner = Runner(reliability_cluster.kubeconfig, workdir=str(workdir))
        return runner.run([], plays=common.play(blocks, reliability_cluster.kubeconfig, play_vars=play_vars),
                          env=env)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        played = dict(zip(CASES, pool.map(run, CASES)))

    problems = []
    for group, cases in CASES.items():
        results = {name: result for name, result, _s in common.task_results(played[group])}
        for case_id, _task, texts in cases:
            rescued = results.get(case_id + " | rescued")
            if rescued is None:
                problems.append("%s: did not fail (%s)" % (case_id, json.dumps(results.get(case_id + " | task"))[:500]))
                continue
            failure = rescued["ansible_failed_result"]
            # A loop (the pull_secrets role) fails with "One or more items failed": the
            # module's message is the failed item's.
            items = [item["msg"] for item in failure.get("results", []) if item.get("failed")]
            message = " | ".join([failure.get("msg", "")] + items)
            for text in texts:
                text = text.format(ns_ok=ns_ok, ns_obj=ns_obj, ctd_root=ctd_root)
                if text not in message:
                    problems.append("%s: %r not in %r" % (case_id, text, message))
            print("%-40s %s" % (case_id, message[:300]))
        output = played[group].stdout + played[group].stderr
        if KEY in output:
            problems.append("%s: the key value is in the output" % group)
    assert not problems, "\n".join(problems)

    assert common.admin_writes(rel_audit, kube_mark) == []
    assert [r for r in standin.requests() if r["seq"] > iam_mark] == []
    assert tree(str(ctd_root)) == before


def test_unparsable_hosts_toml_is_named_and_replaced_as_the_module_does(reliability_cluster, tmp_path):
    """containerd_hosts owns the hosts.toml of a declared registry: an unparsable one (which
    containerd would silently ignore) is named in a warning and replaced, with a backup when
    asked; check mode only warns and writes nothing. (Not refused: see docs/reliability.md.)"""
    import tomllib  # pylint: disable=import-outside-toplevel

    directory = tmp_path / "certs.d" / "myreg.example.com"
    directory.mkdir(parents=True)
    path = directory / "hosts.toml"
    broken = 'server = "https://myreg.example.com"\n[host."https://mirror.example.com"\n'
    path.write_text(broken)
    task = {"name": "t", CTD: {"registry": "myreg.example.com", "config_path": str(tmp_path / "certs.d"),
                               "containerd_version": "1.7", "server": "https://myreg.example.com", "backup": True}}
    runner = Runner(reliability_cluster.kubeconfig, workdir=str(tmp_path))
    before = tree(str(tmp_path / "certs.d"))
    check = runner.run([task], check=True)
    warning = "%s is not valid TOML" % path
    assert check.rc == 0 and check["t"]["changed"] is True
    assert any(warning in w and "it will be replaced" in w for w in check["t"].get("warnings", [])), check["t"]
    assert tree(str(tmp_path / "certs.d")) == before
    real = runner.run([task])
    assert real.rc == 0 and any(warning in w for w in real["t"].get("warnings", []))
    assert tomllib.loads(path.read_text()) == {"server": "https://myreg.example.com", "host": {}}
    with open(real["t"]["backup_file"], encoding="utf-8") as handle:
        assert handle.read() == broken
