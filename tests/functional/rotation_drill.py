"""The key rotation drill: pods keep pulling while playbooks/rotate_api_key.yml rotates their key.

On a node cluster of its own (``<repo>/.cluster-drill``, localcluster.py ``--node``) with the
LOCAL STAND-INS for IBM Cloud IAM (tests/standins/iam_server.py) and for the registry's token
service (tests/standins/token_registry.py: the real docker-registry with token auth, serving
``us.icr.io`` to the node through hosts.toml mirrors on loopback):

1. N namespaces, then ``ansible-playbook playbooks/site.yml`` with an ``iam_pull_secret`` part
   in cluster mode (``ibmcloud ks cluster pull-secret apply``): a service ID, a Reader policy on
   the registry namespace, one API key in ``all-icr-io`` of ``default`` and of the N namespaces,
   linked to their ``default`` service accounts.
2. Pods (imagePullPolicy Always, ``us.icr.io/ibmreg-team/busybox:1``, no pull secret of their
   own: the ServiceAccount brings it) are created round-robin in the N namespaces at a steady
   rate, and every one is followed until Running/Succeeded or a pull failure
   (ErrImagePull/ImagePullBackOff, with the kubelet's message), then deleted.
3. Half-way, ``ansible-playbook playbooks/rotate_api_key.yml`` with the same vars file (its
   grace period, unless ``--grace-period`` sets one: the playbook waits for it and then
   deletes the old key).
4. Pods keep coming for the second half; then every pod is waited for.

Prints ``failed pulls: K of M`` and ``old key valid for <s> s after the new key was created``
(from the IAM stand-in's request log: the new key's ``POST /v1/apikeys`` to the old key's
``DELETE``), and from the token service's log how long after the secrets were updated a pull
still came with the old key; exits 1 if K > 0, if a pod was never decided, or if the old key survived.
Deletes its pods and namespaces at the end; stops its cluster unless ``--keep-cluster``.

    python tests/functional/rotation_drill.py [--namespaces 20] [--duration 120] [--rate 1]
        [--grace-period S] [--keep-cluster]

Every address used is on 127.0.0.0/8; no real icr.io or IAM host is resolved or dialled.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "standins"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))

import audit as audit_log  # noqa: E402  pylint: disable=wrong-import-position
import iam_server  # noqa: E402  pylint: disable=wrong-import-position
import localcluster  # noqa: E402  pylint: disable=wrong-import-position
import localnode  # noqa: E402  pylint: disable=wrong-import-position
import node_pods  # noqa: E402  pylint: disable=wrong-import-position
import token_registry  # noqa: E402  pylint: disable=wrong-import-position
from playbook import REPO, collections_path  # noqa: E402  pylint: disable=wrong-import-position
from reliability.common import fixture_api, wait_for_service_accounts  # noqa: E402  pylint: disable=wrong-import-position

CLUSTER_DIR = os.path.join(REPO, ".cluster-drill")
TEAM = "ibmreg-team"                      # the registry namespace that holds the image
IMAGE = "%s/%s/busybox:1" % (token_registry.IAM_DOMAIN, TEAM)
SECRET = "all-icr-io"
LABEL = "ibmreg.test/rotation-drill"
PLAYBOOK_TIMEOUT = 900
POD_TIMEOUT = 600                         # a pod still undecided this long after the last create


# --- the environment: cluster, stand-ins, mirrors ------------------------------------------


class DrillEnv:
    """The node cluster, the IAM stand-in with an admin key, the token registries holding the
    image, and the node's hosts.toml mirrors for the icr.io names; a context manager."""

    def __init__(self, cluster, workdir):
        self.cluster = cluster
        self.workdir = workdir
        self.admin_key = "ADMIN-ibmcloud-" + secrets.token_urlsafe(24)
        self.iam = None
        self.registries = None
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        try:
            shutil.rmtree(self.workdir, ignore_errors=True)
            os.makedirs(self.workdir)
            self.iam = iam_server.IamStandIn().start()
            self._stack.callback(self.iam.stop)
            self.iam.add_admin_key(self.admin_key)
            self.registries = token_registry.TokenRegistries(os.path.join(self.workdir, "registries"),
                                                             self.iam.url, self.admin_key).start()
            self._stack.callback(self.registries.stop)
            # The content, pushed through the token flow by a key with Writer (test setup, not
            # the collection's part).
            client = self.iam_client()
            pusher = client.service_id("drill-pusher-" + secrets.token_hex(3))
            client.policy(pusher["iam_id"], ["Writer"], "us-south", TEAM)
            _key_id, value = client.api_key(pusher["iam_id"], "drill-pusher-key")
            pushed = self.registries.push(localnode.app_layout(), "1", token_registry.IAM_DOMAIN,
                                          TEAM + "/busybox", "iamapikey", value)
            if pushed.returncode:
                raise RuntimeError("pushing the drill's image failed: " + pushed.stderr[-2000:])
            certs = os.path.join(localnode.node_dir(self.cluster.state_dir), "certs.d")
            self._stack.enter_context(self.registries.node_hosts(certs))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def iam_client(self):
        return token_registry.IamClient(self.iam.url, self.admin_key, iam_server.DEFAULT_ACCOUNT)


