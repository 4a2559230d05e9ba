"""Pods on the local cluster's node and the namespaces they run in: what the node tests share.

A test pod names no pull secret (the namespace's ``default`` ServiceAccount brings one, or
not), uses hostNetwork (the node's CNI is loopback only, docs/testing.md) and pulls with
imagePullPolicy Always, so an image cached on the node cannot hide a refused pull.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tomllib

import localnode
from reliability.common import wait_for as common_wait_for

POD_TIMEOUT = 120
CONTAINERD_HOSTS_ROLE = "ibmcloud.registry.containerd_hosts"
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff")


def wait_for(what, check, timeout=POD_TIMEOUT):
    return common_wait_for(what, check, timeout=timeout, interval=0.5)


def default_service_account(core, namespace):
    """The namespace's ``default`` ServiceAccount, or None while the controller has not made it."""
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    try:
        return core.read_namespaced_service_account("default", namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


@contextlib.contextmanager
def namespace_maker(core, prefix, timeout=POD_TIMEOUT):
    """``create(labels=None, prefix=prefix, wait=True)`` makes a namespace and, with ``wait``,
    waits for its default ServiceAccount; ``create.adopt(name)`` takes one made elsewhere.
    All are deleted at the end without waiting: pods may still run there."""
    made = []

    def create(labels=None, prefix=prefix, wait=True):
        name = prefix + secrets.token_hex(4)
        core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        made.append(name)
        if wait:
            wait_for("ServiceAccount default in " + name, lambda: default_service_account(core, name), timeout)
        return name

    create.adopt = made.append
    try:
        yield create
    finally:
        for name in made:
            with contextlib.suppress(Exception):  # a test that broke the API server reports that itself
                core.delete_namespace(name, grace_period_seconds=0)


def create_pod(core, namespace, image, name="app"):
    """A hostNetwork pod naming no pull secret, as the namespace's default ServiceAccount."""
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": name},
        "spec": {"hostNetwork": True, "restartPolicy": "Never", "automountServiceAccountToken": False,
                 "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always",
                                 "command": ["sh", "-c", "echo pulled; exec sleep 3600"]}]}})


def wait_running(core, namespace, name="app", timeout=POD_TIMEOUT):
    """The pod once Running; fails at once when its pull fails."""
    def running():
        status = core.read_namespaced_pod(name, namespace).status
        waiting = [c.state.waiting for c in status.container_statuses or [] if c.state.waiting]
        assert not any(w.reason in PULL_FAILURES for w in waiting), \
            "pull failed in %s/%s: %s" % (namespace, name, [(w.reason, w.message) for w in waiting])
        return status.phase == "Running"

    wait_for("pod %s Running in %s" % (name, namespace), running, timeout)
    return core.read_namespaced_pod(name, namespace)


def wait_pull_failed(core, namespace, name="app", without="a pull secret", timeout=POD_TIMEOUT):
    """Until the pod's pull fails (ErrImagePull or the BackOff after it); fails if it runs.

    Returns the kubelet's waiting message and the pod's events, where the reason is."""
    seen = {}

    def failed():
        status = core.read_namespaced_pod(name, namespace).status
        assert status.phase != "Running", "pod %s/%s runs without %s" % (namespace, name, without)
        for c in status.container_statuses or []:
            if c.state.waiting and c.state.waiting.reason in PULL_FAILURES and c.state.waiting.message:
                seen["message"] = c.state.waiting.message
        return "message" in seen

    wait_for("ErrImagePull of %s in %s" % (name, namespace), failed, timeout)
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=" + name).items
    return seen["message"] + "\n" + "\n".join(e.message or "" for e in events)


def assert_unauthorized(text):
    """The registry's 401, as containerd words it: 2.x, with no credentials to answer the
    challenge, "authorization failed: no basic auth credentials"; 1.6 "401 Unauthorized"."""
    lowered = text.lower()
    assert "401" in text or "unauthorized" in lowered or "no basic auth credentials" in lowered, text


# --- the containerd_hosts role on the node ------------------------------------------------

def node_containerd_config(cluster):
    """(path, document) of the node's containerd config.toml."""
    path = os.path.join(localnode.node_dir(cluster.state_dir), "containerd.toml")
    with open(path, "rb") as handle:
        return path, tomllib.load(handle)


def node_config_path(cluster):
    """The hosts directory the node's CRI plugin reads (its registry ``config_path``)."""
    return node_containerd_config(cluster)[1]["plugins"]["io.containerd.cri.v1.images"]["registry"]["config_path"]


def mirror_declaration(cluster, name):
    """A containerd_hosts registry ``name`` served by the cluster's private registry."""
    registry = cluster.registry
    return {"registry": name,
            "hosts": [{"url": "https://" + registry["host"], "capabilities": ["pull", "resolve"],
                       "ca": [registry["ca"]]}]}


def containerd_hosts_play(role_vars, kubeconfig=None):
    """The containerd_hosts role alone; kube modules on ``kubeconfig`` (none: nodes mode)."""
    play = {"name": "containerd hosts", "hosts": "localhost", "connection": "local", "gather_facts": False,
            "roles": [{"role": CONTAINERD_HOSTS_ROLE, "vars": role_vars}]}
    if kubeconfig:
        play["module_defaults"] = {"group/ibmcloud.registry.kube": {"kubeconfig": kubeconfig}}
    return [play]


def cluster_mode_vars(cluster, namespace, daemonset, registries, **extra):
    """containerd_hosts in cluster mode: its DaemonSet ``daemonset`` writes ``registries`` on the node."""
    role_vars = {
        "containerd_hosts_mode": "cluster",
        "containerd_hosts_cluster_name": daemonset,
        "containerd_hosts_cluster_namespace": namespace,
        "containerd_hosts_config_path": node_config_path(cluster),
        "containerd_hosts_registries": registries,
        "containerd_hosts_init_image": cluster.registry["image"],
        "containerd_hosts_pause_image": localnode.PAUSE_IMAGE,  # imported on the node
        "containerd_hosts_image_pull_policy": "IfNotPresent",
        "containerd_hosts_rollout_timeout": 120,
    }
    role_vars.update(extra)
    return role_vars


def remove_containerd_hosts(runner, role_vars, names, kubeconfig):
    """Take the files of registries ``names`` off the node first (declared absent, the
    DaemonSet rolls), then the DaemonSet: the node's config_path is shared by the tests."""
    gone = [{"registry": name, "state": "absent"} for name in names]
    runner.run([], plays=containerd_hosts_play(dict(role_vars, containerd_hosts_registries=gone), kubeconfig))
    runner.run([], plays=containerd_hosts_play(dict(role_vars, containerd_hosts_cluster_state="absent"), kubeconfig))
