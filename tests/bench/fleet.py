"""The fleet rows (issue 16): playbooks/site.yml over several local control planes.

CLUSTERS control planes (tests/cluster/localcluster.py, no node), each in a state dir of
its own under the benchmark's workdir, started once (a few at a time), all on 127.0.0.1.
One inventory holds them, one host per cluster (test_site's Site: the same inventory and
clients the two-cluster site tests use), and one LOCAL IAM STAND-IN
(tests/standins/iam_server.py) plays the account every cluster's service ID lives in.

The site.yml parts that make sense on a control plane without nodes, every one of them
over NAMESPACES namespaces per cluster (selected by a label, or listed for the IAM part):

- pull_secrets: all-icr-io copied from `default` (a stand-in that setup creates, as IBM
  Cloud would) and one other registry's secret, both linked from `default` service accounts;
- entitled_registry: the cp.icr.io entitlement secret, linked likewise;
- iam_pull_secret, cluster mode: the cluster's service ID, its Container Registry policy and
  one API key in a pull secret in `default` and every namespace, linked likewise.

Left out: containerd_hosts (a DaemonSet no node would run) and the OpenShift parts (plain
Kubernetes: site.yml skips them).

Measured: SERIAL - one ansible-playbook per cluster (--limit), one after another, each a
first run on its own namespace set; then FLEET - one ansible-playbook over all clusters
(--forks CLUSTERS), a first run on a second namespace set made at the same time as the
first. One cluster's run is the best of the serial runs. Both sets exist before anything is timed, so both phases meet the same clusters;
the fleet runs last, when the clusters also hold the serial phase's objects. The IAM
stand-in forgets the serial phase's service IDs and keys before the fleet phase.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import json
import os
import sys
import time

import yaml

import harness
import report

sys.path.insert(0, os.path.join(harness.REPO, "tests", "standins"))

# pylint: disable=wrong-import-position
import iam_server  # noqa: E402
import localcluster  # noqa: E402
from playbook import Runner  # noqa: E402
from test_site import Site, failures  # noqa: E402
# pylint: enable=wrong-import-position

FLEET_LABEL = "ibmreg-bench-fleet"
PHASES = ("serial", "fleet")
START_AT_ONCE = 4  # control planes started at the same time (2 cores: more only time out)
SOURCE = ("default", "all-icr-io")
FLEET, SERIAL, ONE = report.FLEET, report.SERIAL, report.ONE


def host_names(count: int) -> list:
    # Site (test_site) names its first, plain-Kubernetes cluster site-a.
    if not 1 <= count <= 26:
        raise ValueError("1 to 26 clusters")
    return [f"site-{chr(ord('a') + i)}" for i in range(count)]


def namespace_names(phase: str, count: int) -> list:
    return [f"fleet-{phase}-{i:04d}" for i in range(count)]


class Fleet:
    """The clusters, the IAM stand-in, the inventory and the vars files of both phases."""

    def __init__(self, workdir: str, clusters: int, namespaces: int, log):
        self.workdir = os.path.join(workdir, "fleet")
        self.hosts = host_names(clusters)
        self.namespaces = namespaces
        self.log = log
        self.dirs = {host: os.path.join(self.workdir, "cluster-" + host) for host in self.hosts}
        self.iam = None
        self.iam_key = ""
        self.site = None
        self.started = {}

    # --- set-up -------------------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        os.makedirs(self.workdir, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(START_AT_ONCE) as pool:
            futures = {host: pool.submit(localcluster.ensure_running, path) for host, path in self.dirs.items()}
            infos = {host: future.result() for host, future in futures.items()}
        self.log(f"fleet: {len(infos)} control planes ready ({time.monotonic() - started:.1f}s)")
        self.iam = iam_server.IamStandIn().start()
        self.iam_key = self.iam.fresh_admin_key(prefix="BENCH-fleet-admin-")
        self.site = Site(infos, self.workdir, self.iam.url)

    def prepare(self) -> None:
        """Per cluster: the all-icr-io stand-in in default and both phases' namespaces (not timed)."""
        started = time.monotonic()
        desired = harness.build_dockerconfig(harness.icr_domains(["all"], ["public", "private"]),
                                             harness.IAM_API_KEY_USERNAME, "STAND-IN-not-an-api-key")
        source = {"metadata": {"name": SOURCE[1]}, "type": "kubernetes.io/dockerconfigjson",
                  "data": {".dockerconfigjson": base64.b64encode(
                      harness.canonical(desired).encode()).decode()}}
        work = [(host, phase, name) for host in self.hosts for phase in PHASES
                for name in namespace_names(phase, self.namespaces)]

        def create(item):
            host, phase, name = item
            self.site.core[host].create_namespace({"metadata": {"name": name, "labels": {FLEET_LABEL: phase}}})

        for host in self.hosts:
            self.site.core[host].create_namespaced_secret(SOURCE[0], source)
        with concurrent.futures.ThreadPoolExecutor(harness.SETUP_THREADS) as pool:
            list(pool.map(create, work))
        for host in self.hosts:
            self._wait_for_default_accounts(host)
        for phase in PHASES:
            self._write_vars(phase)
        time.sleep(2.0)  # the controllers' last writes drain before anything is timed
        self.log(f"fleet: {len(work)} namespaces ready ({time.monotonic() - started:.1f}s)")

    def _wait_for_default_accounts(self, host: str) -> None:
        wanted = {name for phase in PHASES for name in namespace_names(phase, self.namespaces)}
        deadline = time.monotonic() + harness.SA_TIMEOUT
        while True:
            accounts = self.site.core[host].list_service_account_for_all_namespaces(
                field_selector="metadata.name=default").items
            if wanted <= {sa.metadata.namespace for sa in accounts}:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"fleet: {host} has namespaces without a default ServiceAccount")
            time.sleep(0.5)

    def vars_file(self, phase: str) -> str:
        return os.path.join(self.workdir, f"vars-{phase}.yml")

    def _write_vars(self, phase: str) -> None:
        selector = [f"{FLEET_LABEL}={phase}"]
        site_vars = {
            "pull_secrets": {
                "namespace_selector": selector,
                "service_accounts": ["default"],
                "secrets": [
                    {"copy_from": {"namespace": SOURCE[0], "name": SOURCE[1]}, "name": f"{phase}-all-icr-io"},
                    {"name": f"{phase}-private-registry",
                     "registry": {"server": "registry.fleet.invalid:5000", "username": "fleet-robot",
                                  "password": "fleet-password-placeholder"}},
                ],
            },
            "entitled_registry": {
                "entitlement_key": "fleet-entitlement-key-placeholder",
                "secret_name": f"{phase}-entitled-cp-icr-io",
                "namespace_selector": selector,
            },
            "iam_pull_secret": {
                "mode": "cluster",
                # One service ID per cluster (site.yml templates the vars per host).
                "cluster_id": "{{ inventory_hostname }}",
                "secret_name": f"{phase}-iam-icr-io",
                "namespaces": namespace_names(phase, self.namespaces),
                "iam_url": self.iam.url,
            },
        }
        with open(self.vars_file(phase), "w", encoding="utf-8") as out:
            yaml.safe_dump(site_vars, out)

    # --- runs -------------------------------------------------------------------------

    def play(self, phase: str, hosts: list) -> harness.Measurement:
        """One ansible-playbook of site.yml over hosts (forks = len(hosts)), timed."""
        runner = Runner(self.site.infos[hosts[0]].kubeconfig,
                        workdir=os.path.join(self.workdir, f"{phase}-{'-'.join(h[-1] for h in hosts)}"))
        os.makedirs(runner.workdir, exist_ok=True)
        marks = self.site.marks()
        args = ("-e", "@" + self.vars_file(phase), "--forks", str(len(hosts)), "--limit", ",".join(hosts))
        self.log(f"  site.yml / {phase} / {','.join(hosts)} ...")
        load = os.getloadavg()[0]
        pids = [pid for info in self.site.infos.values() for pid in (info.pids or {}).values()]
        cpu_before = harness._children_cpu()  # pylint: disable=protected-access
        busy_before = harness.busy_cpu(pids)
        started = time.perf_counter()
        result = runner.run([], plays=[{"ansible.builtin.import_playbook": "ibmcloud.registry.site"}],
                            inventory=self.site.inventory, args=args, env={"IC_API_KEY": self.iam_key})
        wall = time.perf_counter() - started
        cpu = harness._children_cpu() - cpu_before  # pylint: disable=protected-access
        others = max(0.0, harness.busy_cpu(pids) - busy_before - cpu)
        result.document = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
        requests = {}
        for host in hosts:
            for verb, count in self.site.audit[host].count(marks[host], user="admin").items():
                requests[verb] = requests.get(verb, 0) + count
        problem = "" if result.rc == 0 else f"exit status {result.rc}: {failures(result)[-1500:]}"
        if not problem:
            problem = "; ".join(p for p in (self.verify(host, phase) for host in hosts) if p)
        stats = result.document.get("stats", {})
        measured = harness.Measurement(
            FLEET if len(hosts) > 1 else ONE, f"{len(hosts)} cluster(s), forks {len(hosts)}", self.namespaces,
            wall, cpu, dict(sorted(requests.items())), 0, None, "", ok=not problem, problem=problem,
            load=load, others_cpu=round(others, 2), extra={"hosts": hosts, "changed": {h: stats.get(h, {}).get("changed") for h in hosts}})
        self.log(f"    {wall:.2f}s (CPU {cpu:.2f}s, others {others:.2f}s), {measured.total_requests} requests"
                 f"{'' if measured.ok else ' FAILED: ' + problem[:300]}")
        return measured

    def verify(self, host: str, phase: str) -> str:
        """'' when each namespace of the phase holds the four secrets and `default` links them."""
        core = self.site.core[host]
        wanted = set(namespace_names(phase, self.namespaces))
        names = [f"{phase}-all-icr-io", f"{phase}-private-registry", f"{phase}-entitled-cp-icr-io",
                 f"{phase}-iam-icr-io"]
        problems = []
        for name in names:
            held = {s.metadata.namespace for s in core.list_secret_for_all_namespaces(
                field_selector=f"metadata.name={name}").items}
            if wanted - held:
                problems.append(f"{host}: {len(wanted - held)} namespaces lack {name}")
        accounts = core.list_service_account_for_all_namespaces(field_selector="metadata.name=default").items
        unlinked = [sa.metadata.namespace for sa in accounts if sa.metadata.namespace in wanted
                    and not set(names) <= {ref.name for ref in sa.image_pull_secrets or []}]
        if unlinked:
            problems.append(f"{host}: {len(unlinked)} default service accounts lack a link (e.g. {unlinked[0]})")
        return "; ".join(problems)

    def memory(self) -> dict:
        """{host: {process: (VmRSS MiB, VmHWM MiB)}} of each cluster's kube-apiserver and etcd."""
        found = {}
        for host, info in self.site.infos.items():
            found[host] = {}
            for process in ("kube-apiserver", "etcd"):
                found[host][process] = _rss(info.pids.get(process))
        return found

    def close(self) -> None:
        if self.iam is not None:
            self.iam.stop()
        for path in self.dirs.values():
            localcluster.stop(path)
        self.log("fleet: clusters stopped")