# --- pods -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Pod:
    namespace: str
    name: str
    created: float
    outcome: str = ""        # pulled | pull-failed | other (empty: not decided yet)
    decided: float = 0.0
    reason: str = ""
    message: str = ""


def pod_body(name, run_id):
    """A hostNetwork pod (the node's CNI is loopback only) naming no pull secret: the
    namespace's default ServiceAccount brings all-icr-io; Always, so every pod asks the registry."""
    return {"metadata": {"name": name, "labels": {LABEL: run_id}},
            "spec": {"hostNetwork": True, "restartPolicy": "Never", "automountServiceAccountToken": False,
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "Always",
                                     "command": ["sh", "-c", "echo pulled"]}]}}


def judge(pod):
    """(outcome, reason, message) of a pod object, or None while its pull is still open."""
    status = pod.status
    if status.phase in ("Running", "Succeeded"):
        return "pulled", status.phase, ""
    for container in status.container_statuses or []:
        state = container.state
        if state.waiting and state.waiting.reason in node_pods.PULL_FAILURES:
            return "pull-failed", state.waiting.reason, state.waiting.message or ""
        if state.terminated:
            # The container ran, so the image was pulled (restartPolicy Never, it may be Failed).
            return "pulled", "terminated %s" % state.terminated.exit_code, state.terminated.message or ""
        if state.waiting and state.waiting.reason not in ("ContainerCreating", "PodInitializing"):
            return "other", state.waiting.reason, state.waiting.message or ""
    if status.phase == "Failed":
        return "other", status.reason or "Failed", status.message or ""
    return None


