"""Faults on the real node cluster: the API server restarts, the registry goes away, the node
goes NotReady, each while the collection is at work.

The cluster is ``<repo>/.cluster-faults`` (localcluster.py --node, of this file alone: it
kills and freezes that cluster's processes): Kubernetes 1.37 with one node (containerd
2.x, kubelet) and a private registry on loopback. Every test puts back what it broke and
checks that the cluster works again before it ends, so the next one starts healthy.

1. kube-apiserver killed and restarted on the same etcd data while icr_pull_secret links
   a secret in many namespaces and pods are being created: the run completes or names
   each failed namespace with the API server's unreachability; a rerun converges, with
   every secret and reference correct and the references already there kept; the pods
   created across the restart run with the private image (and one without the secret
   does not).
2. The registry down (killed, then frozen) during validate_credentials, and the token
   service stand-in down behind a token-auth registry: a short error naming the address
   that could not be reached, and not one write (audit log).
3. kubelet frozen, the node NotReady, while the containerd_hosts DaemonSet rolls: the
   role's wait ends within containerd_hosts_rollout_timeout, naming the node and its
   state; once kubelet runs again, the same role run rolls out.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import secrets
import sys
import threading
import time

import pytest

import node_pods
from playbook import REPO, Runner
from reliability import common

sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))
sys.path.insert(0, os.path.join(REPO, "tests", "standins"))

import audit as audit_log  # noqa: E402  pylint: disable=wrong-import-position
import localcluster  # noqa: E402  pylint: disable=wrong-import-position
import localnode  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

CLUSTER_DIR = os.path.join(REPO, ".cluster-faults")
POD_TIMEOUT = 120
SECRET = "faults-pull"
KEEP = "keep-me"  # a reference that was on every ServiceAccount before the module ran
NAMESPACES = 48
DAEMONSET = "ctd-faults"


@pytest.fixture(scope="module")
def node_cluster():
    return localcluster.ensure_running(CLUSTER_DIR, node=True)


@pytest.fixture(scope="module")
def api(core):
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    return {"core": core, "apps": client.AppsV1Api(core.api_client)}


@pytest.fixture
def audit(node_cluster):
    return audit_log.AuditLog(node_cluster.audit_log)


@pytest.fixture
def namespaces(core):
    """Call it for a fresh namespace (labels optional), its default ServiceAccount there."""
    with node_pods.namespace_maker(core, "faults-", timeout=POD_TIMEOUT) as create:
        yield create


def wait_for(what, check, timeout=POD_TIMEOUT):
    return common.wait_for(what, check, timeout=timeout, interval=0.5)


def node_ready(core, name=localnode.NODE_NAME):
    """(status, reason) of the node's Ready condition."""
    for condition in core.read_node(name).status.conditions or []:
        if condition.type == "Ready":
            return condition.status, condition.reason
    return "Unknown", None


def assert_healthy(node_cluster, core):
    """The cluster as the next test expects it: every process up, /readyz, the node Ready."""
    assert localcluster.info(node_cluster.state_dir) is not None
    wait_for("node %s Ready" % localnode.NODE_NAME, lambda: node_ready(core)[0] == "True", timeout=180)


def app_pod(core, namespace, image, name):
    node_pods.create_pod(core, namespace, image, name)


def wait_running(core, namespace, name):
    return node_pods.wait_running(core, namespace, name, timeout=POD_TIMEOUT)


def wait_pull_refused(core, namespace, name):
    node_pods.assert_unauthorized(node_pods.wait_pull_failed(core, namespace, name, timeout=POD_TIMEOUT))


def refs(core, namespace, sa="default"):
    return [r.name for r in core.read_namespaced_service_account(sa, namespace).image_pull_secrets or []]


def auths(core, namespace, name=SECRET):
    secret = core.read_namespaced_secret(name, namespace)
    assert secret.type == "kubernetes.io/dockerconfigjson"
    return json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]


# --- 1. kube-apiserver restarted while the module runs and pods are created -------------------


