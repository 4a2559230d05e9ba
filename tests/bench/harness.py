"""What every benchmark path shares: the cluster, fresh namespace sets, measure(), verify().

A measurement is one timed run of one path on one namespace set: wall time of the
whole client process, the API requests of the identity under test (`admin`) counted
from the audit log between two marks, and the peak memory of the process that does
the work (memwrap.py).
Setup (namespaces, waiting for their `default` service account) and verification run
as `fixture`, so they are never counted.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime
import itertools
import os
import re
import resource
import secrets
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for _path in (os.path.join(REPO, "tests", "cluster"), os.path.join(REPO, "tests", "functional"),
              os.path.join(REPO, "tests", "standins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# pylint: disable=wrong-import-position
import audit  # noqa: E402
import localcluster  # noqa: E402
from playbook import Runner, collections_path  # noqa: E402

sys.path.insert(0, collections_path())
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (  # noqa: E402
    IAM_API_KEY_USERNAME,
    build_dockerconfig,
    canonical,
    decode_secret,
    icr_domains,
)
# pylint: enable=wrong-import-position

SECRET_NAME = "bench-icr-io"
# Never a real key: validate_credentials stays off, nothing logs in to a registry.
API_KEY = "bench-not-a-real-iam-api-key"
SET_LABEL = "ibmreg-bench"
SETUP_THREADS = 16
SA_TIMEOUT = 300
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Measurement:
    path: str                 # which client: ours, kubernetes.core loop, kubectl loop, floor, ...
    run: str                  # first run, no-op rerun, check mode, ...
    size: int                 # namespaces in the set
    wall: float               # seconds, the whole client process
    cpu_seconds: float        # user + system CPU of that process and its descendants
    requests: dict            # API requests of `admin` by verb
    writes_in_set: int        # write requests of `admin` inside the set's namespaces
    peak_rss_mib: float | None
    peak_of: str              # which process peak_rss_mib is of
    ok: bool                  # exit status 0 and, where asked, the outcome verified
    problem: str = ""         # why not ok
    note: str = ""            # facts for the reader (floor work time, ...)
    load: float = 0.0         # 1-minute load average of the machine when the run started
    others_cpu: float = 0.0   # CPU seconds the machine spent on anything else meanwhile
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def writes(self) -> int:
        return sum(n for verb, n in self.requests.items() if verb in audit.WRITE_VERBS)


@dataclasses.dataclass
class NamespaceSet:
    """size namespaces named <prefix>NNNNN, all labelled SET_LABEL=<label>."""

    label: str
    prefix: str
    names: list

    @property
    def selector(self) -> str:
        return f"{SET_LABEL}={self.label}"


class Bench:
    """One benchmark session on one local cluster.

    With reuse=False (make bench) the cluster in cluster_dir is private to the benchmark
    and reset() restarts it with an empty etcd, so every path meets a cluster holding
    exactly its own namespace set. With reuse=True (the smoke test) an already running
    cluster is shared: nothing is restarted, request counts may include other clients,
    and close() deletes the namespaces this session created.
    """

    def __init__(self, cluster_dir: str, workdir: str, reuse: bool = False, parallelism: int = 8,
                 collections_dir: str | None = None, log=None):
        self.cluster_dir = os.path.abspath(cluster_dir)
        self.workdir = workdir
        self.reuse = reuse
        self.parallelism = parallelism
        self.collections_dir = collections_dir
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.run_id = secrets.token_hex(3)
        self.cluster = None
        self.audit = None
        self.iam = None  # the IAM stand-in, once start_iam() ran
        self.iam_key = ""
        self.ocp_source = ""  # the namespace of the OpenShift stand-in's dockercfg secret
        self.ocp_token = ""  # and its token
        self.core = None
        self._sets = []
        self._set_numbers = itertools.count()
        os.makedirs(workdir, exist_ok=True)
        self.memlog = os.path.join(workdir, "memlog.tsv")
        self.interpreter = self._write_launcher()
        self.desired = build_dockerconfig(icr_domains(["all"], ["public", "private"]),
                                          IAM_API_KEY_USERNAME, API_KEY)
        # The exact bytes every path stores (compact, key-sorted JSON, as the module encodes it).
        self.dockerconfig_json = canonical(self.desired)
        self.dockerconfig_file = os.path.join(workdir, "dockerconfig.json")
        with open(self.dockerconfig_file, "w", encoding="utf-8") as handle:
            handle.write(self.dockerconfig_json)
        os.chmod(self.dockerconfig_file, 0o600)

    # --- cluster -------------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        self.cluster = localcluster.ensure_running(self.cluster_dir)
        self._connect()
        self.log(f"cluster {self.cluster.server} ready ({time.monotonic() - started:.1f}s)")

    def reset(self) -> None:
        """A fresh, empty cluster (private mode); nothing in reuse mode."""
        if self.reuse:
            return
        started = time.monotonic()
        localcluster.stop(self.cluster_dir)
        self.cluster = localcluster.ensure_running(self.cluster_dir)
        self._connect()
        self._sets = []
        self.log(f"cluster reset ({time.monotonic() - started:.1f}s)")

    def close(self, keep_cluster: bool = False) -> None:
        if self.iam is not None:
            self.iam.stop()
            self.iam = None
        if self.reuse:
            self._delete_sets()
        elif not keep_cluster:
            localcluster.stop(self.cluster_dir)
            self.log("cluster stopped")

    def _connect(self) -> None:
        from kubernetes import client, config  # pylint: disable=import-outside-toplevel

        self.audit = audit.AuditLog(self.cluster.audit_log)
        api_client = config.new_client_from_config(config_file=self.cluster.fixture_kubeconfig)
        api_client.configuration.connection_pool_maxsize = SETUP_THREADS
        self.core = client.CoreV1Api(api_client)

    def server_version(self) -> str:
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        return client.VersionApi(self.core.api_client).get_code().git_version

    # --- namespace sets ------------------------------------------------------------

    def fresh_set(self, key: str, size: int) -> NamespaceSet:
        """size new namespaces, each with its `default` SA and token in place (not timed)."""
        label = f"{self.run_id}-{next(self._set_numbers)}-{key}-{size}"
        prefix = f"bench-{label}-"
        names = [f"{prefix}{i:05d}" for i in range(size)]
        started = time.monotonic()

        def create(name):
            self.core.create_namespace({"metadata": {"name": name, "labels": {SET_LABEL: label}}})

        with ThreadPoolExecutor(SETUP_THREADS) as pool:
            list(pool.map(create, names))
        ns_set = NamespaceSet(label, prefix, names)
        self._sets.append(ns_set)
        self._wait_for_default_accounts(ns_set)
        self.log(f"  {size} namespaces {prefix}* ready ({time.monotonic() - started:.1f}s)")
        return ns_set

    def _wait_for_default_accounts(self, ns_set: NamespaceSet) -> None:
        # Kubernetes >= 1.24 adds no token secret to a ServiceAccount: once it exists, no
        # controller writes to it again while a path is timed.
        wanted = set(ns_set.names)
        deadline = time.monotonic() + SA_TIMEOUT
        while True:
            accounts = self.core.list_service_account_for_all_namespaces(
                field_selector="metadata.name=default").items
            settled = {sa.metadata.namespace for sa in accounts if sa.metadata.namespace in wanted}
            if settled == wanted:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(wanted - settled)} namespaces of {ns_set.prefix}* have no "
                                   f"settled default ServiceAccount after {SA_TIMEOUT}s")
            time.sleep(0.5)
        time.sleep(1.0)  # let the controllers' last writes drain before anything is timed

    def _delete_sets(self) -> None:
        names = [name for ns_set in self._sets for name in ns_set.names]
        with ThreadPoolExecutor(SETUP_THREADS) as pool:
            list(pool.map(self.core.delete_namespace, names))
        self._sets = []

    def add_same_name_secrets(self, ns_set: NamespaceSet) -> None:
        """The benchmark's pull secret, as the module writes it, in every namespace of the set
        (the crowd next to a small target set; not timed)."""
        body = {"metadata": {"name": SECRET_NAME, "labels": {"app.kubernetes.io/managed-by": "ibmcloud.registry"}},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": base64.b64encode(self.dockerconfig_json.encode()).decode()}}
        started = time.monotonic()
        with ThreadPoolExecutor(SETUP_THREADS) as pool:
            list(pool.map(lambda ns: self.core.create_namespaced_secret(ns, body), ns_set.names))
        self.log(f"  {len(ns_set.names)} same-name secrets in {ns_set.prefix}* ({time.monotonic() - started:.1f}s)")

    def drop_secrets(self, ns_set: NamespaceSet, fraction: float = 0.1) -> list:
        """Delete the pull secret in every 1/fraction-th namespace, as `fixture`."""
        step = max(1, round(1 / fraction))
        victims = ns_set.names[::step]
        with ThreadPoolExecutor(SETUP_THREADS) as pool:
            list(pool.map(lambda ns: self.core.delete_namespaced_secret(SECRET_NAME, ns), victims))
        return victims

    def verify(self, ns_set: NamespaceSet, name: str = SECRET_NAME, check=None) -> str:
        """'' when every namespace of the set has the secret and its default SA names it once.

        check(decoded dockerconfig, namespace) returns what is wrong with one secret's
        content ('' when right); by default it must be the benchmark's own (self.desired).
        """
        if check is None:
            def check(config, _namespace):
                return "" if config == self.desired else "not the expected content"
        wanted = set(ns_set.names)
        found = {s.metadata.namespace: s for s in self.core.list_secret_for_all_namespaces(
            field_selector=f"metadata.name={name}").items if s.metadata.namespace in wanted}
        problems = []
        wrong = {}
        for ns in wanted:
            if ns not in found:
                wrong[ns] = "missing"
                continue
            try:
                why = check(decode_secret(found[ns].type, found[ns].data, ns), ns)
            except ValueError as exc:
                why = str(exc)
            if why:
                wrong[ns] = why
        if wrong:
            first = sorted(wrong)[0]
            problems.append(f"{len(wrong)} namespaces lack the expected secret (e.g. {first}: {wrong[first]})")
        accounts = self.core.list_service_account_for_all_namespaces(
            field_selector="metadata.name=default").items
        refs = {sa.metadata.namespace: [ref.name for ref in sa.image_pull_secrets or []]
                for sa in accounts if sa.metadata.namespace in wanted}
        unlinked = [ns for ns in wanted if refs.get(ns, []).count(name) != 1]
        if unlinked:
            problems.append(f"{len(unlinked)} default service accounts do not reference it exactly "
                            f"once (e.g. {sorted(unlinked)[0]})")
        return "; ".join(problems)

    # --- IAM stand-in --------------------------------------------------------------

    def start_iam(self):
        """The LOCAL IAM STAND-IN (tests/standins/iam_server.py) on 127.0.0.1, with an admin key."""
        if self.iam is None:
            import iam_server  # pylint: disable=import-outside-toplevel

            self.iam = iam_server.IamStandIn().start()
            self.iam_key = self.iam.fresh_admin_key(prefix="BENCH-admin-")
            self.log(f"IAM stand-in at {self.iam.url}")
        return self.iam

    def iam_service_id(self, name: str) -> dict:
        """Create a service ID in the stand-in through its API (setup, not timed)."""
        from ibm_cloud_sdk_core.authenticators import IAMAuthenticator  # pylint: disable=import-outside-toplevel
        from ibm_platform_services import IamIdentityV1  # pylint: disable=import-outside-toplevel

        import iam_server  # pylint: disable=import-outside-toplevel

        identity = IamIdentityV1(authenticator=IAMAuthenticator(self.iam_key, url=self.iam.url))
        identity.set_service_url(self.iam.url)
        return identity.create_service_id(account_id=iam_server.DEFAULT_ACCOUNT, name=name).get_result()

    # --- running clients -----------------------------------------------------------

    def _write_launcher(self) -> str:
        path = os.path.join(self.workdir, "python-memwrap")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("#!/bin/sh\nexec %s \"$@\"\n" % " ".join(map(shlex.quote, self.memwrap([sys.executable]))))
        os.chmod(path, 0o755)
        return path

    def memwrap(self, argv: list) -> list:
        """argv run under the memory wrapper (see memwrap.py)."""
        return [sys.executable, "-I", "-S", os.path.join(HERE, "memwrap.py")] + list(argv)

    def ansible_env(self) -> dict:
        """Environment for ansible-playbook: modules run under the memory wrapper."""
        env = {"ANSIBLE_PYTHON_INTERPRETER": self.interpreter, "IBMREG_BENCH_MEMLOG": self.memlog}
        if self.collections_dir:
            env["ANSIBLE_COLLECTIONS_PATH"] = self.collections_dir
        return env

    def runner(self, name: str) -> Runner:
        workdir = os.path.join(self.workdir, name)
        os.makedirs(workdir, exist_ok=True)
        return Runner(self.cluster.kubeconfig, workdir=workdir)

    def peaks(self) -> tuple:
        """({script: peak RSS KiB}, number of processes) run under memwrap since measure() started."""
        peaks, count = collections.defaultdict(int), 0
        if os.path.exists(self.memlog):
            with open(self.memlog, encoding="utf-8") as handle:
                for line in handle:
                    _program, script, kib = line.rstrip("\n").split("\t")
                    peaks[script] = max(peaks[script], int(kib))
                    count += 1
        return dict(peaks), count

    def wrapper_overhead(self, runs: int = 20) -> float:
        """Seconds memwrap adds to one process: `python -c pass` wrapped minus bare (median)."""
        env = dict(os.environ, IBMREG_BENCH_MEMLOG=os.path.join(self.workdir, "overhead.tsv"))

        def timed(argv):
            started = time.perf_counter()
            subprocess.run(argv, env=env, check=True)
            return time.perf_counter() - started

        bare = [sys.executable, "-c", "pass"]
        pairs = sorted(timed(self.memwrap(bare)) - timed(bare) for _run in range(runs))
        return max(0.0, pairs[len(pairs) // 2])

    def measure(self, path: str, run: str, ns_set: NamespaceSet | None, action,
                verify=True) -> Measurement:
        """Time action() (which runs one client to completion) and collect its numbers.

        action returns a dict: `rc` (exit status), and optionally `peak_of` (what the
        largest process under memwrap is, when not an Ansible module), `problem`,
        `note`, `extra`. With verify, the set must afterwards hold the expected secret
        and references (verify()).
        """
        if os.path.exists(self.memlog):
            os.remove(self.memlog)
        names = ns_set.names if ns_set else []
        self.log(f"  {path} / {run} / N={len(names)} ...")
        load = os.getloadavg()[0]
        mark = self.audit.mark()
        iam_mark = self.iam.mark() if self.iam is not None else None
        cpu_before, busy_before = _children_cpu(), self._busy_cpu()
        started, started_at = time.perf_counter(), time.time()
        outcome = action()
        wall = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
        others = max(0.0, self._busy_cpu() - busy_before - cpu)
        phases = self._phases(mark, started_at)
        requests = dict(sorted(self.audit.count(mark, user="admin").items()))
        writes_in_set = 0
        if ns_set:
            writes_in_set = len(self.audit.writes(mark, user="admin", namespace_prefix=ns_set.prefix))
        peak_kib, peak_of = None, ""
        peaks, wrapped = self.peaks()
        if peaks:
            script = max(peaks, key=peaks.get)
            peak_kib, peak_of = peaks[script], outcome.get("peak_of") or _module_name(script)
        extra = dict(outcome.get("extra", {}), wrapped_processes=wrapped, **phases)
        if iam_mark is not None:
            extra["iam_requests"] = self.iam_requests(iam_mark)
        problems = [outcome.get("problem", "")]
        if outcome["rc"] != 0:
            problems.insert(0, f"exit status {outcome['rc']}")
        elif verify and ns_set:
            problems.append(verify(ns_set) if callable(verify) else self.verify(ns_set))
        problem = "; ".join(p for p in problems if p)
        result = Measurement(path, run, len(names), wall, cpu, requests, writes_in_set,
                             round(peak_kib / 1024, 1) if peak_kib else None, peak_of,
                             ok=not problem, problem=problem, note=outcome.get("note", ""),
                             load=load, others_cpu=round(others, 2), extra=extra)
        self.log(f"    {wall:.2f}s (CPU {cpu:.2f}s, others {others:.2f}s), {result.total_requests} requests {requests}, "
                 f"peak {result.peak_rss_mib} MiB ({peak_of}){'' if result.ok else ' FAILED: ' + problem}")
        return result

    def iam_requests(self, mark: int) -> dict:
        """{'POST /v1/apikeys': 1, ...}: requests to the IAM stand-in after mark (IDs in paths elided)."""
        counts = collections.Counter()
        for entry in self.iam.requests():
            if entry["seq"] > mark:
                path = re.sub(r"/(ServiceId|ApiKey)-[^/]+", r"/{\1}", entry["path"])
                counts[f"{entry['method']} {path}"] += 1
        return dict(sorted(counts.items()))

    def _busy_cpu(self) -> float:
        return busy_cpu((self.cluster.pids or {}).values())

    def _phases(self, mark: int, started_at: float) -> dict:
        """When the first request arrived and the last one was answered, in s after the start.

        From the audit log's own timestamps: what the client did before its first request
        (start-up) and after its last response (output) is wall time minus the API phase.
        """
        times = []
        for event in self.audit.events(mark, user="admin"):
            times.append(_timestamp(event["requestReceivedTimestamp"]))
            times.append(_timestamp(event["stageTimestamp"]))
        if not times:
            return {}
        return {"first_request_s": round(min(times) - started_at, 3),
                "last_response_s": round(max(times) - started_at, 3)}


def busy_cpu(cluster_pids) -> float:
    """CPU seconds the machine has spent on other work than these cluster processes and this process.

    All busy time (including steal: a hypervisor serving other guests) minus the
    cluster's processes and this harness itself; the caller also subtracts the client.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    total = (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    for pid in cluster_pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total -= (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    own = resource.getrusage(resource.RUSAGE_SELF)
    return total - own.ru_utime - own.ru_stime


def _timestamp(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _children_cpu() -> float:
    """CPU seconds of all children (and their descendants) this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _module_name(script: str) -> str:
    """AnsiballZ_icr_pull_secret.py -> icr_pull_secret module."""
    name = script.removeprefix("AnsiballZ_").removesuffix(".py")
    return f"{name} module" if name else "module"
