"""registry_pull_probe on a real node: the kubelet pulls, or says why not, per namespace.

The cluster is ``<repo>/.cluster-node`` (Kubernetes 1.37, containerd 2.4, the private
registry of cluster.json with TLS and htpasswd). A namespace whose ``default`` service
account carries the registry's pull secret (written by icr_pull_secret) pulls; one
without it gets the registry's 401 (``unauthorized``); a tag that does not exist is
``not_found``; the registry on a port the node has no trust for is ``tls``; a registry
that accepts the connection and never answers is ``timeout``.
Probe pods of a killed run are removed, those of a run in progress are kept, and no probe
pod outlives its run. Pod Security ``restricted`` admits the probe pod; ``hostNetwork``,
which this node needs (its CNI is loopback only, docs/testing.md), is refused there with
the namespace and admission message. verify.yml with a pull probe exits 0 when every
namespace pulls and 2 when one cannot.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import yaml

import audit as audit_log
import node_pods
from playbook import Runner

pytestmark = pytest.mark.cluster

PROBE_LABEL = "ibmcloud.registry/pull-probe"
SECRET = "probe-registry"


@pytest.fixture
def namespaces(core):
    """Call it for a fresh namespace (labels optional); deleted at the end."""
    with node_pods.namespace_maker(core, "probe-", timeout=60) as create:
        yield create


def run_tasks(cluster, tmp_path, tasks):
    result = Runner(cluster.kubeconfig, workdir=str(tmp_path)).run(tasks)
    assert "t" in result.tasks, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def add_secret(cluster, tmp_path, namespaces_with_secret):
    reg = cluster.registry
    result = run_tasks(cluster, tmp_path, [{"name": "t", "ibmcloud.registry.icr_pull_secret": {
        "name": SECRET, "namespaces": namespaces_with_secret, "service_accounts": ["default"],
        "registry": {"server": reg["host"], "username": reg["username"], "password": reg["password"]}}}])
    assert result.rc == 0, result.stdout[-3000:]


def probe(cluster, tmp_path, **args):
    args.setdefault("host_network", True)
    args.setdefault("timeout", 60)
    result = run_tasks(cluster, tmp_path, [{"name": "t", "ibmcloud.registry.registry_pull_probe": args,
                                            "ignore_errors": True}])
    return result["t"]


def by_namespace(result):
    return dict((item["namespace"], item) for item in result["results"])


def probe_pods(core, namespace):
    return sorted(pod.metadata.name for pod in core.list_namespaced_pod(namespace, label_selector=PROBE_LABEL).items)


def leftover(core, namespace, run_id, deadline):
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "registry-pull-probe-" + run_id,
                     "labels": {"app.kubernetes.io/managed-by": "ibmcloud.registry", PROBE_LABEL: run_id},
                     "annotations": {"ibmcloud.registry/pull-probe-deadline": str(int(deadline))}},
        "spec": {"hostNetwork": True, "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                 "automountServiceAccountToken": False,
                 "containers": [{"name": "probe", "image": "127.0.0.1:1/none:1"}]}})


def test_pulled_with_the_secret_unauthorized_without_and_leftovers_removed(node_cluster, core, namespaces, tmp_path):
    with_secret, bare = namespaces(), namespaces()
    add_secret(node_cluster, tmp_path, [with_secret])
    # A killed run left a pod in one namespace; another run is still probing in the other.
    leftover(core, with_secret, "killed00", time.time() - 60)
    leftover(core, bare, "inflight", time.time() + 3600)

    log = audit_log.AuditLog(node_cluster.audit_log)
    mark = log.mark()
    result = probe(node_cluster, tmp_path, image=node_cluster.registry["image"], namespaces=[with_secret, bare],
                   fail_on_pull_error=False)
    assert not result.get("failed"), result
    # The waits read the run's pods with LISTs by its label, never a GET per pod.
    pod_reads = [r["verb"] for r in log.requests(mark, verbs={"get", "list"}) if r["resource"] == "pods"]
    assert "list" in pod_reads and "get" not in pod_reads, pod_reads
    items = by_namespace(result)
    print("kubelet messages:", [(i["namespace"], i["outcome"], i["message"]) for i in result["results"]])
    assert items[with_secret]["outcome"] == "pulled", items[with_secret]
    assert items[with_secret]["pulled"] is True
    assert items[bare]["outcome"] == "unauthorized", items[bare]
    # containerd 2.x's words for the registry's 401 with no credentials to answer it.
    assert "no basic auth credentials" in items[bare]["message"] or "401" in items[bare]["message"]
    assert result["leftovers_deleted"] == [with_secret + "/registry-pull-probe-killed00"]
    assert result["changed"] is True
    assert result["counts"]["pulled"] == 1 and result["counts"]["unauthorized"] == 1
    # Only the pod of the run in progress is left.
    assert probe_pods(core, with_secret) == []
    assert probe_pods(core, bare) == ["registry-pull-probe-inflight"]

    # fail_on_pull_error (the default) fails the task, naming the namespace.
    failing = probe(node_cluster, tmp_path, image=node_cluster.registry["image"], namespaces=[with_secret, bare])
    assert failing["failed"] is True
    assert "was not pulled in 1 of 2 namespaces (%s: unauthorized:" % bare in failing["msg"]
    assert failing["changed"] is False


def test_a_wrong_tag_is_not_found(node_cluster, core, namespaces, tmp_path):
    ns = namespaces()
    add_secret(node_cluster, tmp_path, [ns])
    image = node_cluster.registry["image"].rsplit(":", 1)[0] + ":no-such-tag"
    result = probe(node_cluster, tmp_path, image=image, namespaces=[ns], fail_on_pull_error=False)
    item = by_namespace(result)[ns]
    print("kubelet message:", item["message"])
    assert item["outcome"] == "not_found", item
    assert probe_pods(core, ns) == []


class SilentRegistry:
    """Accepts TCP connections on loopback and never answers: a pull that hangs."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _address = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.connected(conn)

    def connected(self, conn):
        """What a connection gets: nothing here."""

    def close(self):
        # Closing ends a hanging pull at once, so the node's serialized pulls go on.
        self.server.close()
        for conn in self.conns:
            conn.close()


