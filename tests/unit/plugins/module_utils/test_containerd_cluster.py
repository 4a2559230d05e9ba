# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster mode of the containerd_hosts role: the init container script (the role's
template), object drift, Pod Security admission of the namespace, and the rollout check."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import tomllib

import jinja2
import pytest
import yaml

from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd import cluster, plan

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
ROLE = os.path.join(REPO, "roles", "containerd_hosts")
TEMPLATE = os.path.join(ROLE, "templates", "install-hosts.sh.j2")

DOCKER = {"registry": "docker.io", "server": "https://docker.io",
          "hosts": [{"url": "https://registry-1.docker.io", "capabilities": ["pull", "resolve"]}]}
MYREG = {"registry": "myreg:5000", "server": "https://myreg:5000", "server_settings": {"skip_verify": True}}


def render_script(**overrides):
    """The template as the role renders it, with the role's defaults."""
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        variables = yaml.safe_load(handle)
    variables.update(overrides)
    with open(TEMPLATE) as handle:
        return jinja2.Template(handle.read(), keep_trailing_newline=True,
                               undefined=jinja2.StrictUndefined).render(**variables)


# --- the script -------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_script_is_shellcheck_clean(tmp_path):
    script = tmp_path / "install-hosts.sh"
    script.write_text(render_script())
    checked = subprocess.run(["shellcheck", "--shell=sh", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout


def test_script_names_its_daemonset_and_default_target():
    script = render_script(containerd_hosts_cluster_name="ds", containerd_hosts_cluster_namespace="ns",
                           containerd_hosts_config_path="/var/lib/certs.d")
    assert "DaemonSet ns/ds" in script and "${CONTAINERD_HOSTS_TARGET:-/var/lib/certs.d}" in script


def _run(bundle, source, target, script=None):
    if source.exists():
        shutil.rmtree(str(source))
    source.mkdir()
    for key, text in bundle["data"].items():
        (source / key).write_text(text)
    env = dict(os.environ, CONTAINERD_HOSTS_SOURCE=str(source), CONTAINERD_HOSTS_TARGET=str(target),
               CONTAINERD_HOSTS_MARKER=bundle["marker"])
    return subprocess.run(["sh", "-c", script or render_script()], env=env, capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_script_installs_removes_and_prunes_only_managed(tmp_path):
    source, target = tmp_path / "config", tmp_path / "certs.d"
    (target / "by-hand.example.com").mkdir(parents=True)
    (target / "by-hand.example.com" / "hosts.toml").write_text('server = "https://by-hand"\n[host]\n')
    done = _run(plan.cluster_bundle([DOCKER, MYREG]), source, target)
    assert done.returncode == 0, done.stderr
    installed = target / "myreg:5000" / "hosts.toml"
    assert tomllib.loads(installed.read_text()) == {"server": "https://myreg:5000", "skip_verify": True, "host": {}}
    assert oct(installed.stat().st_mode & 0o777) == oct(0o644)
    assert (target / "myreg:5000" / plan.MARKER_FILE).is_file()
    assert (target / "docker.io" / "hosts.toml").read_text() == plan.render_spec(DOCKER)

    # myreg:5000 no longer declared, docker.io explicitly absent, prune on
    done = _run(plan.cluster_bundle([dict(DOCKER, state="absent")], prune=True), source, target)
    assert done.returncode == 0, done.stderr
    assert not (target / "myreg:5000").exists()
    assert not (target / "docker.io").exists()
    assert (target / "by-hand.example.com" / "hosts.toml").is_file()  # not managed: untouched


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_script_keeps_declared_directories_when_pruning_and_sets_0600_for_headers(tmp_path):
    source, target = tmp_path / "config", tmp_path / "certs.d"
    secret = dict(MYREG, server_settings={"headers": {"Authorization": "Basic eA=="}})
    assert _run(plan.cluster_bundle([DOCKER, secret], prune=True), source, target).returncode == 0
    assert oct((target / "myreg:5000" / "hosts.toml").stat().st_mode & 0o777) == oct(0o600)
    assert _run(plan.cluster_bundle([DOCKER, secret], prune=True), source, target).returncode == 0
    assert sorted(os.listdir(str(target))) == ["docker.io", "myreg:5000"]


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_script_refuses_an_unknown_manifest_line_and_a_missing_marker_name(tmp_path):
    source, target = tmp_path / "config", tmp_path / "certs.d"
    bundle = plan.cluster_bundle([DOCKER])
    bundle["data"]["manifest"] += "chmod everything\n"
    refused = _run(bundle, source, target)
    assert refused.returncode != 0 and "unknown manifest line: chmod" in refused.stderr
    bundle = dict(plan.cluster_bundle([DOCKER]), marker="")
    refused = _run(bundle, source, target)
    assert refused.returncode != 0 and "marker" in refused.stderr


def test_checksum_is_no_plain_hash_of_the_header_values():
    """The pod template's checksum is readable without access to the Secret that holds the
    headers: it must not let anyone check a guessed header offline."""
    import hashlib
    import json

    secret_header = {"registry": "myreg.example.com", "server": "https://myreg.example.com",
                     "hosts": [{"url": "https://myreg.example.com",
                                "headers": {"Authorization": "Basic cm9ib3Q6d2Vhaw=="}}]}
    bundle = plan.cluster_bundle([secret_header], script="#!/bin/sh\n")
    assert bundle["sensitive"] is True
    assert bundle["checksum"].startswith("scrypt:")
    plain = json.dumps({"data": bundle["data"], "script": "#!/bin/sh\n"}, sort_keys=True).encode("utf-8")
    digests = {hashlib.new(name, value).hexdigest() for name in ("sha256", "sha1", "md5")
               for value in [plain] + [text.encode("utf-8") for text in bundle["data"].values()]}
    assert bundle["checksum"].split(":", 1)[1] not in digests
    assert "cm9ib3Q6d2Vhaw" not in bundle["checksum"]


def test_checksum_changes_with_the_script_or_the_data():
    script = render_script()
    base = plan.cluster_bundle([DOCKER], script=script)["checksum"]
    assert plan.cluster_bundle([DOCKER], script=script)["checksum"] == base
    assert plan.cluster_bundle([DOCKER], script=script + "# changed\n")["checksum"] != base
    assert plan.cluster_bundle([DOCKER, MYREG], script=script)["checksum"] != base


# --- drift ----------------------------------------------------------------------------------

DAEMONSET = {
    "apiVersion": "apps/v1", "kind": "DaemonSet",
    "metadata": {"name": "ds", "namespace": "kube-system", "labels": {"a": "b"}},
    "spec": {"template": {"spec": {
        "tolerations": [{"operator": "Exists"}],
        "containers": [{"name": "pause", "image": "p", "resources": {"requests": {"cpu": "1m"}}}]}}},
}


def live(desired):
    """What the API server returns for ``desired``: defaults and status added."""
    import copy  # pylint: disable=import-outside-toplevel

    found = copy.deepcopy(desired)
    found["metadata"].update(uid="u", resourceVersion="7", labels=dict(desired["metadata"]["labels"], extra="x"))
    found["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    found["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    found["status"] = {"desiredNumberScheduled": 1}
    return found


def test_drift_ignores_what_the_server_adds():
    assert cluster.drift(DAEMONSET, live(DAEMONSET)) == []


def test_drift_names_what_differs():
    changed = live(DAEMONSET)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    changed["spec"]["template"]["spec"]["tolerations"].append({"key": "k"})
    assert cluster.drift(DAEMONSET, changed) == ["spec.template.spec.tolerations",
                                                 "spec.template.spec.containers[0].image"]
    assert cluster.drift(DAEMONSET, None) == ["(missing)"]


def test_drift_of_data_is_exact_and_secrets_compare_base64():
    configmap = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a.hosts.toml": "x"}}
    assert cluster.drift(configmap, {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a.hosts.toml": "x"}}) == []
    assert cluster.drift(configmap, {"kind": "ConfigMap", "metadata": {"name": "c"},
                                     "data": {"a.hosts.toml": "x", "old.hosts.toml": "y"}}) == ["data"]
    secret = {"kind": "Secret", "type": "Opaque", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
    assert cluster.drift(secret, {"kind": "Secret", "type": "Opaque", "metadata": {"name": "s"},
                                  "data": {"k": "dg=="}}) == []
    assert cluster.drift(secret, {"kind": "Secret", "type": "Opaque", "metadata": {"name": "s"},
                                  "data": {"k": "dw=="}}) == ["data"]


# --- Pod Security admission ---------------------------------------------------------------------

@pytest.mark.parametrize("labels, refused", [
    ({}, False),
    ({"pod-security.kubernetes.io/enforce": "privileged"}, False),
    ({"pod-security.kubernetes.io/enforce": "baseline"}, True),
    ({"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}, True),
    ({"pod-security.kubernetes.io/warn": "restricted"}, False),
])
def test_namespace_problem(labels, refused):
    problem = cluster.namespace_problem({"metadata": {"name": "ns", "labels": labels}}, "ns")
    assert bool(problem) == refused
    if refused:
        assert "namespace ns enforces Pod Security level" in problem and "privileged" in problem
    assert cluster.namespace_problem({}, "new") is None  # created by the role, labelled privileged


# --- rollout ----------------------------------------------------------------------------------

def pod(node, checksum, ready=True, waiting=None):
    status = {"phase": "Running" if ready else "Pending",
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if waiting:
        status["initContainerStatuses"] = [{"name": "hosts-toml", "state": {"waiting": waiting}}]
    return {"metadata": {"name": "ds-" + node, "annotations": {cluster.CHECKSUM_ANNOTATION: checksum}},
            "spec": {"nodeName": node}, "status": status}


def ds(desired, generation=2, observed=2):
    return {"metadata": {"name": "ds", "generation": generation},
            "status": {"desiredNumberScheduled": desired, "observedGeneration": observed}}


def test_rollout_done_on_every_node():
    state = cluster.rollout(ds(2), [pod("n1", "sha256:new"), pod("n2", "sha256:new")], "sha256:new")
    assert state["done"] and state["message"] == "rolled out on 2 node(s)"
    assert cluster.rollout(ds(0), [], "sha256:new")["done"]  # no node: nothing to roll


def test_rollout_names_the_nodes_that_did_not_roll():
    state = cluster.rollout(ds(3), [
        pod("n1", "sha256:new"),
        pod("n2", "sha256:old"),
        pod("n3", "sha256:new", ready=False, waiting={"reason": "ErrImagePull", "message": "401 Unauthorized"}),
    ], "sha256:new")
    assert not state["done"]
    assert "node n2 still runs pod ds-n2 with the previous hosts.toml files" in state["message"]
    assert "node n3: pod ds-n3 is not ready (container hosts-toml ErrImagePull: 401 Unauthorized)" in state["message"]
    assert "n1" not in state["message"]


def test_rollout_reports_pods_refused_by_admission():
    events = [{"reason": "FailedCreate", "lastTimestamp": "2026-01-01T00:00:01Z",
               "message": 'Error creating: pods "ds-x" is forbidden: violates PodSecurity "restricted:latest"'}]
    state = cluster.rollout(ds(1), [], "sha256:new", events)
    assert not state["done"]
    assert "1 of 1 nodes have no pod of DaemonSet ds" in state["message"]
    assert 'violates PodSecurity "restricted:latest"' in state["message"]


def test_rollout_waits_for_the_controller_to_see_the_new_generation():
    assert not cluster.rollout(ds(1, generation=3, observed=2), [pod("n1", "sha256:new")], "sha256:new")["done"]


def node(name, ready="True", reason=None, message=None):
    return {"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": message}]}}


def test_rollout_names_a_notready_node_whose_old_pod_cannot_go():
    # kubelet stopped: the old pod stays Terminating, the DaemonSet waits for it, no new pod.
    leaving = pod("n1", "sha256:old", ready=False)
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    nodes = [node("n1", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."), node("n2")]
    state = cluster.rollout(ds(2), [leaving, pod("n2", "sha256:new")], "sha256:new", [], nodes)
    assert not state["done"]
    assert state["message"] == (
        "node n1: pod ds-n1 is being deleted and the node has not confirmed it, so the DaemonSet has not "
        "started the new pod there; node n1 is NotReady (Ready=Unknown, NodeStatusUnknown: Kubelet stopped "
        "posting node status.)")
    # Without the Node objects (not readable) the node is still named.
    assert cluster.rollout(ds(2), [leaving, pod("n2", "sha256:new")], "sha256:new")["message"].startswith(
        "node n1: pod ds-n1 is being deleted")


def test_rollout_adds_the_ready_condition_of_the_nodes_it_names():
    nodes = [node("n1", "False", "KubeletNotReady"), node("n2", "Unknown"), node("n3")]
    state = cluster.rollout(ds(3), [pod("n1", "sha256:old"), pod("n3", "sha256:new")], "sha256:new", [], nodes)
    assert "node n1 still runs pod ds-n1 with the previous hosts.toml files" in state["message"]
    assert "node n1 is NotReady (Ready=False, KubeletNotReady)" in state["message"]
    # n2 has no pod at all while one is missing: named as a NotReady node; n3 is fine.
    assert "1 of 3 nodes have no pod of DaemonSet ds" in state["message"]
    assert "node n2 is NotReady (Ready=Unknown)" in state["message"]
    assert "n3" not in state["message"]
    done = cluster.rollout(ds(1), [pod("n3", "sha256:new")], "sha256:new", [], nodes)
    assert done["done"] and done["message"] == "rolled out on 1 node(s)"
