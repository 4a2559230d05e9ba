"""Outcomes on a real node: pods pull a private image through the secrets the modules write.

The cluster is ``<repo>/.cluster-node`` (localcluster.py --node): Kubernetes, etcd and
containerd built from Go modules (tests/cluster/versions.env), one worker node
(containerd's CRI plugin + runc + kubelet) and a private registry on loopback with TLS
from the cluster's CA and htpasswd users, holding a busybox-static image.

For each pull-secret source, icr_pull_secret runs through ansible-playbook and puts the
secret on the namespace's ``default`` ServiceAccount; then a pod that names no secret,
runs as ``default`` and pulls with imagePullPolicy Always must reach Running. The same
pod in a namespace without the secret must fail with ErrImagePull and a 401 from the
registry, which containerd 2.x reports as "authorization failed: no basic auth
credentials" (Always: otherwise the image cached on the node would hide the failure).
"""

from __future__ import annotations

import base64
import json

import pytest

import localnode
import node_pods
from playbook import Runner

pytestmark = pytest.mark.cluster

POD_TIMEOUT = 90


@pytest.fixture
def namespaces(core):
    """Call it to create a fresh namespace; the pods in them are deleted at the end."""
    with node_pods.namespace_maker(core, "pull-", timeout=POD_TIMEOUT) as create:
        yield create


def run_module(cluster, tmp_path, args):
    runner = Runner(cluster.kubeconfig, workdir=str(tmp_path))
    result = runner.run([{"name": "t", "ibmcloud.registry.icr_pull_secret": args}])
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result["t"]


def dockerconfigjson(server, username, password):
    auth = base64.b64encode(("%s:%s" % (username, password)).encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}})


def check_pull(core, with_secret, without_secret, image, secret_name):
    node_pods.create_pod(core, with_secret, image)
    node_pods.create_pod(core, without_secret, image)
    running = node_pods.wait_running(core, with_secret, timeout=POD_TIMEOUT)
    # The ServiceAccount admission plugin copied default's imagePullSecrets into the pod.
    assert [ref.name for ref in running.spec.image_pull_secrets or []] == [secret_name]
    assert running.spec.service_account_name == "default"
    assert running.spec.node_name == localnode.NODE_NAME
    node_pods.assert_unauthorized(node_pods.wait_pull_failed(core, without_secret, timeout=POD_TIMEOUT))


def test_the_node_is_ready_and_the_server_current(node_cluster, core):
    assert node_cluster.version.startswith("v1.37."), node_cluster.version
    node = core.read_node(node_cluster.node)
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"
    assert node.status.node_info.kubelet_version.startswith("v1.37.")
    assert node.status.node_info.container_runtime_version.startswith("containerd://2.")


def test_any_registry_credentials(node_cluster, core, namespaces, tmp_path):
    reg = node_cluster.registry
    ns, bare = namespaces(), namespaces()
    result = run_module(node_cluster, tmp_path, {
        "name": "local-registry", "namespaces": [ns], "service_accounts": ["default"],
        "registry": {"server": reg["host"], "username": reg["username"], "password": reg["password"]}})
    assert result["changed"]
    check_pull(core, ns, bare, reg["image"], "local-registry")


def test_copy_of_all_icr_io(node_cluster, core, namespaces, tmp_path):
    """all-icr-io as a cluster holds it, here with the local registry's credentials."""
    reg = node_cluster.registry
    source, ns, bare = namespaces(), namespaces(), namespaces()
    core.create_namespaced_secret(source, {
        "metadata": {"name": "all-icr-io"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(
            dockerconfigjson(reg["host"], reg["username"], reg["password"]).encode()).decode()}})
    run_module(node_cluster, tmp_path, {
        "copy_from": {"namespace": source, "name": "all-icr-io"}, "namespaces": [ns],
        "service_accounts": ["default"]})
    check_pull(core, ns, bare, reg["image"], "all-icr-io")


def test_entitlement_key_for_cp_icr_io(node_cluster, core, namespaces, tmp_path):
    """The entitled registry's name: the node's hosts.toml for cp.icr.io sends the pull to
    the local registry (which knows user ``cp``); nothing resolves or dials the real one."""
    reg = node_cluster.registry
    ns, bare = namespaces(), namespaces()
    run_module(node_cluster, tmp_path, {
        "entitlement_key": reg["entitlement_key"], "namespaces": [ns], "service_accounts": ["default"]})
    check_pull(core, ns, bare, reg["entitled_image"], "entitled-cp-icr-io")
