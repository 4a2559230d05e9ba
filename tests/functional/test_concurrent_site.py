"""Two playbooks/site.yml runs at once against the same cluster, with a third writer.

A control plane of its own (tests/cluster, state dir in pytest's temporary directory) on
plain Kubernetes, so that the containerd part runs and its DaemonSet is included; the IAM
part runs against the LOCAL IAM STAND-IN (tests/standins/iam_server.py). The inventory and
vars file are test_site's (the demo's parts plus IAM), for this one cluster.

Two ``ansible-playbook`` processes with the same inventory and vars are started together.
Meanwhile a third writer (the ``fixture`` identity, as another controller or a person
would) keeps adding its own entries to ``imagePullSecrets`` of the service accounts that
site.yml links, with the API's optimistic concurrency (resourceVersion, retry on 409).

At the end every object must be what the vars file asks for, no entry of any writer may
be lost or doubled, and a third, sequential run must change nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import threading
import time

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from playbook import Runner
from test_site import (CANARY_IAM_KEY, IAM_NAMESPACE, Site, changed_tasks, dockerconfig, failures, module_actions,
                       pull_refs)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "standins"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "cluster"))

import iam_server  # noqa: E402  pylint: disable=wrong-import-position
import localcluster  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

HOST = "site-a"  # the name test_site's Site gives the plain cluster
DAEMONSET = "ibmcloud-registry-containerd-hosts"
# What site.yml links on `default`, per namespace (demo vars + IAM part).
LINKED = {
    "demo-apps": {"all-icr-io", "demo-private-registry"},
    "demo-web": {"all-icr-io", "demo-private-registry"},
    "demo-cp": {"entitled-cp-icr-io"},
    IAM_NAMESPACE: {HOST + "-icr-io"},
}


class ThirdWriter(threading.Thread):
    """Adds third-writer-<n> to imagePullSecrets of `default` in each namespace, in turn."""

    def __init__(self, core, namespaces):
        super().__init__(daemon=True)
        self.core, self.namespaces = core, list(namespaces)
        self.stop_event = threading.Event()
        self.added = {namespace: [] for namespace in self.namespaces}
        self.conflicts = 0
        self.errors = []

    def add(self, namespace, name):
        for _attempt in range(50):
            account = self.core.read_namespaced_service_account("default", namespace)
            refs = [{"name": ref.name} for ref in account.image_pull_secrets or []]
            body = {"metadata": {"resourceVersion": account.metadata.resource_version},
                    "imagePullSecrets": refs + [{"name": name}]}
            try:
                self.core.patch_namespaced_service_account("default", namespace, body,
                                                           _content_type="application/merge-patch+json")
                self.added[namespace].append(name)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
                self.conflicts += 1
        raise AssertionError("third writer: %s/default kept conflicting" % namespace)

    def run(self):
        count = 0
        try:
            while not self.stop_event.is_set():
                for namespace in self.namespaces:
                    self.add(namespace, "third-writer-%d" % count)
                    count += 1
                time.sleep(0.05)
        except Exception as exc:  # pylint: disable=broad-except
            self.errors.append(repr(exc))


@pytest.fixture(scope="module")
def cluster_site(tmp_path_factory):
    state_dir = str(tmp_path_factory.mktemp("cluster-concurrent"))
    info = localcluster.ensure_running(state_dir)
    iam = iam_server.IamStandIn().start()
    try:
        iam.add_admin_key(CANARY_IAM_KEY)
        state = Site({HOST: info}, str(tmp_path_factory.mktemp("site")), iam.url)
        state.iam = iam
        prepared = state.play("demo_prepare")
        assert prepared.rc == 0, failures(prepared)
        core = state.core[HOST]
        core.create_namespace({"metadata": {"name": IAM_NAMESPACE}})
        deadline = time.time() + 60
        while time.time() < deadline:
            if all(_has_default(core, namespace) for namespace in LINKED):
                break
            time.sleep(0.5)
        yield state
    finally:
        iam.stop()
        localcluster.stop(state_dir)


def _has_default(core, namespace):
    try:
        core.read_namespaced_service_account("default", namespace)
        return True
    except ApiException:
        return False


def _play(state, name, results, barrier):
    """One ansible-playbook of site.yml in a work directory of its own."""
    runner = Runner(state.infos[HOST].kubeconfig, workdir=os.path.join(state.workdir, name))
    os.makedirs(runner.workdir, exist_ok=True)
    barrier.wait()
    started = time.time()
    result = runner.run([], plays=[{"ansible.builtin.import_playbook": "ibmcloud.registry.site"}],
                        inventory=state.inventory, args=("-e", "@" + state.vars_file, "--forks", "2"),
                        env={"IC_API_KEY": CANARY_IAM_KEY})
    result.document = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    results[name] = (result, started, time.time())


def test_two_site_runs_at_once_with_a_third_writer(cluster_site):
    state = cluster_site
    core = state.core[HOST]
    # The third writer has a client of its own (its own connection pool and thread).
    writer = ThirdWriter(k8s.CoreV1Api(k8s_config.new_client_from_config(
        config_file=state.infos[HOST].fixture_kubeconfig)), sorted(LINKED))
    results, barrier = {}, threading.Barrier(2)
    runs = [threading.Thread(target=_play, args=(state, name, results, barrier)) for name in ("run-1", "run-2")]
    writer.start()
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=1500)
    writer.stop_event.set()
    writer.join(timeout=60)
    assert not writer.errors, writer.errors

    # Both runs succeeded, and they did overlap in time.
    for name, (result, _start, _end) in sorted(results.items()):
        assert result.rc == 0, "%s:\n%s" % (name, failures(result))
    (_r1, start1, end1), (_r2, start2, end2) = results["run-1"], results["run-2"]
    assert max(start1, start2) < min(end1, end2)
    assert sum(len(names) for names in writer.added.values()) > 0

    # Every service account holds each entry of every writer exactly once.
    for namespace, linked in sorted(LINKED.items()):
        refs = pull_refs(core, namespace)
        assert len(refs) == len(set(refs)), (namespace, refs)
        missing = (linked | set(writer.added[namespace])) - set(refs)
        assert not missing, "%s/default lost %s" % (namespace, sorted(missing))

    # The secrets are what the vars file asks for.
    assert dockerconfig(core, "demo-apps", "all-icr-io") == dockerconfig(core, "default", "all-icr-io")
    assert dockerconfig(core, "demo-web", "all-icr-io") == dockerconfig(core, "default", "all-icr-io")
    for namespace in ("demo-apps", "demo-web"):
        entry = dockerconfig(core, namespace, "demo-private-registry")["auths"]["registry.demo.invalid:5000"]
        assert base64.b64decode(entry["auth"]).decode() == "demo-robot:demo-password-placeholder"
    entitled = dockerconfig(core, "demo-cp", "entitled-cp-icr-io")["auths"]["cp.icr.io"]
    assert (entitled["username"], entitled["password"]) == ("cp", "demo-entitlement-key-placeholder")

    # The containerd part: one DaemonSet, and the configuration it mounts holds docker.io.
    apps = k8s.AppsV1Api(state.api[HOST])
    daemonsets = [d for d in apps.list_namespaced_daemon_set("kube-system").items if d.metadata.name == DAEMONSET]
    assert len(daemonsets) == 1, [d.metadata.name for d in daemonsets]
    mounted = [v.config_map.name for v in daemonsets[0].spec.template.spec.volumes if v.config_map]
    assert mounted == [DAEMONSET], mounted
    files = core.read_namespaced_config_map(DAEMONSET, "kube-system").data
    docker_io = [text for key, text in files.items() if "docker.io" in key]
    assert len(docker_io) == 1, sorted(files)
    assert 'server = "https://docker.io"' in docker_io[0] and '"https://registry-1.docker.io"' in docker_io[0], docker_io

    # IAM: one service ID for the namespace, and the pull secret holds a key IAM knows for it.
    snapshot = state.iam.snapshot()
    named = [s for s in snapshot["service_ids"] if s["name"] == "%s-%s-id" % (HOST, IAM_NAMESPACE)]
    assert len(named) == 1, "service IDs: %s" % [(s["name"], s["id"]) for s in snapshot["service_ids"]]
    key = dockerconfig(core, IAM_NAMESPACE, HOST + "-icr-io")["auths"]["us.icr.io"]["password"]
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    holders = [k for k in snapshot["api_keys"] if k["sha256"].endswith(digest)]
    assert holders and holders[0]["iam_id"] == named[0]["iam_id"], "the pull secret's API key is not the service ID's"

    # Converged: a third run, alone, changes nothing and writes nothing.
    marks, iam_mark = state.marks(), state.iam.mark()
    third = state.play("site")
    assert third.rc == 0, failures(third)
    assert third.document["stats"][HOST]["changed"] == 0, (changed_tasks(third, HOST), module_actions(third, HOST))
    assert state.writes(marks) == {HOST: []}
    assert state.iam.writes(iam_mark) == []
