"""playbooks/site.yml and playbooks/verify.yml on two local clusters at once.

Two control planes of their own (tests/cluster, state dirs in pytest's temporary directory)
are started at the same time, so that nothing here depends on, or disturbs, the shared test
cluster or another run of these tests:

* ``site-a`` is plain Kubernetes, like IBM Cloud Kubernetes Service: the OpenShift parts
  must be skipped with a message, containerd gets its DaemonSet.
* ``site-b`` carries the LOCAL STAND-IN for OpenShift 4 (tests/standins/openshift_flavour.py:
  CRDs, the registry Service, operator Config, dockercfg secrets, a BuildConfig) and the
  router stand-in that admits Routes, so the OpenShift parts run for real against it.

One inventory holds both (each host is a cluster with its own kubeconfig and
ibmcloud_cluster_name); every run uses --forks 2. The vars file is the demo's
(playbooks/vars/demo.yml) plus the IAM part pointed at the LOCAL IAM STAND-IN
(tests/standins/iam_server.py) and one BuildConfig for the builds part.

The tests run in file order and build on each other (module-scoped state): check mode
first, then the first run, the second run, then verify.yml.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import json
import os
import sys

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from playbook import Runner

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "standins"))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))

import audit as audit_log  # noqa: E402  pylint: disable=wrong-import-position
import iam_server  # noqa: E402  pylint: disable=wrong-import-position
import localcluster  # noqa: E402  pylint: disable=wrong-import-position
import openshift_flavour as flavour  # noqa: E402  pylint: disable=wrong-import-position
from router import RouterStandIn  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

HOSTS = ("site-a", "site-b")
OPENSHIFT_HOST = "site-b"
DEMO_VARS = os.path.join(REPO, "playbooks", "vars", "demo.yml")
IAM_NAMESPACE = "demo-iam"
BUILD_CONFIG = "hello"
CANARY_IAM_KEY = "CANARY-site-ibmcloud-key-4e7d1c"


def _events_since(log: audit_log.AuditLog, mark: int, user: str = "admin") -> list:
    return log.events(mark, user)


def real_writes(log: audit_log.AuditLog, mark: int) -> list:
    """Write requests of the client (admin) since mark, server-side dry runs left out.

    kubernetes.core.k8s (used by the containerd_hosts role) predicts in check mode with
    server-side dry run: a create/patch request with dryRun=All, which the API server
    answers without storing anything. Every other request with a write verb is a write.
    """
    found = []
    for event in _events_since(log, mark):
        if event.get("verb") not in audit_log.WRITE_VERBS:
            continue
        if "dryRun=All" in event.get("requestURI", ""):
            continue
        found.append(audit_log.summary(event))
    return found


def admin_window(log: audit_log.AuditLog, mark: int) -> tuple:
    """(first, last) time of the client's requests since mark."""
    stamps = [datetime.datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00"))
              for e in _events_since(log, mark)]
    assert stamps, "no request from the client"
    return min(stamps), max(stamps)


