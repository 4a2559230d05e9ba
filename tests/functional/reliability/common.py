"""The private cluster of the reliability suite and what its tests share.

All four test files (test_bad_input, test_least_privilege, test_reliability_faults,
test_secret_hygiene) run on one private control plane in ``<repo>/.cluster-reliability``,
started fresh for the session and removed at its end: the least-privilege test creates
ClusterRoles, the apiserver-stop test kills and restarts kube-apiserver, and the roles
write to ``default`` and ``kube-system``. None of that may disturb the shared ``.cluster``.
On that cluster the only client that authenticates as ``admin`` is the code under test,
so "zero writes" is checked for ``admin`` across the whole cluster, not only in a prefix.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import sys
import time

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))
sys.path.insert(0, os.path.join(REPO, "tests", "standins"))

import audit as audit_log  # noqa: E402  pylint: disable=wrong-import-position
import localcluster  # noqa: E402  pylint: disable=wrong-import-position

CLUSTER_DIR = os.path.join(REPO, ".cluster-reliability")
RBAC_DIR = os.path.join(REPO, "docs", "rbac")
_USERS = {"count": 0}


def remove_cluster(state_dir):
    """Stop the cluster of ``state_dir`` and remove the directory."""
    localcluster.stop(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)


@contextlib.contextmanager
def own_cluster(state_dir, clean=False):
    """A cluster that one test file starts (from an empty ``state_dir`` with ``clean``)
    and removes at its end."""
    if clean:
        remove_cluster(state_dir)
    try:
        yield localcluster.ensure_running(state_dir)
    finally:
        remove_cluster(state_dir)


@pytest.fixture(scope="session")
def reliability_cluster():
    """The suite's private cluster: started from a clean directory once per session."""
    if _USERS["count"] == 0:
        remove_cluster(CLUSTER_DIR)
    _USERS["count"] += 1
    try:
        yield localcluster.ensure_running(CLUSTER_DIR)
    finally:
        _USERS["count"] -= 1
        if _USERS["count"] == 0:
            remove_cluster(CLUSTER_DIR)


@contextlib.contextmanager
def fixture_api(cluster):
    """A kubernetes ApiClient as `fixture` on ``cluster``: never counted as the client's requests."""
    from kubernetes import config  # pylint: disable=import-outside-toplevel

    api_client = config.new_client_from_config(config_file=cluster.fixture_kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture(scope="session")
def rel_api(reliability_cluster):
    """A kubernetes ApiClient as `fixture` on the private cluster (never counted)."""
    with fixture_api(reliability_cluster) as api_client:
        yield api_client


@pytest.fixture(scope="session")
def rel_audit(reliability_cluster):
    return audit_log.AuditLog(reliability_cluster.audit_log)


class Namespaces:
    """Namespaces named <prefix><suffix> on the private cluster, removed after the test."""

    def __init__(self, core, prefix):
        self.core = core
        self.prefix = prefix

    def __call__(self, suffix="0", labels=None):
        name = self.prefix + suffix
        self.core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        return name

    def cleanup(self):
        for namespace in self.core.list_namespace().items:
            if namespace.metadata.name.startswith(self.prefix):
                with contextlib.suppress(Exception):
                    self.core.delete_namespace(namespace.metadata.name)


@pytest.fixture
def rel_ns(request, rel_api):
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:20].strip("-")
    namespaces = Namespaces(client.CoreV1Api(rel_api), "r-%s-%s-" % (test, secrets.token_hex(2)))
    yield namespaces
    namespaces.cleanup()


# --- waiting -----------------------------------------------------------------------------

def wait_for(what, check, timeout=60.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_for_service_accounts(core, namespaces, name="default", timeout=90.0):
    """Until every namespace has ServiceAccount ``name`` (one LIST per poll)."""
    wanted = set(namespaces)

    def check():
        listing = core.list_service_account_for_all_namespaces(field_selector="metadata.name=%s" % name)
        return wanted <= set(sa.metadata.namespace for sa in listing.items)

    wait_for("ServiceAccount %s in %d namespaces" % (name, len(wanted)), check, timeout)


def admin_writes(audit, mark):
    """Every write of `admin` (the code under test) anywhere on the private cluster."""
    return audit.writes(mark)


# --- the API server process ---------------------------------------------------------------

def kill_apiserver(state_dir=CLUSTER_DIR):
    """SIGKILL kube-apiserver (etcd and the controller-manager keep running).

    Returns its command line, for restart_apiserver().
    """
    state = localcluster._state(state_dir)  # pylint: disable=protected-access
    proc = state["procs"]["kube-apiserver"]
    with open("/proc/%d/cmdline" % proc["pid"], "rb") as cmdline:
        argv = [arg.decode() for arg in cmdline.read().split(b"\0") if arg]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc["pid"], signal.SIGKILL)
    wait_for("kube-apiserver to exit", lambda: _reaped(proc), timeout=30, interval=0.05)
    return argv


def _reaped(proc):
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(proc["pid"], os.WNOHANG)
    return localcluster._gone(proc)  # pylint: disable=protected-access