def _rss(pid) -> tuple:
    values = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                key, _sep, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024
    except (OSError, TypeError, ValueError):
        return (None, None)
    return (round(values.get("VmRSS", 0), 1), round(values.get("VmHWM", 0), 1))


def fleet_runs(workdir: str, clusters: int, namespaces: int, log) -> list:
    """The serial runs, one cluster at a time, then the fleet run; Measurements."""
    fleet = Fleet(workdir, clusters, namespaces, log)
    results = []
    started = time.monotonic()
    try:
        fleet.start()
        fleet.prepare()
        # Ansible's first start reads the collection from disk; not counted.
        warm = os.path.join(fleet.workdir, "warm")
        os.makedirs(warm, exist_ok=True)
        Runner(fleet.site.infos[fleet.hosts[0]].kubeconfig, workdir=warm).run([{"name": "ping", "ansible.builtin.ping": {}}])
        serial = [fleet.play("serial", [host]) for host in fleet.hosts]
        fleet.iam.reset()  # keeps the admin key
        whole = fleet.play("fleet", fleet.hosts)
        whole.extra["memory"] = fleet.memory()
    finally:
        fleet.close()
    total = dataclasses.replace(
        serial[0], path=SERIAL, run=f"{clusters} runs of one cluster, one after another",
        wall=sum(m.wall for m in serial), cpu_seconds=sum(m.cpu_seconds for m in serial),
        others_cpu=round(sum(m.others_cpu for m in serial), 2),
        requests=_sum_requests(serial), ok=all(m.ok for m in serial),
        problem="; ".join(m.problem for m in serial if m.problem),
        extra={"walls": [round(sum(m.wall for m in serial), 3)], "cluster_walls": [round(m.wall, 3) for m in serial]})
    # One cluster's run: the best serial run (the least disturbed by other work, as the best
    # round elsewhere); the row's median column shows the median of all of them.
    one = dataclasses.replace(min(serial, key=lambda m: m.wall), run=f"one cluster alone, best of {clusters}")
    one.extra = dict(one.extra, walls=[round(m.wall, 3) for m in serial])
    whole.extra["setup_minutes"] = round((time.monotonic() - started) / 60, 1)
    whole.extra["serial_walls"] = [round(m.wall, 3) for m in serial]
    results += [one, total, whole]
    return results


def _sum_requests(rows: list) -> dict:
    total = {}
    for m in rows:
        for verb, count in m.requests.items():
            total[verb] = total.get(verb, 0) + count
    return dict(sorted(total.items()))