class Forwarder(SilentRegistry):
    """A loopback port that forwards every connection to the registry, bytes unchanged."""

    def __init__(self, target_port):
        self.target_port = target_port
        super().__init__()

    def connected(self, conn):
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        self.conns.append(upstream)
        for src, dst in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_a_registry_the_node_does_not_trust_is_tls(node_cluster, core, namespaces, tmp_path):
    """The registry's name on another port: the node trusts the cluster's CA only for the
    registry's own host:port (its hosts.toml), so the same certificate is unknown here."""
    ns = namespaces()
    name, port = node_cluster.registry["host"].rsplit(":", 1)
    forwarder = Forwarder(int(port))
    try:
        result = probe(node_cluster, tmp_path, image="%s:%d/ibmreg/busybox:1" % (name, forwarder.port),
                       namespaces=[ns], fail_on_pull_error=False)
    finally:
        forwarder.close()
    item = by_namespace(result)[ns]
    print("kubelet message:", item["message"])
    assert item["outcome"] == "tls", item
    assert "x509" in item["message"]
    assert probe_pods(core, ns) == []


def test_pod_security_restricted_admits_the_pod_and_refuses_host_network(node_cluster, core, namespaces, tmp_path):
    restricted = namespaces({"pod-security.kubernetes.io/enforce": "restricted"})
    add_secret(node_cluster, tmp_path, [restricted])

    refused = probe(node_cluster, tmp_path, image=node_cluster.registry["image"], namespaces=[restricted],
                    fail_on_pull_error=False)
    item = by_namespace(refused)[restricted]
    print("refused:", item["message"])
    assert refused["failed"] is True  # a probe that cannot run fails even with fail_on_pull_error false
    assert item["outcome"] == "refused", item
    assert item["message"].startswith("namespace %s: Pod Security admission refused the probe pod" % restricted)
    assert 'violates PodSecurity "restricted:latest"' in item["message"] and "hostNetwork" in item["message"]

    # Without hostNetwork the same pod is admitted: its only problem on this node is the
    # node's loopback-only pod network, reported with the kubelet's words.
    admitted = probe(node_cluster, tmp_path, image=node_cluster.registry["image"], namespaces=[restricted],
                     host_network=False, timeout=30, fail_on_pull_error=False)
    item = by_namespace(admitted)[restricted]
    print("without hostNetwork:", item)
    assert item["outcome"] != "refused", item
    assert item["outcome"] == "pulled" or "sandbox" in item["message"], item
    assert probe_pods(core, restricted) == []