class PodMaker(threading.Thread):
    """Creates one pod after another, each retried until the API server takes it."""

    def __init__(self, core, targets, image, gap=1.5):
        super().__init__(daemon=True)
        self.core, self.targets, self.image, self.gap = core, targets, image, gap
        self.stop = threading.Event()
        self.made = []  # (namespace, pod, attempts that failed first)
        self.error = None

    def run(self):
        index = 0
        try:
            while not self.stop.is_set():
                namespace = self.targets[index % len(self.targets)]
                name = "app-%d" % index
                failures, deadline = 0, time.monotonic() + 120
                while True:
                    try:
                        app_pod(self.core, namespace, self.image, name)
                        break
                    except Exception as exc:  # pylint: disable=broad-except  # the API server is away
                        if getattr(exc, "status", None) == 409:  # the lost answer to a create that was made
                            break
                        failures += 1
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)
                self.made.append((namespace, name, failures))
                index += 1
                self.stop.wait(self.gap)
        except Exception as exc:  # pylint: disable=broad-except  # reported by the test
            self.error = exc


def test_apiserver_restart_while_the_module_runs_and_pods_are_created(node_cluster, core, audit, namespaces,
                                                                      tmp_path):
    reg = node_cluster.registry
    label = "faults-" + secrets.token_hex(3)
    targets = [namespaces(labels={"faults": label}, wait=False) for _index in range(NAMESPACES)]
    common.wait_for_service_accounts(core, targets, timeout=180)
    for namespace in targets:
        # References made by someone else before: the module must keep them.
        core.patch_namespaced_service_account("default", namespace, {"imagePullSecrets": [{"name": KEEP}]})
    with_secret, bare = namespaces(), namespaces()
    runner = Runner(node_cluster.kubeconfig, workdir=str(tmp_path))

    def task(namespaces_args, **extra):
        args = {"name": SECRET, "service_accounts": ["default"], **namespaces_args,
                "registry": {"server": reg["host"], "username": reg["username"], "password": reg["password"]}}
        args.update(extra)
        return {"name": "t", "ibmcloud.registry.icr_pull_secret": args}

    first = runner.run([task({"namespaces": [with_secret]})])
    assert first.rc == 0, first.stdout[-3000:]

    pods = PodMaker(core, [with_secret, with_secret, bare], reg["image"])
    mark = audit.mark()
    outcome = {}
    # One write at a time spreads the 96 writes over seconds: the API server goes away while
    # the module links the secret to the ServiceAccounts (where an entry could get lost).
    run = threading.Thread(target=lambda: outcome.update(played=runner.run(
        [task({"namespace_selector": ["faults=" + label]}, parallelism=1)])))
    pods.start()
    run.start()
    needles = (b'"stage":"ResponseComplete"', b'"verb":"patch"', b'"resource":"serviceaccounts"',
               b'"username":"admin"')
    common.wait_for("the module's first links", lambda: common.raw_count(
        node_cluster.audit_log, mark, needles) >= NAMESPACES // 6, timeout=180, interval=0.02)
    argv = common.kill_apiserver(node_cluster.state_dir)
    hit_mid_run = run.is_alive()
    time.sleep(3)  # down long enough that the module's retries meet a closed port
    restarted = common.restart_apiserver(argv, node_cluster.state_dir)
    assert restarted is not None and restarted.server == node_cluster.server
    run.join(timeout=600)
    time.sleep(2 * pods.gap)  # a few pods after the restart too
    pods.stop.set()
    pods.join(timeout=150)
    assert pods.error is None, pods.error

    assert hit_mid_run, "the module had finished before the API server went away"
    played = outcome["played"]
    result = played["t"]
    print("first run: rc %s, %s" % (played.rc, result.get("msg", "")[:2000]))
    assert "Traceback" not in played.stdout + played.stderr
    assert reg["password"] not in played.stdout + played.stderr
    items = result["results"]
    assert sorted(i["namespace"] for i in items) == sorted(targets)  # every namespace, once
    if played.rc == 0:
        assert result["counts"]["created"] == NAMESPACES, result["counts"]
    else:
        # Each failure is one namespace, saying the API server could not be reached, and
        # the message lists what was done and what was not.
        failed = [i for i in items + result.get("service_accounts", []) if i["action"] == "failed"]
        assert failed, result["msg"]
        for item in failed:
            assert re.match(r"(Could not reach the API server|Failed \(5\d\d\)) to ", item["error"]), item
        assert "not done: " in result["msg"], result["msg"]

    rerun = runner.run([task({"namespace_selector": ["faults=" + label]})])
    assert rerun.rc == 0, rerun.stdout[-3000:]
    counts = rerun["t"]["counts"]
    assert counts["failed"] == 0 and counts["created"] + counts["unchanged"] == NAMESPACES, counts
    listed = core.list_secret_for_all_namespaces(field_selector="metadata.name=" + SECRET).items
    per_namespace = collections.Counter(s.metadata.namespace for s in listed)
    for namespace in targets:
        assert per_namespace[namespace] == 1
        entry = auths(core, namespace)[reg["host"]]
        assert (entry["username"], entry["password"]) == (reg["username"], reg["password"])
        assert refs(core, namespace) == [KEEP, SECRET], namespace  # nothing lost, nothing doubled
    mark = audit.mark()
    third = runner.run([task({"namespace_selector": ["faults=" + label]})])
    assert third.rc == 0 and third["t"]["changed"] is False
    assert audit.writes(mark) == []

    # Pods made across the restart: at least one waited for the API server to come back.
    assert any(failures for _ns, _name, failures in pods.made), pods.made
    assert len(pods.made) >= 3, pods.made
    for namespace, name, _failures in pods.made:
        if namespace == with_secret:
            running = wait_running(core, namespace, name)
            assert [r.name for r in running.spec.image_pull_secrets or []] == [SECRET]
        else:
            wait_pull_refused(core, namespace, name)  # negative control: no secret, no pull
    assert_healthy(node_cluster, core)


# --- 2. the registry down during validate_credentials ----------------------------------------


def _validate_task(namespace, server, username, password, ca, name="checked", **extra):
    return {"name": "t", "ibmcloud.registry.icr_pull_secret": {
        "name": name, "namespaces": [namespace], "validate_credentials": True, "registry_ca_path": ca,
        "registry": {"server": server, "username": username, "password": password}, **extra}}


def _refused(played, audit, mark, core, namespace, password):
    """The task failed with a message, no trace, no secret value, and nothing written."""
    text = played.stdout + played.stderr
    assert played.rc != 0
    assert "Traceback" not in text and "MODULE FAILURE" not in text, text[-3000:]
    assert password not in text
    assert audit.writes(mark) == []
    assert audit.count(mark)  # the module did read the cluster: the log is not silent
    assert [s.metadata.name for s in core.list_namespaced_secret(namespace).items] == []
    return played["t"]["msg"]


def test_registry_down_during_validate_credentials(node_cluster, core, audit, namespaces, tmp_path):
    reg = node_cluster.registry
    # By address: the controller resolves no name (the registry's name exists on the node only).
    address, ca = reg["address"], reg["ca"]
    url = "https://%s/v2/" % address
    runner = Runner(node_cluster.kubeconfig, workdir=str(tmp_path))
    checked = namespaces()

    # Controls: the registry up, good credentials pass and are written; a wrong password
    # is a rejection (the registry answered), not "could not reach".
    good = runner.run([_validate_task(checked, address, reg["username"], reg["password"], ca)])
    assert good.rc == 0 and good["t"]["changed"], good.stdout[-3000:]
    wrong = namespaces()
    mark = audit.mark()
    message = _refused(runner.run([_validate_task(wrong, address, reg["username"], "wrong-" + secrets.token_hex(6),
                                                  ca)]), audit, mark, core, wrong, reg["password"])
    assert "rejected the credentials of user %s" % reg["username"] in message, message

    state_dir = node_cluster.state_dir
    argv = common.kill_component(state_dir, "registry")
    try:
        down = namespaces()
        mark = audit.mark()
        message = _refused(runner.run([_validate_task(down, address, reg["username"], reg["password"], ca)]),
                           audit, mark, core, down, reg["password"])
        assert message == "validate_credentials: could not reach %s: [Errno 111] Connection refused; " \
                          "nothing was written" % url, message
    finally:
        common.start_component(state_dir, "registry", argv,
                               lambda: localcluster._get(url, ca=ca) == 401)  # pylint: disable=protected-access

    # Frozen: the port accepts, nothing answers; the login check gives up after its timeout.
    common.freeze_component(state_dir, "registry")
    try:
        frozen = namespaces()
        mark = audit.mark()
        started = time.monotonic()
        played = runner.run([_validate_task(frozen, address, reg["username"], reg["password"], ca)])
        elapsed = time.monotonic() - started
        message = _refused(played, audit, mark, core, frozen, reg["password"])
        assert message.startswith("validate_credentials: could not reach %s: " % url), message
        assert "timed out" in message and message.endswith("; nothing was written"), message
        assert elapsed < 90, elapsed
    finally:
        common.thaw_component(state_dir, "registry")

    # Back: the same task passes again, and a pod pulls from the registry.
    again = namespaces()
    # (kubelet picks credentials by the image's registry name, which only the node resolves.)
    passed = runner.run([_validate_task(again, address, reg["username"], reg["password"], ca),
                         {"name": "by name", "ibmcloud.registry.icr_pull_secret": {
                             "name": SECRET, "namespaces": [again], "service_accounts": ["default"],
                             "registry": {"server": reg["host"], "username": reg["username"],
                                          "password": reg["password"]}}}])
    assert passed.rc == 0 and passed["t"]["changed"], passed.stdout[-3000:]
    app_pod(core, again, reg["image"], "after")
    wait_running(core, again, "after")
    assert_healthy(node_cluster, core)


def test_token_service_down_behind_a_token_registry(node_cluster, core, audit, namespaces, tmp_path):
    import iam_server  # pylint: disable=import-outside-toplevel
    import token_registry  # pylint: disable=import-outside-toplevel

    admin_key = "ADMIN-faults-" + secrets.token_urlsafe(16)
    iam = iam_server.IamStandIn().start()
    iam.add_admin_key(admin_key)
    regs = token_registry.TokenRegistries(str(tmp_path / "token-registry"), iam.url, admin_key)
    try:
        regs.start()
        client = token_registry.IamClient(iam.url, admin_key, iam_server.DEFAULT_ACCOUNT)
        sid = client.service_id("faults-" + secrets.token_hex(3))
        client.policy(sid["iam_id"], ["Reader"], "us-south", None)
        _key_id, key = client.api_key(sid["iam_id"], "faults-key")
        server, ca = regs.addresses[token_registry.IAM_DOMAIN], regs.pki["ca"]
        runner = Runner(node_cluster.kubeconfig, workdir=str(tmp_path))

        good = runner.run([_validate_task(namespaces(), server, "iamapikey", key, ca)])
        assert good.rc == 0, good.stdout[-3000:]          # control: the token flow works
        realm = regs.token.realm
        regs.token.stop()
        regs.token = None
        down = namespaces()
        mark = audit.mark()
        message = _refused(runner.run([_validate_task(down, server, "iamapikey", key, ca)]),
                           audit, mark, core, down, key)
        assert message == "validate_credentials: could not reach %s: [Errno 111] Connection refused; " \
                          "nothing was written" % realm, message
    finally:
        regs.stop()
        iam.stop()


# --- 3. the node NotReady while the containerd hosts DaemonSet rolls --------------------------


_role_play = node_pods.containerd_hosts_play
_mirror = node_pods.mirror_declaration


def test_node_not_ready_while_the_daemonset_rolls(node_cluster, api, namespaces, tmp_path):
    core, apps = api["core"], api["apps"]
    reg = node_cluster.registry
    config_path = node_pods.node_config_path(node_cluster)
    namespace = namespaces()
    runner = Runner(node_cluster.kubeconfig, workdir=str(tmp_path))
    secret = runner.run([{"name": "t", "ibmcloud.registry.icr_pull_secret": {
        "name": "init-image", "namespaces": [namespace], "service_accounts": ["default"],
        "registry": {"server": reg["host"], "username": reg["username"], "password": reg["password"]}}}])
    assert secret.rc == 0, secret.stdout[-3000:]
    first, second = ("faults-%s-%s.ibmreg.test" % (n, secrets.token_hex(3)) for n in ("a", "b"))
    role_vars = node_pods.cluster_mode_vars(node_cluster, namespace, DAEMONSET, [_mirror(node_cluster, first)])
    rolled_vars = dict(role_vars, containerd_hosts_registries=[_mirror(node_cluster, first),
                                                               _mirror(node_cluster, second)])
    state_dir = node_cluster.state_dir
    try:
        # Control: with the node Ready the role rolls out and returns.
        ready = runner.run([], plays=_role_play(role_vars, node_cluster.kubeconfig))
        assert ready.rc == 0, ready.stdout[-4000:]

        common.freeze_component(state_dir, "kubelet")
        # The node lifecycle controller marks the node after its grace period (50 s).
        wait_for("node %s NotReady" % localnode.NODE_NAME, lambda: node_ready(core)[0] != "True", timeout=150)
        timeout = 30
        stuck = runner.run([], plays=_role_play(dict(rolled_vars, containerd_hosts_rollout_timeout=timeout),
                                                node_cluster.kubeconfig))
        assert stuck.rc != 0, stuck.stdout[-4000:]
        assert "Traceback" not in stuck.stdout + stuck.stderr
        ran = common.task_results(stuck)
        wait_task = "Wait until every node runs the DaemonSet's current pod"
        (waited,) = [seconds for task, _r, seconds in ran if task.endswith(wait_task)]
        (message,) = [r["msg"] for task, r, _s in ran if task.endswith("Name the nodes that did not roll")]
        print("rollout wait %.1f s, message: %s" % (waited, message))
        assert message.startswith("DaemonSet %s/%s did not roll out within %d s (containerd_hosts_rollout_timeout): "
                                  % (namespace, DAEMONSET, timeout)), message
        assert "node %s: pod %s-" % (localnode.NODE_NAME, DAEMONSET) in message \
            or "node %s still runs pod %s-" % (localnode.NODE_NAME, DAEMONSET) in message, message
        assert "node %s is NotReady (Ready=Unknown" % localnode.NODE_NAME in message, message
        assert "have no pod of DaemonSet" not in message, message   # a node's name, not a count
        assert waited <= timeout + 8, waited                          # the wait ended on time
    finally:
        common.thaw_component(state_dir, "kubelet")
    try:
        assert_healthy(node_cluster, core)
        # The node is back: the same variables roll out, the role returns once the pod runs.
        back = runner.run([], plays=_role_play(rolled_vars, node_cluster.kubeconfig))
        assert back.rc == 0, back.stdout[-4000:]
        checksum = apps.read_namespaced_daemon_set(DAEMONSET, namespace).spec.template.metadata.annotations[
            "ibmcloud.registry/hosts-checksum"]
        pods = [p for p in core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=" + DAEMONSET)
                .items if p.metadata.deletion_timestamp is None]
        assert [p.metadata.annotations["ibmcloud.registry/hosts-checksum"] for p in pods] == [checksum]
        assert os.path.isfile(os.path.join(config_path, second, "hosts.toml"))
    finally:
        node_pods.remove_containerd_hosts(runner, role_vars, (first, second), node_cluster.kubeconfig)
    assert not os.path.exists(os.path.join(config_path, second))
