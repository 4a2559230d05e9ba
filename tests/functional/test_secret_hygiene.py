"""Secret hygiene: every role, with canary credentials, at -vvvv --diff, in check mode and
for real, failing cases included; the canaries appear nowhere.

The canaries come into the play the way real secrets do - from the environment (a vault
or an AWX credential in real life) through ``lookup('env')`` - so the playbook file holds
none of them, and every copy of a canary on disk or in the output is a leak. Searched:
stdout and stderr of both runs (default callback, -vvvv, --diff), every registered role
result (written to a file by the play), and every file the runs leave in their working
directory, which also holds Ansible's local and remote temp directories and TMPDIR (the
discovery caches of the Kubernetes clients). The only file allowed to hold a canary is the
hosts.toml that the containerd_hosts role writes by design (an HTTP header for the
registry); it must have mode 0600.

Each canary is searched as itself, base64-encoded, and base64-encoded as ``user:value``
(the ``auth`` field); the base64 ``.dockerconfigjson`` values of the secrets on the cluster
are searched too, and so are the API key values that iam_pull_secret minted (read back
from the secrets after the run).

Afterwards the Secrets on the cluster must be of the right type and carry only the
intended keys, labels and annotations (no ``last-applied-configuration`` copy of the data).
IBM Cloud IAM is the LOCAL STAND-IN (tests/standins/iam_server.py); the OpenShift objects
are the LOCAL STAND-IN CRDs (tests/standins/openshift_flavour.py).
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import secrets
import stat

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


def canary(kind):
    return "CANARY-%s-%s" % (kind, secrets.token_hex(10))


CANARIES = {
    "HYG_REGISTRY_PASSWORD": canary("registry-password"),
    "HYG_IAM_API_KEY": canary("iam-api-key"),
    "HYG_ENTITLEMENT_KEY": canary("entitlement-key"),
    "HYG_IBMCLOUD_API_KEY": canary("ibmcloud-api-key"),
    "HYG_WRONG_IBMCLOUD_API_KEY": canary("wrong-ibmcloud-api-key"),
    "HYG_TLS_KEY": canary("tls-key"),
    "HYG_HEADER": canary("header"),
}
USERNAMES = ("robot", "iamapikey", "cp", "serviceaccount", "Bearer")
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIBhygieneCertificate\n-----END CERTIFICATE-----"
REGISTERED = ["pull_secrets_result", "entitled_registry_result", "iam_pull_secret_result",
              "openshift_registry_config_result", "openshift_registry_route_result",
              "openshift_registry_pull_secret_result", "openshift_images_result", "openshift_builds_result"]


def env_var(name):
    return "{{ lookup('env', '%s') }}" % name


def role(case, name, role_vars, fails=False, module_defaults=None):
    """One role include in a block; a failure is rescued and its whole result printed."""
    return {"name": case, "module_defaults": module_defaults or {}, "block": [
        {"name": "%s | role" % case, "ansible.builtin.include_role": {"name": "ibmcloud.registry." + name},
         "vars": role_vars},
        {"name": "%s | completed" % case, "ansible.builtin.debug": {"msg": "%s completed" % case}},
    ], "rescue": [
        {"name": "%s | rescued" % case, "ansible.builtin.debug": {"var": "ansible_failed_result"}},
    ], "tags": ["fails" if fails else "works"]}


def tasks(ns, standin, node_dir, source_namespace):
    header = {"Authorization": "Bearer " + env_var("HYG_HEADER")}
    registries = [{"registry": "hygiene.example.com", "server": "https://hygiene.example.com",
                   "server_settings": {"headers": header}}]
    tls_key = "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----" % env_var("HYG_TLS_KEY")
    containerd_nodes = {"containerd_hosts_config_path": node_dir, "containerd_hosts_install_python_deps": False,
                        "containerd_hosts_containerd_config_check": "none", "containerd_hosts_containerd_version": "1.7"}
    iam = {"iam_pull_secret_mode": "namespace", "iam_pull_secret_cluster_name": "hyg",
           "iam_pull_secret_namespaces": [ns["iam"]]}

    def iam_defaults(key):
        return {"group/ibmcloud.registry.iam": {"iam_url": standin.url, "ibmcloud_api_key": env_var(key)}}
    return [
        role("pull_secrets", "pull_secrets", {"pull_secrets_namespaces": [ns["pull"]], "pull_secrets_secrets": [
            {"name": "hyg-registry", "registry": {"server": "registry.example.com", "username": "robot",
                                                  "password": env_var("HYG_REGISTRY_PASSWORD")}},
            {"name": "hyg-icr", "iam_api_key": env_var("HYG_IAM_API_KEY"), "regions": ["us-south"]}]}),
        role("pull_secrets failing", "pull_secrets", {"pull_secrets_namespaces": [ns["pull"]], "pull_secrets_secrets": [
            {"name": "hyg-unreachable", "validate_credentials": True,
             "registry": {"server": "127.0.0.1:1", "username": "robot",
                          "password": env_var("HYG_REGISTRY_PASSWORD")}}]}, fails=True),
        role("entitled_registry", "entitled_registry", {
            "entitled_registry_entitlement_key": env_var("HYG_ENTITLEMENT_KEY"),
            "entitled_registry_namespaces": [ns["pull"]]}),
        role("entitled_registry failing", "entitled_registry", {
            "entitled_registry_entitlement_key": env_var("HYG_ENTITLEMENT_KEY"),
            "entitled_registry_namespaces": ["Not_A_Namespace"]}, fails=True),
        role("iam_pull_secret", "iam_pull_secret", iam, module_defaults=iam_defaults("HYG_IBMCLOUD_API_KEY")),
        role("iam_pull_secret failing", "iam_pull_secret", iam, fails=True,
             module_defaults=iam_defaults("HYG_WRONG_IBMCLOUD_API_KEY")),
        role("openshift_registry", "openshift_registry", {
            "openshift_registry_route_host": "registry-hygiene.example.com", "openshift_registry_route_wait": False,
            "openshift_registry_route_tls": {"certificate": PEM_CERT, "key": tls_key},
            "openshift_registry_source_namespace": source_namespace, "openshift_registry_access": "pull_secret",
            "openshift_registry_namespaces": [ns["openshift"]]}),
        role("openshift_registry failing", "openshift_registry", {
            "openshift_registry_route_termination": "passthrough",
            "openshift_registry_route_tls": {"certificate": PEM_CERT, "key": tls_key}}, fails=True),
        role("openshift_images", "openshift_images", {"openshift_images_namespace": ns["openshift"],
                                                      "openshift_images_images": [
                                                          {"source": "us.icr.io/team/app:1", "target": "app:1"}]}),
        role("openshift_images failing", "openshift_images", {"openshift_images_namespace": ns["openshift"],
                                                              "openshift_images_images": [
                                                                  {"source": "us.icr.io/Team/app:1", "target": "app:1"}]},
             fails=True),
        role("openshift_builds", "openshift_builds", {"openshift_builds_projects": [
            {"namespace": ns["build"], "push_secret": "hyg-push", "build_configs": ["app"]}]}),
        role("openshift_builds failing", "openshift_builds", {"openshift_builds_projects": [
            {"namespace": ns["build"], "push_secret": "hyg-push", "build_configs": ["nope"]}]}, fails=True),
        role("containerd_hosts nodes", "containerd_hosts", dict(containerd_nodes,
                                                                containerd_hosts_registries=registries)),
        role("containerd_hosts cluster", "containerd_hosts", {
            "containerd_hosts_mode": "cluster", "containerd_hosts_registries": registries,
            "containerd_hosts_cluster_namespace": ns["containerd"]}),
        role("containerd_hosts failing", "containerd_hosts", dict(containerd_nodes, containerd_hosts_registries=[
            dict(registries[0], hosts=[{"url": "ftp://mirror.example.com", "headers": header}])]), fails=True),
        {"name": "registered results to a file", "check_mode": False, "ansible.builtin.copy": {
            "dest": "{{ results_file }}", "mode": "0600",
            "content": "{{ {%s} | to_nice_json }}" % ", ".join("'%s': %s | default(None)" % (n, n) for n in REGISTERED)}},
    ]


def needles(extra_values=()):
    """Every form in which a credential could leak."""
    values = list(CANARIES.values()) + list(extra_values)
    forms = set()
    for value in values:
        forms.add(value)
        forms.add(base64.b64encode(value.encode()).decode())
        for user in USERNAMES:
            forms.add(base64.b64encode(("%s:%s" % (user, value)).encode()).decode())
    return forms


def files_under(root):
    for base, _dirs, files in os.walk(root):
        for name in files:
            yield os.path.join(base, name)


@pytest.fixture
def standin():
    import iam_server  # pylint: disable=import-outside-toplevel

    server = iam_server.IamStandIn().start()
    server.add_admin_key(CANARIES["HYG_IBMCLOUD_API_KEY"])
    yield server
    server.stop()


def test_no_canary_leaves_any_role_in_check_mode_or_for_real(reliability_cluster, rel_api, rel_ns, standin, tmp_path):
    import openshift_flavour  # pylint: disable=import-outside-toplevel

    openshift_flavour.install(reliability_cluster.fixture_kubeconfig, rel_api)
    core = k8s.CoreV1Api(rel_api)
    # Check mode and the real run go at the same time, each in namespaces of its own (check
    # mode writes nothing, so it predicts the same whatever the real run does meanwhile).
    modes = ("check", "real")
    ns = {mode: {part: rel_ns("%s-%s" % (mode, part)) for part in ("pull", "iam", "openshift", "build",
                                                                   "containerd", "source")} for mode in modes}
    common.wait_for_service_accounts(core, [name for names in ns.values() for name in names.values()])
    tokens = set()
    for mode in modes:
        made = openshift_flavour.project(rel_api, ns[mode]["source"], "legacy", accounts=("default",))
        tokens.add(made["default"][1])                  # a credential too: the source's token
        openshift_flavour.project(rel_api, ns[mode]["build"], "legacy", accounts=("builder",))
        openshift_flavour.build_config(rel_api, ns[mode]["build"], "app")
        core.create_namespaced_secret(ns[mode]["build"], {"metadata": {"name": "hyg-push"}, "type": "Opaque"})

    workdir = tmp_path / "work"
    node_dirs = {mode: str(tmp_path / "node" / mode / "certs.d") for mode in modes}
    (workdir / "tmpdir").mkdir(parents=True)
    env = dict(CANARIES, TMPDIR=str(workdir / "tmpdir"), ANSIBLE_REMOTE_TEMP=str(workdir / "remote-tmp"),
               K8S_AUTH_KUBECONFIG=reliability_cluster.kubeconfig)

    def run(mode):
        (workdir / mode).mkdir()
        runner = Runner(reliability_cluster.kubeconfig, workdir=str(workdir / mode))
        play_vars = {"results_file": str(workdir / ("results-%s.json" % mode))}
        plays = common.play(tasks(ns[mode], standin, node_dirs[mode], ns[mode]["source"]),
                            reliability_cluster.kubeconfig, play_vars=play_vars)
        return runner.run([], plays=plays, check=mode == "check", diff=True, verbosity=4, raw=True, env=env)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(modes, pool.map(run, modes)))
    for mode in modes:
        assert runs[mode].rc == 0, runs[mode].stdout[-4000:]
        output = runs[mode].stdout
        for block in tasks(ns[mode], standin, node_dirs[mode], ns[mode]["source"])[:-1]:
            expected = "%s | %s" % (block["name"], "rescued" if "fails" in block["tags"] else "completed")
            unexpected = "%s | %s" % (block["name"], "completed" if "fails" in block["tags"] else "rescued")
            where = output.find("TASK [%s]" % unexpected)
            section = output[where:output.find("TASK [", where + 1)]
            assert where < 0, (mode, unexpected, [line for line in section.splitlines() if '"msg"' in line])
            assert "TASK [%s]" % expected in output, (mode, expected)
    assert not os.path.exists(node_dirs["check"])          # check mode wrote no file either
    ns, node_dir = ns["real"], node_dirs["real"]

    # What the real run put on the cluster: the right type, only the intended keys.
    minted, dockerconfigs = set(), set()
    expected_secrets = {ns["pull"]: ["hyg-registry", "hyg-icr", "entitled-cp-icr-io"], ns["iam"]: ["hyg-icr-io"],
                        ns["openshift"]: ["internal-registry"]}
    for namespace, names in expected_secrets.items():
        for name in names:
            secret = core.read_namespaced_secret(name, namespace)
            assert secret.type == "kubernetes.io/dockerconfigjson", (namespace, name)
            assert set(secret.data) == {".dockerconfigjson"}, (namespace, name)
            assert secret.metadata.labels == {"app.kubernetes.io/managed-by": "ibmcloud.registry"}, (namespace, name)
            assert not secret.metadata.annotations, (namespace, name)
            dockerconfigs.add(secret.data[".dockerconfigjson"])
            auths = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]
            for entry in auths.values():
                assert set(entry) <= {"username", "password", "auth", "email"}, (namespace, name, sorted(entry))
                if namespace == ns["iam"]:
                    minted.add(entry["password"])
    assert len(minted) == 1 and not minted & set(CANARIES.values())
    hosts = core.read_namespaced_secret("ibmcloud-registry-containerd-hosts", ns["containerd"])
    assert hosts.type == "Opaque" and set(hosts.data) == {"hygiene.example.com.hosts.toml", "manifest"}  # manifest: the directories the init container writes
    assert set(hosts.metadata.annotations or {}) == {"ibmcloud.registry/hosts-checksum"}
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns["containerd"]).items
            if c.metadata.name.startswith("ibmcloud-registry")] == []   # the header never went to a ConfigMap
    dockerconfigs.add(hosts.data["hygiene.example.com.hosts.toml"])

    # The one file that holds a canary by design.
    hosts_toml = os.path.join(node_dir, "hygiene.example.com", "hosts.toml")
    assert stat.S_IMODE(os.stat(hosts_toml).st_mode) == 0o600
    with open(hosts_toml, encoding="utf-8") as handle:
        assert CANARIES["HYG_HEADER"] in handle.read()

    forbidden = needles(minted | tokens) | dockerconfigs
    for mode, played in runs.items():
        for form in forbidden:
            assert form not in played.stdout, "a credential is in the %s run's stdout" % mode
            assert form not in played.stderr, "a credential is in the %s run's stderr" % mode
    for mode in runs:
        with open(workdir / ("results-%s.json" % mode), encoding="utf-8") as handle:
            registered = json.load(handle)
        assert registered["pull_secrets_result"] and registered["iam_pull_secret_result"], mode
    scanned = 0
    for path in list(files_under(str(workdir))) + list(files_under(str(tmp_path / "node"))):
        if path == hosts_toml:
            continue
        scanned += 1
        with open(path, "rb") as handle:
            data = handle.read()
        for form in forbidden:
            assert form.encode() not in data, "a credential is in %s" % path
    assert scanned >= 3  # at least the playbook and the two result files