class Site:
    """The two clusters, their inventory and vars file, and ansible-playbook runs over both."""

    def __init__(self, infos: dict, workdir: str, iam_url: str):
        self.infos = infos
        self.workdir = workdir
        self.audit = {host: audit_log.AuditLog(info.audit_log) for host, info in infos.items()}
        self.api = {host: k8s_config.new_client_from_config(config_file=info.fixture_kubeconfig)
                    for host, info in infos.items()}
        self.core = {host: k8s.CoreV1Api(api) for host, api in self.api.items()}
        self.inventory = os.path.join(workdir, "inventory.yml")
        self.vars_file = os.path.join(workdir, "vars.yml")
        self.runner = Runner(infos["site-a"].kubeconfig, workdir=workdir)
        self.results: dict = {}
        inventory = {
            "clusters": {
                "hosts": {host: {"k8s_kubeconfig": info.kubeconfig, "ibmcloud_cluster_name": host}
                          for host, info in infos.items()},
                "vars": {"ansible_connection": "local",
                         "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            },
            "containerd_nodes": {"hosts": {}},
        }
        with open(self.inventory, "w", encoding="utf-8") as out:
            yaml.safe_dump(inventory, out)
        with open(DEMO_VARS, encoding="utf-8") as src:
            site_vars = yaml.safe_load(src)
        # The demo's parts, plus IAM against the stand-in (key from the environment, as an
        # AWX credential injects it) and one BuildConfig that the OpenShift stand-in has.
        site_vars["iam_pull_secret"] = {"mode": "namespace", "namespaces": [IAM_NAMESPACE], "iam_url": iam_url}
        site_vars["openshift_builds"]["projects"][0]["build_configs"] = [BUILD_CONFIG]
        with open(self.vars_file, "w", encoding="utf-8") as out:
            yaml.safe_dump(site_vars, out)

    def play(self, playbook: str, check: bool = False, diff: bool = False):
        """Run playbooks/<playbook> from the installed collection over both clusters, forks 2."""
        result = self.runner.run(
            [], plays=[{"ansible.builtin.import_playbook": "ibmcloud.registry." + playbook}],
            inventory=self.inventory, check=check, diff=diff,
            args=("-e", "@" + self.vars_file, "--forks", "2"),
            env={"IC_API_KEY": CANARY_IAM_KEY})
        result.document = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
        return result

    def marks(self) -> dict:
        return {host: log.mark() for host, log in self.audit.items()}

    def writes(self, marks: dict) -> dict:
        return {host: real_writes(self.audit[host], mark) for host, mark in marks.items()}


def host_tasks(result, host: str) -> list:
    """(task name, result) of one host, in order, from the ansible.posix.json document."""
    found = []
    for play in result.document.get("plays", []):
        for task in play.get("tasks", []):
            if host in task.get("hosts", {}):
                found.append((task["task"]["name"], task["hosts"][host]))
    return found


def failures(result) -> str:
    """The failed tasks of every host with their messages, for assertion messages."""
    lines = []
    for host in result.document.get("stats", {}):
        for name, outcome in host_tasks(result, host):
            if outcome.get("failed"):
                items = [r.get("msg") for r in outcome.get("results") or [] if isinstance(r, dict) and r.get("failed")]
                lines.append("%s / %s: %s" % (host, name, items or outcome.get("msg")))
    return "\n".join(lines) or (result.stdout[-3000:] + result.stderr[-3000:])


def changed_tasks(result, host: str) -> list:
    return [name for name, outcome in host_tasks(result, host) if outcome.get("changed")]


def debug_messages(result, host: str) -> list:
    lines = []
    for _name, outcome in host_tasks(result, host):
        msg = outcome.get("msg")
        lines.extend(msg if isinstance(msg, list) else [msg] if isinstance(msg, str) else [])
    return lines


def module_actions(result, host: str) -> list:
    """Per task: the per-namespace actions the modules reported (results and service accounts)."""
    found = []
    for name, outcome in host_tasks(result, host):
        loop = [r for r in outcome.get("results") or [] if isinstance(r, dict) and "ansible_loop_var" in r]
        for item in loop or [outcome]:
            actions = [(r.get("namespace"), r.get("name"), r.get("action"))
                       for r in (item.get("results") or []) + (item.get("service_accounts") or [])
                       if isinstance(r, dict) and "action" in r]
            if actions:
                found.append((name, sorted(actions)))
    return found


def dockerconfig(core, namespace: str, name: str) -> dict:
    secret = core.read_namespaced_secret(name, namespace)
    assert secret.type == "kubernetes.io/dockerconfigjson"
    return json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))


def pull_refs(core, namespace: str, sa: str = "default") -> list:
    return [ref.name for ref in core.read_namespaced_service_account(sa, namespace).image_pull_secrets or []]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    # Both control planes start at the same time, in state dirs of this test run only (so that
    # two runs at once, a developer's and `make test`, never share or stop each other's).
    dirs = {host: str(tmp_path_factory.mktemp("cluster-" + host)) for host in HOSTS}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {host: pool.submit(localcluster.ensure_running, path) for host, path in dirs.items()}
        infos = {}
        try:
            infos = {host: future.result() for host, future in futures.items()}
        except BaseException:
            for path in dirs.values():
                localcluster.stop(path)
            raise
    iam = iam_server.IamStandIn().start()
    iam.add_admin_key(CANARY_IAM_KEY)
    openshift = infos[OPENSHIFT_HOST]
    router = None
    try:
        flavour.install(openshift.fixture_kubeconfig,
                        k8s_config.new_client_from_config(config_file=openshift.fixture_kubeconfig))
        router = RouterStandIn(openshift.fixture_kubeconfig).start()
        state = Site(infos, str(tmp_path_factory.mktemp("site")), iam.url)
        state.iam, state.router = iam, router
        prepared = state.play("demo_prepare")
        assert prepared.rc == 0, failures(prepared)
        for host, core in state.core.items():
            core.create_namespace({"metadata": {"name": IAM_NAMESPACE}})
            flavour.wait_for_service_account(core, IAM_NAMESPACE)
        api = state.api[OPENSHIFT_HOST]
        # What OpenShift's controllers would have made: dockercfg secrets of `default` in
        # `default` (the internal registry's credentials) and of the builder account, and a
        # BuildConfig for the builds part.
        flavour.project(api, "default", accounts=("default",))
        flavour.project(api, "demo-apps", accounts=("default", "builder"))
        flavour.build_config(api, "demo-apps", BUILD_CONFIG)
        yield state
    finally:
        if router is not None:
            router.stop()
        iam.stop()
        for path in dirs.values():
            localcluster.stop(path)