def restart_apiserver(argv, state_dir=CLUSTER_DIR):
    """Start kube-apiserver again with ``argv``: same port, etcd data, certificates, audit log.

    localcluster's start() wipes etcd, so a restart that keeps the data spawns the
    apiserver alone and records the new process in cluster.json (so that stop() and
    info() find it).
    """
    # pylint: disable=protected-access
    with localcluster._locked(state_dir):
        cluster = localcluster._load(state_dir)
        state = localcluster._state(state_dir)
        state["procs"]["kube-apiserver"] = localcluster._spawn(state_dir, "kube-apiserver", argv)
        localcluster._save(state_dir, cluster, state)
        localcluster._wait(state_dir, state["procs"], "kube-apiserver /readyz",
                           lambda: localcluster._healthy(cluster, state))
    return localcluster.info(state_dir)


# --- identities ----------------------------------------------------------------------------

def service_account_token(core, namespace, name, timeout=60.0, expiration_seconds=3600):
    """A token for ServiceAccount ``namespace/name`` from the TokenRequest API.

    Kubernetes >= 1.24 no longer writes ``<name>-token-*`` secrets, so test identities ask
    the API server for a bound token, as kubelet does for a pod. Waits for the
    ServiceAccount itself first (a test may have just created it).
    """
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    def token():
        try:
            review = core.create_namespaced_service_account_token(
                name, namespace, {"spec": {"audiences": [], "expirationSeconds": expiration_seconds}})
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return review.status.token

    return wait_for("a token of ServiceAccount %s/%s" % (namespace, name), token, timeout)


# --- RBAC manifests ---------------------------------------------------------------------------

def load_rbac():
    """{job: the Role or ClusterRole of docs/rbac/<job>.yaml}."""
    jobs = {}
    for name in sorted(os.listdir(RBAC_DIR)):
        if name.endswith(".yaml"):
            with open(os.path.join(RBAC_DIR, name), encoding="utf-8") as handle:
                jobs[name[:-len(".yaml")]] = yaml.safe_load(handle)
    return jobs


# --- playbooks -------------------------------------------------------------------------------

def play(tasks, kubeconfig=None, name="reliability", play_vars=None, module_defaults=None):
    """One play on localhost; kube modules use ``kubeconfig`` (none: each task sets its own)."""
    defaults = dict(module_defaults or {})
    if kubeconfig:
        defaults.setdefault("group/ibmcloud.registry.kube", {"kubeconfig": kubeconfig})
    return [{"name": name, "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": play_vars or {}, "module_defaults": defaults, "tasks": tasks}]


def task_results(played):
    """[(task name, localhost result, seconds)] in order, from the ansible.posix.json output."""
    import json  # pylint: disable=import-outside-toplevel
    import datetime  # pylint: disable=import-outside-toplevel

    found = []
    try:
        document = json.loads(played.stdout)
    except ValueError:
        return found
    for one in document.get("plays", []):
        for task in one.get("tasks", []):
            duration = task["task"].get("duration") or {}
            seconds = None
            if duration.get("start") and duration.get("end"):
                start, end = (datetime.datetime.fromisoformat(duration[k].replace("Z", "+00:00"))
                              for k in ("start", "end"))
                seconds = (end - start).total_seconds()
            for result in task.get("hosts", {}).values():
                found.append((task["task"]["name"], result, seconds))
    return found


def raw_count(path, since, needles):
    """Lines after byte offset ``since`` that contain every needle: a cheap poll of the audit log."""
    try:
        with open(path, "rb") as log:
            log.seek(since)
            data = log.read()
    except FileNotFoundError:
        return 0
    return sum(1 for line in data.split(b"\n") if all(needle in line for needle in needles))


# --- any recorded process of a local cluster (node clusters: registry, kubelet, ...) --------
# localcluster has no public "stop / start one component and keep its data"; these use
# what cluster.json records, like kill_apiserver() and restart_apiserver() above.

def component_pid(state_dir, name):
    return localcluster._state(state_dir)["procs"][name]["pid"]  # pylint: disable=protected-access


def kill_component(state_dir, name):
    """SIGKILL the process group of component ``name``; returns its command line."""
    proc = localcluster._state(state_dir)["procs"][name]  # pylint: disable=protected-access
    with open("/proc/%d/cmdline" % proc["pid"], "rb") as cmdline:
        argv = [arg.decode() for arg in cmdline.read().split(b"\0") if arg]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc["pid"], signal.SIGKILL)
    wait_for("%s to exit" % name, lambda: _reaped(proc), timeout=30, interval=0.05)
    return argv


def start_component(state_dir, name, argv, ready, env=None, timeout=60):
    """Start component ``name`` again with ``argv`` (its data kept), record it in
    cluster.json, and wait until ``ready()`` is true."""
    # pylint: disable=protected-access
    with localcluster._locked(state_dir):
        cluster = localcluster._load(state_dir)
        state = localcluster._state(state_dir)
        state["procs"][name] = localcluster._spawn(state_dir, name, argv, env)
        localcluster._save(state_dir, cluster, state)
        localcluster._wait(state_dir, state["procs"], name, ready, timeout)
    return localcluster.info(state_dir)


def freeze_component(state_dir, name):
    """SIGSTOP one component (its sockets stay open, it answers nothing)."""
    os.kill(component_pid(state_dir, name), signal.SIGSTOP)


def thaw_component(state_dir, name):
    with contextlib.suppress(ProcessLookupError):
        os.kill(component_pid(state_dir, name), signal.SIGCONT)
