"""Event-driven namespace sync against the real local kube-apiserver (cluster .cluster-eda).

- The namespace_watch event source itself (its main(), as ansible-rulebook calls it): a burst
  of namespaces comes as one event; relabelling reports a namespace again; at start-up every
  matching namespace is reported.
- The real ansible-rulebook (Drools, on the machine's JDK 17) with the pull_secret_sync
  rulebook: namespaces created get all-icr-io from default and the default service account's
  link; with the rulebook stopped, namespaces created meanwhile are caught by the resync at
  its restart.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from kubernetes import client as k8s

from eda_source import SOURCE, ensure_source_secret, java_home
from playbook import REPO, collections_path
from reliability.common import fixture_api

sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))
import localcluster  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

CLUSTER_DIR = os.environ.get("IBMREG_EDA_CLUSTER_DIR", os.path.join(REPO, ".cluster-eda"))
PLUGIN = os.path.join(REPO, "extensions", "eda", "plugins", "event_source", "namespace_watch.py")


@pytest.fixture(scope="module")
def eda_cluster():
    return localcluster.ensure_running(CLUSTER_DIR)


@pytest.fixture(scope="module")
def core(eda_cluster):
    with fixture_api(eda_cluster) as api:
        core = k8s.CoreV1Api(api)
        ensure_source_secret(core)
        yield core


@pytest.fixture
def label(core):
    """A label value of this test; its namespaces are deleted at the end."""
    value = "eda-" + secrets.token_hex(3)
    yield value
    for item in core.list_namespace(label_selector="it=" + value).items:
        core.delete_namespace(item.metadata.name)


def create(core, label_value, name):
    core.create_namespace({"metadata": {"name": name, "labels": {"it": label_value}}})
    return name


def linked(core, namespace) -> bool:
    try:
        account = core.read_namespaced_service_account("default", namespace)
        core.read_namespaced_secret("all-icr-io", namespace)
    except k8s.ApiException:
        return False
    return "all-icr-io" in [ref.name for ref in account.image_pull_secrets or []]


def wait_linked(core, namespaces, timeout, proc=None, log=None):
    deadline = time.monotonic() + timeout
    pending = list(namespaces)
    while pending and time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        pending = [name for name in pending if not linked(core, name)]
        time.sleep(0.5)
    assert not pending, "not linked: %s\n%s" % (pending, _tail(log))


def _tail(path, lines=60):
    if not path or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])


def load_plugin():
    spec = importlib.util.spec_from_file_location("namespace_watch_live", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _collect(plugin, args, until, timeout=30.0):
    queue: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(plugin.main(queue, args))
    events = []
    try:
        while not until(events):
            events.append(await asyncio.wait_for(queue.get(), timeout=timeout))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return events


def test_source_batches_a_burst_and_reports_relabels(eda_cluster, core, label):
    plugin = load_plugin()
    args = {"kubeconfig": eda_cluster.kubeconfig, "label_selector": "it=" + label, "debounce": 1.0}
    first = create(core, label, label + "-pre")
    burst = [label + "-b%d" % i for i in range(8)]

    async def scenario():
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(plugin.main(queue, args))
        try:
            startup = await asyncio.wait_for(queue.get(), 30)
            for name in burst:
                create(core, label, name)
            batch = await asyncio.wait_for(queue.get(), 30)
            core.patch_namespace(first, {"metadata": {"labels": {"team": "x"}}})
            relabel = await asyncio.wait_for(queue.get(), 30)
            # An annotation is no reason to run the playbook again.
            core.patch_namespace(first, {"metadata": {"annotations": {"a": "b"}}})
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(queue.get(), 3)
            return startup, batch, relabel
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    startup, batch, relabel = asyncio.run(scenario())
    assert startup == {"namespaces": [first], "reason": "startup"}
    assert batch == {"namespaces": sorted(burst), "reason": "watch"}
    assert relabel == {"namespaces": [first], "reason": "watch"}


def test_source_resync_reports_only_what_the_watch_did_not_see(eda_cluster, core, label):
    """The listing that follows a 410 Gone, an error or a resync period: against the server,
    only namespaces new since the last listing are reported."""
    plugin = load_plugin()
    settings = plugin.parse_args({"kubeconfig": eda_cluster.kubeconfig, "label_selector": "it=" + label,
                                  "resync_period": 0})
    known = create(core, label, label + "-known")
    seen = []
    watcher = plugin.Watcher(settings, lambda names, reason: seen.append((sorted(names), reason)))
    watcher.core = k8s.CoreV1Api(plugin.api_client(settings))
    version = watcher._list("startup")  # pylint: disable=protected-access
    assert seen == [([known], "startup")]
    missed = create(core, label, label + "-missed")
    assert watcher._list("resync") != version  # pylint: disable=protected-access
    assert seen[1:] == [([missed], "resync")]


class Rulebook:
    """ansible-rulebook with the collection's pull_secret_sync rulebook, in its own process group."""

    def __init__(self, cluster, workdir, label_value):
        self.workdir = workdir
        self.log = os.path.join(workdir, "rulebook.log")
        variables = os.path.join(workdir, "vars.yml")
        with open(variables, "w", encoding="utf-8") as handle:
            # The rulebook's own batching and execution defaults, as shipped.
            yaml.safe_dump({"sync_label_selector": "it=" + label_value,
                            "k8s_kubeconfig": cluster.kubeconfig}, handle)
        inventory = os.path.join(workdir, "inventory.yml")
        with open(inventory, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                            "ansible_python_interpreter": sys.executable}}}}, handle)
        self.argv = [os.path.join(os.path.dirname(sys.executable), "ansible-rulebook"),
                     "-i", inventory, "--rulebook", "ibmcloud.registry.pull_secret_sync",
                     "--vars", variables]
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(),
                        ANSIBLE_COLLECTIONS_PATHS=collections_path(), JAVA_HOME=java_home(),
                        K8S_AUTH_KUBECONFIG=cluster.kubeconfig,
                        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        self.proc = None

    def start(self):
        handle = open(self.log, "a", encoding="utf-8")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, env=self.env, stdout=handle,  # noqa: S603
                                     stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


@pytest.mark.skipif(shutil.which("ansible-rulebook", path=os.path.dirname(sys.executable)) is None,
                    reason="ansible-rulebook is installed by requirements-test.txt")
def test_rulebook_syncs_new_namespaces_and_catches_up_after_a_restart(eda_cluster, core, label, tmp_path):
    assert java_home(), "ansible-rulebook needs a JDK 17 (JAVA_HOME)"
    rulebook = Rulebook(eda_cluster, str(tmp_path), label)
    rulebook.start()
    try:
        first = [create(core, label, label + "-a%d" % i) for i in range(3)]
        wait_linked(core, first, timeout=180, proc=rulebook.proc, log=rulebook.log)
        # Stopped hard (no chance to tidy up), namespaces created while it is down...
        rulebook.kill()
        later = [create(core, label, label + "-d%d" % i) for i in range(2)]
        time.sleep(2)
        assert not any(linked(core, name) for name in later)
        # ...are caught by the listing at its restart.
        rulebook.start()
        wait_linked(core, later, timeout=180, proc=rulebook.proc, log=rulebook.log)
        assert all(linked(core, name) for name in first)
    finally:
        rulebook.kill()
    secret = core.read_namespaced_secret("all-icr-io", later[0])
    assert json.loads(base64.b64decode(secret.data[".dockerconfigjson"])) == SOURCE