def test_check_mode_first_predicts_and_writes_nothing(site):
    marks, iam_mark = site.marks(), site.iam.mark()
    check = site.play("site", check=True, diff=True)
    assert check.rc == 0, failures(check)
    assert site.writes(marks) == {"site-a": [], "site-b": []}
    assert site.iam.writes(iam_mark) == []
    site.results["check"] = check
    for host in site.infos:
        assert check.document["stats"][host]["changed"] > 0
        assert any(line.startswith(host + ": ") and "would change (check mode)" in line
                   for line in debug_messages(check, host))


def test_first_run_configures_both_clusters_in_parallel(site):
    marks = site.marks()
    first = site.play("site")
    assert first.rc == 0, failures(first)
    site.results["first"] = first

    # Check mode predicted exactly this: the same tasks changed, with the same actions
    # per namespace, on each cluster.
    check = site.results["check"]
    for host in site.infos:
        assert changed_tasks(check, host) == changed_tasks(first, host)
        assert module_actions(check, host) == module_actions(first, host)

    # Both clusters were worked on at the same time (forks 2).
    windows = {host: admin_window(site.audit[host], mark) for host, mark in marks.items()}
    (a_start, a_end), (b_start, b_end) = windows["site-a"], windows["site-b"]
    assert max(a_start, b_start) < min(a_end, b_end), windows

    for host, core in site.core.items():
        copied = dockerconfig(core, "demo-apps", "all-icr-io")
        assert copied == dockerconfig(core, "default", "all-icr-io")
        assert list(dockerconfig(core, "demo-web", "demo-private-registry")["auths"]) == ["registry.demo.invalid:5000"]
        assert list(dockerconfig(core, "demo-cp", "entitled-cp-icr-io")["auths"]) == ["cp.icr.io"]
        assert {"all-icr-io", "demo-private-registry"} <= set(pull_refs(core, "demo-web"))
        assert pull_refs(core, "demo-cp") == ["entitled-cp-icr-io"]
        # IAM part, per cluster: its own service ID (named from the host's cluster name) and key.
        iam_secret = host + "-icr-io"
        assert "us.icr.io" in dockerconfig(core, IAM_NAMESPACE, iam_secret)["auths"]
        assert iam_secret in pull_refs(core, IAM_NAMESPACE)
    names = sorted(s["name"] for s in site.iam.snapshot()["service_ids"])
    assert names == ["site-a-%s-id" % IAM_NAMESPACE, "site-b-%s-id" % IAM_NAMESPACE]

    # Plain Kubernetes: OpenShift parts skipped with the reason; containerd DaemonSet there.
    plain = debug_messages(first, "site-a")
    assert any(line.startswith("openshift_registry: skipped - this cluster is plain Kubernetes") for line in plain)
    apps = k8s.AppsV1Api(site.api["site-a"])
    assert apps.read_namespaced_daemon_set("ibmcloud-registry-containerd-hosts", "kube-system")

    # OpenShift stand-in: route admitted, internal registry pull secret for its host, image
    # stream tag, builder account and BuildConfig secrets; containerd skipped (CRI-O).
    shifted = debug_messages(first, OPENSHIFT_HOST)
    assert "containerd_hosts: skipped - OpenShift nodes run CRI-O, not containerd" in shifted
    custom = k8s.CustomObjectsApi(site.api[OPENSHIFT_HOST])
    route = custom.get_namespaced_custom_object("route.openshift.io", "v1", "openshift-image-registry",
                                                "routes", "image-registry")
    internal = dockerconfig(site.core[OPENSHIFT_HOST], "demo-apps", "internal-registry")
    assert list(internal["auths"]) == [route["spec"]["host"]]
    stream = custom.get_namespaced_custom_object("image.openshift.io", "v1", "demo-apps", "imagestreams", "hello")
    assert [t["name"] for t in stream["spec"]["tags"]] == ["1.0"]
    build = custom.get_namespaced_custom_object("build.openshift.io", "v1", "demo-apps", "buildconfigs",
                                                BUILD_CONFIG)
    assert build["spec"]["output"]["pushSecret"]["name"] == "demo-private-registry"
    assert "demo-private-registry" in pull_refs(site.core[OPENSHIFT_HOST], "demo-apps", "builder")