def test_a_registry_that_never_answers_is_a_timeout(node_cluster, core, namespaces, tmp_path):
    ns = namespaces()
    silent = SilentRegistry()
    try:
        started = time.monotonic()
        result = probe(node_cluster, tmp_path, image="127.0.0.1:%d/ibmreg/busybox:1" % silent.port,
                       namespaces=[ns], timeout=8, fail_on_pull_error=False)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    item = by_namespace(result)[ns]
    print("timeout:", item)
    assert item["outcome"] == "timeout", item
    assert item["message"].startswith("no pull result within 8 s (")
    assert 8 <= item["seconds"] < 20 and elapsed < 60
    assert probe_pods(core, ns) == []


def verify(cluster, tmp_path, site_vars, playbook):
    workdir = str(tmp_path)
    inventory = os.path.join(workdir, "inventory.yml")
    with open(inventory, "w", encoding="utf-8") as out:
        yaml.safe_dump({"clusters": {"hosts": {"node": {"k8s_kubeconfig": cluster.kubeconfig}},
                                     "vars": {"ansible_connection": "local",
                                              "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}, out)
    vars_file = os.path.join(workdir, "vars.yml")
    with open(vars_file, "w", encoding="utf-8") as out:
        yaml.safe_dump(site_vars, out)
    return Runner(cluster.kubeconfig, workdir=workdir).run(
        [], plays=[{"ansible.builtin.import_playbook": "ibmcloud.registry." + playbook}],
        inventory=inventory, raw=True, args=("-e", "@" + vars_file))


def test_verify_with_a_pull_probe_exits_0_when_all_pull_and_2_when_one_cannot(node_cluster, core, namespaces, tmp_path):
    reg = node_cluster.registry
    served, bare = [namespaces(), namespaces()], namespaces()
    site_vars = {"pull_secrets": {"namespaces": served, "service_accounts": ["default"], "secrets": [
        {"name": SECRET, "registry": {"server": reg["host"], "username": reg["username"], "password": reg["password"]}}]}}
    converged = verify(node_cluster, tmp_path, site_vars, "site")
    assert converged.rc == 0, converged.stdout[-3000:]

    probed = dict(site_vars, pull_probe=[{"image": reg["image"], "part": "pull_secrets", "host_network": True}])
    clean = verify(node_cluster, tmp_path, probed, "verify")
    assert clean.rc == 0, clean.stdout[-4000:] + clean.stderr[-2000:]
    assert "node: 0 difference(s) from the vars file" in clean.stdout

    probed["pull_probe"].append({"image": reg["image"], "namespaces": [bare], "host_network": True})
    drifted = verify(node_cluster, tmp_path, probed, "verify")
    assert drifted.rc == 2, drifted.stdout[-4000:] + drifted.stderr[-2000:]
    assert "%s: image %s is not pulled as service account default (unauthorized)" % (bare, reg["image"]) \
        in drifted.stdout
    assert "could not be verified" not in drifted.stdout
    for ns in served + [bare]:
        assert probe_pods(core, ns) == []
