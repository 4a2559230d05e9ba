"""containerd_hosts on a real node: the DaemonSet runs there, pods pull through its files.

The cluster is ``<repo>/.cluster-node`` (localcluster.py --node): Kubernetes 1.37 with one
node (containerd 2.4.2's CRI plugin, kubelet) and a private registry on loopback (TLS
from the cluster's CA, htpasswd). Registry names such as ``mirror-<hex>.ibmreg.test``
exist only in the role's variables: a pull of ``<mirror>/ibmreg/busybox:1`` can only
succeed through the hosts.toml the role wrote, which sends it to the local registry.

- cluster mode: the role's DaemonSet (init image from the private registry, pulled with
  a pull secret on the namespace's default ServiceAccount; the node's own pause image)
  rolls out on node ``localhost``, the role waits for it, a pod pulls through the mirror,
  a rerun sends no write request (audit log), changing the variables rolls the pod, and
  a rollout that cannot finish fails with the node's name and the pull error;
- Pod Security admission: a namespace labelled restricted is refused before any write
  (and the API server really refuses the DaemonSet's pod there), a namespace the role
  creates is labelled privileged;
- nodes mode against the node's own containerd: config_path read from its config.toml
  (version 3), hosts.toml written there, a pod pulls through it, and stops pulling once
  the role removed it.
"""

from __future__ import annotations

import os
import secrets
import tomllib

import pytest

import audit as audit_log
import localnode
import node_pods
from node_pods import create_pod as app_pod, mirror_declaration, wait_running
from node_pods import containerd_hosts_play as role_play
from playbook import Runner

pytestmark = pytest.mark.cluster

DAEMONSET = "ctd-hosts"


@pytest.fixture(scope="module")
def api(core):
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    return {"core": core, "apps": client.AppsV1Api(core.api_client)}


@pytest.fixture(scope="module")
def node_containerd(node_cluster):
    """The node's containerd config.toml and the config_path it names (its CRI plugin's)."""
    path, document = node_pods.node_containerd_config(node_cluster)
    return {"config": path, "config_path": node_pods.node_config_path(node_cluster), "version": document["version"]}


@pytest.fixture
def namespaces(core):
    """Call it to create a fresh namespace (labels optional); deleted at the end."""
    with node_pods.namespace_maker(core, "ctd-") as create:
        yield create


def changed_count(result):
    return sum(host.get("changed", 0) for host in result.stats.values())


def pull_secrets(node_cluster, tmp_path, namespace, servers):
    """Pull secrets for ``servers`` on the namespace's default ServiceAccount (icr_pull_secret)."""
    registry = node_cluster.registry
    tasks = [{"name": "secret %d" % index, "ibmcloud.registry.icr_pull_secret": {
        "name": "pull-%d" % index, "namespaces": [namespace], "service_accounts": ["default"],
        "registry": {"server": server, "username": registry["username"], "password": registry["password"]}}}
        for index, server in enumerate(servers)]
    result = Runner(node_cluster.kubeconfig, workdir=str(tmp_path)).run(tasks)
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]


def image_through(node_cluster, name):
    """The cluster's busybox image, named by another registry host."""
    return "%s/%s" % (name, node_cluster.registry["image"].split("/", 1)[1])


def wait_pull_fails(core, namespace, name):
    node_pods.wait_pull_failed(core, namespace, name, without="its hosts.toml")


def daemonset_pods(core, namespace, name=DAEMONSET):
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=" + name).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def template_checksum(api, namespace, name=DAEMONSET):
    daemonset = api["apps"].read_namespaced_daemon_set(name, namespace)
    return daemonset.spec.template.metadata.annotations["ibmcloud.registry/hosts-checksum"]


def cluster_vars(node_cluster, namespace, registries, **extra):
    return node_pods.cluster_mode_vars(node_cluster, namespace, DAEMONSET, registries, **extra)