def test_second_run_changes_nothing(site):
    marks, iam_mark = site.marks(), site.iam.mark()
    second = site.play("site")
    assert second.rc == 0, failures(second)
    for host in site.infos:
        assert second.document["stats"][host]["changed"] == 0, changed_tasks(second, host)
        assert any(line == host + ": 0 object(s) changed" for line in debug_messages(second, host))
    assert site.writes(marks) == {"site-a": [], "site-b": []}
    assert site.iam.writes(iam_mark) == []


def test_verify_passes_then_names_the_drift(site):
    marks = site.marks()
    clean = site.play("verify")
    assert clean.rc == 0, failures(clean)
    assert site.writes(marks) == {"site-a": [], "site-b": []}
    for host in site.infos:
        assert host + ": 0 difference(s) from the vars file" in debug_messages(clean, host)

    # Drift on site-a: a pull secret deleted, a reference removed from a service account.
    core = site.core["site-a"]
    core.delete_namespaced_secret("all-icr-io", "demo-web")
    refs = [{"name": name} for name in pull_refs(core, "demo-cp") if name != "entitled-cp-icr-io"]
    core.patch_namespaced_service_account("default", "demo-cp", {"imagePullSecrets": refs or None})
    # Drift on site-b: the router (stand-in) no longer admits the registry's route.
    site.router.ignored_namespaces.add("openshift-image-registry")
    custom = k8s.CustomObjectsApi(site.api[OPENSHIFT_HOST])
    custom.patch_namespaced_custom_object_status(
        "route.openshift.io", "v1", "openshift-image-registry", "routes", "image-registry",
        {"status": {"ingress": []}}, _content_type="application/merge-patch+json")

    marks = site.marks()
    drifted = site.play("verify")
    assert drifted.rc != 0
    assert site.writes(marks) == {"site-a": [], "site-b": []}
    stats = drifted.document["stats"]
    assert stats["site-a"]["failures"] == 1 and stats["site-b"]["failures"] == 1
    report = debug_messages(drifted, "site-a")
    assert "site-a: 2 difference(s) from the vars file" in report
    assert "demo-web: Secret all-icr-io is missing" in report
    assert "demo-cp: ServiceAccount default does not reference entitled-cp-icr-io" in report
    failure = [outcome for name, outcome in host_tasks(drifted, "site-a")
               if name == "Fail when the cluster drifted from the vars file"][0]
    assert failure["failed"] and "demo-web: Secret all-icr-io is missing" in failure["msg"]
    shifted = debug_messages(drifted, "site-b")
    assert "site-b: 1 difference(s) from the vars file" in shifted
    assert ("openshift-image-registry: Route image-registry is not admitted by a router "
            "(status.ingress has no Admitted=True)") in shifted

    # site.yml repairs site-a (site-b's route is admitted again once the router is back), and
    # verify passes again.
    site.router.ignored_namespaces.discard("openshift-image-registry")
    repaired = site.play("site")
    assert repaired.rc == 0, failures(repaired)
    assert repaired.document["stats"]["site-b"]["changed"] == 0
    assert dockerconfig(core, "demo-web", "all-icr-io")
    assert "entitled-cp-icr-io" in pull_refs(core, "demo-cp")
    assert site.play("verify").rc == 0


def test_secrets_never_reach_the_output(site):
    result = site.play("site", check=True, diff=True)
    assert result.rc == 0
    needles = [CANARY_IAM_KEY, "demo-password-placeholder", "demo-entitlement-key-placeholder",
               base64.b64encode(b"demo-robot:demo-password-placeholder").decode()]
    for needle in needles:
        assert needle not in result.stdout and needle not in result.stderr, needle
