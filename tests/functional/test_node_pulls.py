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
import os
import secrets
import sys

import pytest

from reliability.common import wait_for as common_wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))

import localcluster  # noqa: E402  pylint: disable=wrong-import-position
from playbook import Runner  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

NODE_CLUSTER_DIR = os.path.join(REPO, ".cluster-node")
POD_TIMEOUT = 90


@pytest.fixture(scope="module")
def node_cluster():
    return localcluster.ensure_running(NODE_CLUSTER_DIR, node=True)


@pytest.fixture(scope="module")
def core(node_cluster):
    from kubernetes import client, config  # pylint: disable=import-outside-toplevel

    api_client = config.new_client_from_config(config_file=node_cluster.fixture_kubeconfig)
    yield client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture
def namespaces(core):
    """Call it to create a fresh namespace; the pods in them are deleted at the end."""
    made = []

    def create():
        name = "pull-" + secrets.token_hex(4)
        core.create_namespace({"metadata": {"name": name}})
        made.append(name)
        wait_for("ServiceAccount default in " + name, lambda: _sa(core, name))
        return name

    yield create
    for name in made:
        core.delete_namespace(name, grace_period_seconds=0)


def _sa(core, namespace):
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    try:
        return core.read_namespaced_service_account("default", namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def wait_for(what, check, timeout=POD_TIMEOUT):
    return common_wait_for(what, check, timeout=timeout, interval=0.5)


def pod(core, namespace, image):
    """A hostNetwork pod naming no pull secret, as the namespace's default ServiceAccount."""
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "app"},
        "spec": {"hostNetwork": True, "restartPolicy": "Never", "automountServiceAccountToken": False,
                 "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always",
                                 "command": ["sh", "-c", "echo pulled; exec sleep 3600"]}]}})


def wait_running(core, namespace):
    def running():
        status = core.read_namespaced_pod("app", namespace).status
        waiting = [c.state.waiting for c in status.container_statuses or [] if c.state.waiting]
        assert not any(w.reason in ("ErrImagePull", "ImagePullBackOff") for w in waiting), \
            "pull failed in %s: %s" % (namespace, [(w.reason, w.message) for w in waiting])
        return status.phase == "Running"

    wait_for("pod app Running in " + namespace, running)
    return core.read_namespaced_pod("app", namespace)


def wait_pull_refused(core, namespace):
    """The pod's pull fails: ErrImagePull (or the BackOff after it), with the registry's 401."""
    seen = {}

    def failed():
        status = core.read_namespaced_pod("app", namespace).status
        assert status.phase != "Running", "pod %s/app runs without a pull secret" % namespace
        for c in status.container_statuses or []:
            if c.state.waiting and c.state.waiting.reason in ("ErrImagePull", "ImagePullBackOff"):
                seen.setdefault("reason", c.state.waiting.reason)
                if c.state.waiting.message:
                    seen["message"] = c.state.waiting.message
        return "message" in seen

    wait_for("ErrImagePull in " + namespace, failed)
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=app").items
    text = seen["message"] + " ".join(e.message or "" for e in events)
    # containerd 2.x words the registry's 401 challenge, with no credentials to answer it, as
    # "authorization failed: no basic auth credentials"; 1.6 says "401 Unauthorized".
    lowered = text.lower()
    assert ("401" in text or "unauthorized" in lowered
            or "authorization failed: no basic auth credentials" in lowered), text
    return seen


def run_module(cluster, tmp_path, args):
    runner = Runner(cluster.kubeconfig, workdir=str(tmp_path))
    result = runner.run([{"name": "t", "ibmcloud.registry.icr_pull_secret": args}])
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result["t"]


def dockerconfigjson(server, username, password):
    auth = base64.b64encode(("%s:%s" % (username, password)).encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}})


def check_pull(core, with_secret, without_secret, image, secret_name):
    pod(core, with_secret, image)
    pod(core, without_secret, image)
    running = wait_running(core, with_secret)
    # The ServiceAccount admission plugin copied default's imagePullSecrets into the pod.
    assert [ref.name for ref in running.spec.image_pull_secrets or []] == [secret_name]
    assert running.spec.service_account_name == "default"
    assert running.spec.node_name == localcluster.localnode.NODE_NAME
    wait_pull_refused(core, without_secret)


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