def test_cluster_mode_rolls_out_on_the_node_and_pods_pull_through_it(
        node_cluster, node_containerd, api, namespaces, tmp_path):
    core = api["core"]
    namespace = namespaces()
    mirror = "mirror-%s.ibmreg.test" % secrets.token_hex(3)
    second = "second-%s.ibmreg.test" % secrets.token_hex(3)
    # kubelet picks credentials by the image's registry name: the init image's registry,
    # and the mirror names the pods use.
    pull_secrets(node_cluster, tmp_path, namespace, [node_cluster.registry["host"], mirror, second])
    runner = Runner(node_cluster.kubeconfig, workdir=str(tmp_path))
    log = audit_log.AuditLog(node_cluster.audit_log)
    role_vars = cluster_vars(node_cluster, namespace, [mirror_declaration(node_cluster, mirror)])
    play = role_play(role_vars, node_cluster.kubeconfig)
    hosts_dir = node_containerd["config_path"]
    try:
        first = runner.run([], plays=play)
        assert first.rc == 0, first.stdout[-4000:] + first.stderr[-3000:]
        # The role returned after the rollout: the pod runs on the node with the current files.
        (pod,) = daemonset_pods(core, namespace)
        assert pod.spec.node_name == node_cluster.node == "localhost"
        assert pod.status.phase == "Running"
        assert pod.metadata.annotations["ibmcloud.registry/hosts-checksum"] == template_checksum(api, namespace)
        with open(os.path.join(hosts_dir, mirror, "hosts.toml"), "rb") as handle:
            assert list(tomllib.load(handle)["host"]) == ["https://" + node_cluster.registry["host"]]

        # A pull by a name that only the vars file knows succeeds on the node.
        app_pod(core, namespace, image_through(node_cluster, mirror))
        wait_running(core, namespace)

        # Rerun: nothing changes and not one write request reaches the API server.
        mark = log.mark()
        again = runner.run([], plays=play)
        assert again.rc == 0 and changed_count(again) == 0, again.stdout[-4000:]
        assert log.writes(mark) == []

        # Changing the variables rolls the pod; the role waits until the new one runs.
        before = pod.metadata.uid
        changed_vars = dict(role_vars, containerd_hosts_registries=[
            mirror_declaration(node_cluster, mirror), mirror_declaration(node_cluster, second)])
        rolled = runner.run([], plays=role_play(changed_vars, node_cluster.kubeconfig))
        assert rolled.rc == 0 and changed_count(rolled) > 0, rolled.stdout[-4000:]
        (pod,) = daemonset_pods(core, namespace)
        assert pod.metadata.uid != before and pod.status.phase == "Running"
        assert pod.metadata.annotations["ibmcloud.registry/hosts-checksum"] == template_checksum(api, namespace)
        app_pod(core, namespace, image_through(node_cluster, second), name="second")
        wait_running(core, namespace, "second")
    finally:
        node_pods.remove_containerd_hosts(runner, role_vars, (mirror, second), node_cluster.kubeconfig)
    assert not os.path.exists(os.path.join(hosts_dir, mirror))
    assert not os.path.exists(os.path.join(hosts_dir, second))


def test_a_rollout_that_cannot_finish_names_the_node(node_cluster, node_containerd, api, namespaces, tmp_path):
    namespace = namespaces()
    runner = Runner(node_cluster.kubeconfig, workdir=str(tmp_path))
    missing = "%s/ibmreg/no-such-image:1" % node_cluster.registry["host"]
    role_vars = cluster_vars(node_cluster, namespace, [], containerd_hosts_init_image=missing,
                             containerd_hosts_rollout_timeout=20)
    failed = runner.run([], plays=role_play(role_vars, node_cluster.kubeconfig), raw=True)
    assert failed.rc != 0
    text = failed.stdout + failed.stderr
    assert "DaemonSet %s/%s did not roll out within 20 s" % (namespace, DAEMONSET) in text, text[-4000:]
    assert "node localhost: pod %s-" % DAEMONSET in text, text[-4000:]
    assert "ErrImagePull" in text or "ImagePullBackOff" in text, text[-4000:]
    runner.run([], plays=role_play(dict(role_vars, containerd_hosts_cluster_state="absent"), node_cluster.kubeconfig))