class PodTraffic:
    """One thread creates pods round-robin at ``rate`` per second; another lists them (one
    LIST by label per second), records each outcome once and deletes the pod."""

    def __init__(self, cluster, namespaces, rate):
        self.cluster = cluster
        self.namespaces = namespaces
        self.interval = 1.0 / rate
        self.run_id = secrets.token_hex(4)
        self.pods = {}            # (namespace, name) -> Pod
        self.create_errors = []
        self.lock = threading.Lock()
        self.creating = threading.Event()
        self.tracking = threading.Event()
        self.threads = []

    def start(self):
        self.creating.set()
        self.tracking.set()
        for target in (self._create_loop, self._track_loop):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _create_loop(self):
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        with fixture_api(self.cluster) as api:
            core = client.CoreV1Api(api)
            count = 0
            next_at = time.monotonic()
            while self.creating.is_set():
                namespace = self.namespaces[count % len(self.namespaces)]
                name = "pull-%05d" % count
                count += 1
                try:
                    core.create_namespaced_pod(namespace, pod_body(name, self.run_id))
                    with self.lock:
                        self.pods[(namespace, name)] = Pod(namespace, name, time.time())
                except Exception as exc:  # pylint: disable=broad-except  # reported, never a pull
                    self.create_errors.append("%s/%s: %s" % (namespace, name, str(exc)[:300]))
                next_at += self.interval
                time.sleep(max(0.0, next_at - time.monotonic()))

    def _track_loop(self):
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        with fixture_api(self.cluster) as api:
            core = client.CoreV1Api(api)
            while self.tracking.is_set():
                try:
                    listed = core.list_pod_for_all_namespaces(label_selector="%s=%s" % (LABEL, self.run_id))
                except Exception:  # pylint: disable=broad-except  # the next poll tries again
                    time.sleep(1.0)
                    continue
                for item in listed.items:
                    key = (item.metadata.namespace, item.metadata.name)
                    with self.lock:
                        pod = self.pods.get(key)
                    if pod is None or pod.outcome or item.metadata.deletion_timestamp:
                        continue
                    verdict = judge(item)
                    if verdict is None:
                        continue
                    pod.outcome, pod.reason, pod.message = verdict
                    pod.decided = time.time()
                    with contextlib.suppress(Exception):  # the namespace's deletion takes it anyway
                        core.delete_namespaced_pod(pod.name, pod.namespace, grace_period_seconds=0)
                time.sleep(1.0)

    def stop_creating(self):
        self.creating.clear()
        self.threads[0].join(timeout=60)

    def wait_decided(self, timeout=POD_TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.undecided() and time.monotonic() < deadline:
            time.sleep(1.0)
        self.tracking.clear()
        self.threads[1].join(timeout=60)

    def undecided(self):
        with self.lock:
            return [p for p in self.pods.values() if not p.outcome]

    def all(self):
        with self.lock:
            return sorted(self.pods.values(), key=lambda p: p.created)


# --- the collection's playbooks -------------------------------------------------------------


class Playbooks:
    """ansible-playbook site.yml / rotate_api_key.yml of this repository, as a user runs them:
    an inventory with the cluster, a vars file with the iam_pull_secret part."""

    def __init__(self, env, namespaces, cluster_id, grace_period):
        self.env = env
        self.workdir = os.path.join(env.workdir, "ansible")
        os.makedirs(self.workdir, exist_ok=True)
        self.inventory = os.path.join(self.workdir, "inventory.yml")
        self.vars_file = os.path.join(self.workdir, "vars.yml")
        self.cluster_id = cluster_id
        self.runs = []
        with open(self.inventory, "w", encoding="utf-8") as out:
            yaml.safe_dump({"clusters": {
                "hosts": {"drill": {"k8s_kubeconfig": env.cluster.kubeconfig}},
                "vars": {"ansible_connection": "local",
                         "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}, out)
        part = {"mode": "cluster", "cluster_name": "drill", "cluster_id": cluster_id,
                "namespaces": namespaces, "iam_url": env.iam.url,
                "policy_regions": ["us-south"], "registry_namespaces": [TEAM],
                "regions": ["us-south"], "endpoints": ["public"]}
        if grace_period is not None:
            part["rotation_grace_period"] = grace_period
        with open(self.vars_file, "w", encoding="utf-8") as out:
            yaml.safe_dump({"iam_pull_secret": part}, out)

    @property
    def service_id(self):
        return "cluster-%s" % self.cluster_id

    def run(self, playbook):
        """(rc, seconds, output) of one ansible-playbook run; the output goes to a log too."""
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                   "-i", self.inventory, os.path.join(REPO, "playbooks", playbook), "-e", "@" + self.vars_file]
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=os.path.join(self.workdir, "tmp"), IC_API_KEY=self.env.admin_key)
        started = time.time()
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=self.workdir,
                              timeout=PLAYBOOK_TIMEOUT, check=False)
        seconds = time.time() - started
        log = os.path.join(self.workdir, "%02d-%s.log" % (len(self.runs), playbook.replace(".yml", "")))
        with open(log, "w", encoding="utf-8") as out:
            out.write(proc.stdout + proc.stderr)
        self.runs.append({"playbook": playbook, "rc": proc.returncode, "started": started,
                          "seconds": seconds, "log": log})
        return proc.returncode, seconds, proc.stdout + proc.stderr


def audit_time(stamp):
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def service_keys(iam, service_id_name):
    """The IAM stand-in's keys of a service ID (by name), oldest first."""
    state = iam.snapshot()
    iam_ids = [s["iam_id"] for s in state["service_ids"] if s["name"] == service_id_name]
    return sorted((k for k in state["api_keys"] if k["iam_id"] in iam_ids), key=lambda k: k["created_at"])


# --- the drill ------------------------------------------------------------------------------


@dataclasses.dataclass
class DrillResult:
    namespaces: list
    pods: list
    create_errors: list
    old_key_id: str
    new_key_id: str | None
    new_key_created: float | None       # IAM stand-in log time of the new key's POST
    old_key_deleted: float | None       # ... of the old key's DELETE
    old_key_left: bool                  # the old key still exists in IAM at the end
    secrets_updated: float | None       # the rotation's last write of a pull secret (audit log)
    old_key_pulls: list                 # token service times of pulls with the old key
    rotation: dict
    playbook_runs: list
    token_granted: int
    token_refused: list                 # token service entries refused for us.icr.io

    @property
    def pulled(self):
        return [p for p in self.pods if p.outcome == "pulled"]

    @property
    def failed(self):
        return [p for p in self.pods if p.outcome == "pull-failed"]

    @property
    def other(self):
        return [p for p in self.pods if p.outcome == "other"]

    @property
    def undecided(self):
        return [p for p in self.pods if not p.outcome]

    @property
    def old_key_valid_for(self):
        if self.new_key_created is None or self.old_key_deleted is None:
            return None
        return self.old_key_deleted - self.new_key_created

    def old_key_used_after_update(self):
        """Token requests with the old key after every secret held the new key."""
        if self.secrets_updated is None:
            return []
        return [t for t in self.old_key_pulls if t > self.secrets_updated]

    def pulled_after_delete(self):
        """Pods created after the old key's deletion that pulled: the new key at work."""
        if self.old_key_deleted is None:
            return []
        return [p for p in self.pulled if p.created > self.old_key_deleted]

    def ok(self):
        return (not self.failed and not self.undecided and not self.other and self.pulled
                and not self.old_key_left and self.rotation.get("rc") == 0)

    def lines(self):
        total = len(self.failed) + len(self.pulled)
        out = ["failed pulls: %d of %d" % (len(self.failed), total)]
        if self.old_key_valid_for is not None:
            out.append("old key valid for %.1f s after the new key was created" % self.old_key_valid_for)
        else:
            out.append("old key valid for ? s after the new key was created (%s)" % (
                "it was not deleted" if self.old_key_left else "no new key was created"))
        late = self.old_key_used_after_update()
        if late:
            out.append("old key last used for a pull %.1f s after every secret held the new key (%d pulls "
                       "with it after that)" % (max(late) - self.secrets_updated, len(late)))
        elif self.secrets_updated is not None:
            out.append("old key not used for a pull after every secret held the new key")
        out.append("namespaces: %d; pods created: %d (%d pulled, %d pull failures, %d other, %d undecided); "
                   "pulled after the old key was deleted: %d"
                   % (len(self.namespaces), len(self.pods), len(self.pulled), len(self.failed), len(self.other),
                      len(self.undecided), len(self.pulled_after_delete())))
        out.append("token service stand-in (us.icr.io): %d tokens granted, %d refused"
                   % (self.token_granted, len(self.token_refused)))
        for run in self.playbook_runs:
            out.append("ansible-playbook %s: rc %d in %.1f s (log %s)" % (run["playbook"], run["rc"], run["seconds"],
                                                                          run["log"]))
        out.append("old key %s %s; new key %s" % (self.old_key_id, "still exists" if self.old_key_left else "deleted",
                                                  self.new_key_id))
        for pod in (self.failed + self.other + self.undecided)[:10]:
            out.append("  %s/%s %s: %s %s" % (pod.namespace, pod.name, pod.outcome or "undecided", pod.reason,
                                              pod.message[:300]))
        if self.create_errors:
            out.append("pod create errors: %d, first: %s" % (len(self.create_errors), self.create_errors[0]))
        return out


def rotate_with_playbook(playbooks):
    """The collection's rotation, as a user runs it."""
    def rotate(_old_key_id):
        rc, seconds, output = playbooks.run("rotate_api_key.yml")
        return {"rc": rc, "seconds": seconds, "output": output}
    return rotate


@contextlib.contextmanager
def drill_namespaces(core, count):
    """``count`` namespaces whose default ServiceAccount exists; deleted at the end, with
    all-icr-io of ``default`` and its link (the role's cluster mode writes there too)."""
    with node_pods.namespace_maker(core, "drill-") as create:
        names = [create(wait=False) for _unused in range(count)]
        wait_for_service_accounts(core, names, timeout=180)
        try:
            yield names
        finally:
            _clean_default(core)


def _clean_default(core):
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    with contextlib.suppress(ApiException):
        core.delete_namespaced_secret(SECRET, "default")
    with contextlib.suppress(ApiException):
        account = core.read_namespaced_service_account("default", "default")
        kept = [{"name": s.name} for s in account.image_pull_secrets or [] if s.name != SECRET]
        core.patch_namespaced_service_account("default", "default", {"imagePullSecrets": kept or None})


def run_drill(env, core, namespaces=20, duration=120.0, rate=1.0, grace_period=None, rotate=None, log=print):
    """The drill on ``env``; ``rotate(old_key_id)`` replaces the collection's rotation (the
    negative test deletes the old key by hand). Returns a DrillResult."""
    with drill_namespaces(core, namespaces) as names:
        playbooks = Playbooks(env, names, "drill" + secrets.token_hex(3), grace_period)
        log("setting up %d namespaces with ansible-playbook playbooks/site.yml" % len(names))
        rc, _seconds, output = playbooks.run("site.yml")
        if rc:
            raise RuntimeError("site.yml failed (rc %d):\n%s" % (rc, output[-4000:]))
        keys = service_keys(env.iam, playbooks.service_id)
        if len(keys) != 1:
            raise RuntimeError("expected one API key of %s after site.yml, found %d" % (playbooks.service_id, len(keys)))
        old_id = keys[0]["id"]
        token_mark = env.registries.token.mark()
        audit = audit_log.AuditLog(env.cluster.audit_log)
        traffic = PodTraffic(env.cluster, names, rate).start()
        try:
            log("creating %.1f pods/s in %d namespaces; rotating after %.0f s" % (rate, len(names), duration / 2))
            time.sleep(duration / 2)
            iam_mark, audit_mark = env.iam.mark(), audit.mark()
            rotation = (rotate or rotate_with_playbook(playbooks))(old_id)
            log("rotation done (rc %s); creating pods for %.0f s more" % (rotation.get("rc"), duration / 2))
            time.sleep(duration / 2)
        finally:
            traffic.stop_creating()
            traffic.wait_decided()
        log_entries = [e for e in env.iam.requests() if e["seq"] > iam_mark]
        created = [e["time"] for e in log_entries
                   if e["method"] == "POST" and e["path"] == "/v1/apikeys" and e["status"] == 201]
        deleted = [e["time"] for e in log_entries
                   if e["method"] == "DELETE" and e["path"] == "/v1/apikeys/" + old_id and e["status"] < 300]
        keys_now = service_keys(env.iam, playbooks.service_id)
        # The API server's audit log: when the playbook's last write of a pull secret was done.
        writes = [audit_time(e["stageTimestamp"]) for e in audit.events(audit_mark, "admin")
                  if e.get("verb") in ("patch", "update", "create") and e["objectRef"].get("resource") == "secrets"
                  and e["objectRef"].get("name") == SECRET]
        new = [k["id"] for k in keys_now if k["id"] != old_id]
        tokens = [e for e in env.registries.token.requests(token_mark) if e["service"] == token_registry.IAM_DOMAIN]
        return DrillResult(
            namespaces=names, pods=traffic.all(), create_errors=traffic.create_errors, old_key_id=old_id,
            new_key_id=new[-1] if new else None, new_key_created=created[0] if created else None,
            old_key_deleted=deleted[0] if deleted else None,
            old_key_left=any(k["id"] == old_id for k in keys_now), rotation=rotation,
            secrets_updated=max(writes) if writes else None,
            old_key_pulls=[e["time"] for e in tokens if e.get("key_id") == old_id],
            playbook_runs=playbooks.runs, token_granted=sum(1 for e in tokens if e["status"] == 200),
            token_refused=[e for e in tokens if e["status"] != 200])


def main(argv=None):
    parser = argparse.ArgumentParser(description="Key rotation drill: pods keep pulling while "
                                     "rotate_api_key.yml rotates their key (local stand-ins for IAM and icr.io).")
    parser.add_argument("--namespaces", type=int, default=20, help="namespaces holding the pull secret (20)")
    parser.add_argument("--duration", type=float, default=120.0,
                        help="seconds of pod creation: half before the rotation, half after it (120)")
    parser.add_argument("--rate", type=float, default=1.0, help="pods created per second (1)")
    parser.add_argument("--grace-period", type=int, default=None,
                        help="rotation_grace_period in seconds (default: rotate_api_key.yml's; 0 deletes "
                        "the old key as soon as the secrets hold the new one)")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the cluster %s running" % CLUSTER_DIR)
    parser.add_argument("--dir", default=CLUSTER_DIR, help="the cluster's state directory (%(default)s)")
    args = parser.parse_args(argv)
    if args.namespaces < 1 or args.duration <= 0 or args.rate <= 0 or (args.grace_period or 0) < 0:
        parser.error("--namespaces, --duration and --rate must be positive, --grace-period not negative")
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    print("starting the node cluster %s" % args.dir, flush=True)
    cluster = localcluster.ensure_running(args.dir, node=True)
    try:
        with DrillEnv(cluster, os.path.join(REPO, ".tmp", "rotation-drill")) as env, fixture_api(cluster) as api:
            result = run_drill(env, client.CoreV1Api(api), args.namespaces, args.duration, args.rate,
                               args.grace_period, log=lambda line: print(line, flush=True))
    finally:
        if not args.keep_cluster:
            localcluster.stop(args.dir)
    report = "\n".join(result.lines())
    print(report)
    with open(os.path.join(REPO, ".tmp", "rotation-drill", "report.txt"), "w", encoding="utf-8") as out:
        out.write(report + "\n")
    return 0 if result.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