def test_restricted_namespace_is_refused_before_any_write(node_cluster, node_containerd, api, namespaces,
                                                          tmp_path):
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    namespace = namespaces(labels={"pod-security.kubernetes.io/enforce": "restricted"})
    runner = Runner(node_cluster.kubeconfig, workdir=str(tmp_path))
    log = audit_log.AuditLog(node_cluster.audit_log)
    role_vars = cluster_vars(node_cluster, namespace, [mirror_declaration(node_cluster, "x.ibmreg.test")])
    mark = log.mark()
    refused = runner.run([], plays=role_play(role_vars, node_cluster.kubeconfig), raw=True)
    assert refused.rc != 0
    assert "namespace %s enforces Pod Security level 'restricted'" % namespace in refused.stdout, refused.stdout[-3000:]
    assert log.writes(mark) == []

    # The refusal is real: the API server rejects the DaemonSet's pod in that namespace.
    with pytest.raises(ApiException) as denied:
        api["core"].create_namespaced_pod(namespace, {
            "metadata": {"name": "probe"},
            "spec": {"containers": [{"name": "c", "image": localnode.PAUSE_IMAGE,
                                     "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
                     "volumes": [{"name": "h", "hostPath": {"path": node_containerd["config_path"]}}]}})
    assert denied.value.status == 403 and "violates PodSecurity" in denied.value.body


def test_a_namespace_the_role_creates_is_privileged(node_cluster, node_containerd, api, namespaces, tmp_path):
    namespace = "ctd-new-" + secrets.token_hex(4)
    namespaces.adopt(namespace)
    runner = Runner(node_cluster.kubeconfig, workdir=str(tmp_path))
    role_vars = cluster_vars(node_cluster, namespace, [], containerd_hosts_rollout_timeout=0)
    created = runner.run([], plays=role_play(role_vars, node_cluster.kubeconfig))
    assert created.rc == 0, created.stdout[-3000:]
    labels = api["core"].read_namespace(namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["app.kubernetes.io/managed-by"] == "ibmcloud.registry"
    assert api["apps"].read_namespaced_daemon_set(DAEMONSET, namespace)
    runner.run([], plays=role_play(dict(role_vars, containerd_hosts_cluster_state="absent"), node_cluster.kubeconfig))


def test_nodes_mode_against_the_nodes_own_containerd(node_cluster, node_containerd, api, namespaces, tmp_path):
    core = api["core"]
    namespace = namespaces()
    mirror = "nodemirror-%s.ibmreg.test" % secrets.token_hex(3)
    pull_secrets(node_cluster, tmp_path, namespace, [mirror])
    runner = Runner("", workdir=str(tmp_path))
    role_vars = {
        "containerd_hosts_mode": "nodes",
        "containerd_hosts_registries": [mirror_declaration(node_cluster, mirror)],
        "containerd_hosts_config_path": node_containerd["config_path"],
        "containerd_hosts_containerd_config": node_containerd["config"],
        "containerd_hosts_containerd_config_check": "check",
        # containerd on PATH is Debian's 1.6; the node runs the one of versions.env.
        "containerd_hosts_containerd_version": "2.4.2",
        "containerd_hosts_install_python_deps": False,
    }
    assert node_containerd["version"] == 3
    hosts_toml = os.path.join(node_containerd["config_path"], mirror, "hosts.toml")
    try:
        written = runner.run([], plays=role_play(role_vars), raw=True, args=("-v",))
        assert written.rc == 0, written.stdout[-4000:] + written.stderr[-3000:]
        # The node's version 3 config.toml names this config_path: no warning about it.
        assert "will not use these hosts.toml files" not in written.stdout
        assert '"config_path_ok": true' in written.stdout
        assert os.path.isfile(hosts_toml)
        again = runner.run([], plays=role_play(role_vars))
        assert again.rc == 0 and changed_count(again) == 0, again.stdout[-3000:]

        app_pod(core, namespace, image_through(node_cluster, mirror))
        wait_running(core, namespace)
    finally:
        removed = runner.run([], plays=role_play(dict(role_vars, containerd_hosts_registries=[
            {"registry": mirror, "state": "absent"}])))
    assert removed.rc == 0, removed.stdout[-3000:]
    assert not os.path.exists(hosts_toml)
    # Without the file the name leads nowhere: the same pull now fails.
    app_pod(core, namespace, image_through(node_cluster, mirror), name="after")
    wait_pull_fails(core, namespace, "after")
