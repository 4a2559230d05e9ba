"""One function per benchmark path. Each runs one client to completion inside
Bench.measure() and returns its Measurement; the namespace set is made by the caller.

- ours: one ibmcloud.registry.icr_pull_secret task for the whole set;
- kubernetes_core_loop: kubernetes.core.k8s_info, then kubernetes.core.k8s looped over
  the namespaces for the secret and again for the service account;
- kubectl_loop: the guide's kubectl commands in a shell loop (kubectl-loop.sh);
- raw_floor: the kubernetes Python client doing only the writes (floor.py);
- iam_module / iam_floor: ibmcloud.registry.iam_pull_secret minting one service ID key
  (LOCAL IAM STAND-IN) into the set, and floor.py making the same IAM calls and writes;
- ocp_module / ocp_floor: ibmcloud.registry.ocp_internal_pull_secret copying the
  internal registry's credentials (OpenShift stand-in objects) into the set, and floor.py
  reading the same source and making the same writes;
- ansible_startup: ansible-playbook running one ansible.builtin.ping task, the fixed
  cost of any play.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import harness
from harness import API_KEY, HERE, SECRET_NAME, Bench, Measurement, NamespaceSet

IAM_SECRET = "bench-iam-icr-io"
IAM_SERVICE_ID = "bench-registry-id"
OCP_SECRET = "bench-internal-registry"
OCP_SOURCE_ACCOUNT = "default"  # the service account whose dockercfg secret is copied
OCP_HOST, OCP_PORT = "image-registry.openshift-image-registry.svc", 5000
IAM_PATH, IAM_FLOOR = "iam_pull_secret", "iam_pull_secret raw floor"
OCP_PATH, OCP_FLOOR = "ocp_internal_pull_secret", "ocp_internal_pull_secret raw floor"

RECAP = re.compile(r"^localhost\s*:\s*(?P<counts>.*)$", re.MULTILINE)


def _recap(stdout: str) -> dict:
    """{'ok': 1, 'changed': 0, ...} from ansible-playbook's PLAY RECAP line."""
    match = RECAP.search(stdout)
    if not match:
        return {}
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group("counts"))}


def _play(bench: Bench, key: str, tasks: list, check: bool = False, expect_changed: int | None = None,
          env: dict | None = None) -> dict:
    """Run one play with the default callback, modules under the memory wrapper."""
    runner = bench.runner(key)
    plays = runner.play(tasks)
    plays[0]["module_defaults"]["group/kubernetes.core.k8s"] = {"kubeconfig": bench.cluster.kubeconfig}
    try:
        result = runner.run(tasks, check=check, raw=True, plays=plays, env=dict(bench.ansible_env(), **(env or {})))
    except subprocess.TimeoutExpired as exc:
        # playbook.Runner gives a play at most 900 s (about N = 300 for the kubernetes.core loop).
        return {"rc": -1, "problem": f"ansible-playbook did not finish within {exc.timeout:.0f}s"}
    recap = _recap(result.stdout)
    problem = ""
    if result.rc != 0:
        problem = (result.stdout + result.stderr).strip()[-2000:]
    elif expect_changed is not None and recap.get("changed") != expect_changed:
        problem = f"expected changed={expect_changed}, the recap says {recap}"
    return {"rc": result.rc, "problem": problem, "extra": {"recap": recap}}


def _process(bench: Bench, argv: list, env: dict | None = None) -> dict:
    """Run a plain process under the memory wrapper."""
    proc = subprocess.run(bench.memwrap(argv), capture_output=True, text=True, check=False, timeout=3600,
                          env=dict(os.environ, IBMREG_BENCH_MEMLOG=bench.memlog, **(env or {})))
    return {"rc": proc.returncode, "stdout": proc.stdout,
            "problem": proc.stderr.strip()[-2000:] if proc.returncode else ""}


def ours_task(bench: Bench, ns_set: NamespaceSet) -> dict:
    return {"name": "Give every namespace an ICR pull secret, referenced from default",
            "ibmcloud.registry.icr_pull_secret": {
                "name": SECRET_NAME,
                "iam_api_key": API_KEY,
                "namespace_selector": [ns_set.selector],
                "service_accounts": ["default"],
                "parallelism": bench.parallelism,
            }}


def ours(bench: Bench, ns_set: NamespaceSet, run: str, check: bool = False,
         expect_changed: int | None = None) -> Measurement:
    task = ours_task(bench, ns_set)
    return bench.measure("ibmcloud.registry", run, ns_set,
                         lambda: _play(bench, "ours", [task], check, expect_changed), verify=not check)


def kubernetes_core_loop(bench: Bench, ns_set: NamespaceSet) -> Measurement:
    loop = "{{ found.resources | map(attribute='metadata.name') | list }}"
    tasks = [
        {"name": "Find the namespaces",
         "kubernetes.core.k8s_info": {"kind": "Namespace", "label_selectors": [ns_set.selector]},
         "register": "found"},
        {"name": "Create the pull secret in each namespace",
         "kubernetes.core.k8s": {"state": "present", "definition": {
             "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
             "metadata": {"name": SECRET_NAME, "namespace": "{{ item }}"},
             "data": {".dockerconfigjson": base64.b64encode(bench.dockerconfig_json.encode()).decode()}}},
         "loop": loop, "no_log": True},
        {"name": "Reference it from the default service account",
         "kubernetes.core.k8s": {"state": "present", "definition": {
             "apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "default", "namespace": "{{ item }}"},
             "imagePullSecrets": [{"name": SECRET_NAME}]}},
         "loop": loop},
    ]
    return bench.measure("kubernetes.core loop", "first run", ns_set,
                         lambda: _play(bench, "kubernetes-core", tasks))


def kubectl_loop(bench: Bench, ns_set: NamespaceSet) -> Measurement:
    argv = ["bash", os.path.join(HERE, "kubectl-loop.sh"), bench.cluster.kubeconfig, ns_set.selector,
            SECRET_NAME, bench.dockerconfig_file]
    # A fresh discovery cache, as on a first run.
    env = {"KUBECACHEDIR": tempfile.mkdtemp(prefix="kubectl-cache-", dir=bench.workdir)}

    def action():
        outcome = _process(bench, argv, env)
        outcome["peak_of"] = "largest kubectl process"
        return outcome

    return bench.measure("kubectl loop", "first run", ns_set, action)


def raw_floor(bench: Bench, ns_set: NamespaceSet) -> Measurement:
    return _floor(bench, ns_set, "raw client floor", SECRET_NAME, ["--dockerconfig", bench.dockerconfig_file])


def _floor(bench: Bench, ns_set: NamespaceSet, path: str, name: str, source: list, env: dict | None = None,
           verify=True) -> Measurement:
    argv = [sys.executable, os.path.join(HERE, "floor.py"), "--kubeconfig", bench.cluster.kubeconfig,
            "--selector", ns_set.selector, "--name", name, "--parallelism", str(bench.parallelism)] + source

    def action():
        outcome = _process(bench, argv, env)
        outcome["peak_of"] = "client process"
        if outcome["rc"] == 0:
            work = json.loads(outcome["stdout"].strip().splitlines()[-1])["work_seconds"]
            outcome["extra"] = {"work_seconds": work}
            outcome["note"] = f"requests alone {work:.2f}s; the rest is Python start-up and imports"
        return outcome

    return bench.measure(path, "first run", ns_set, action, verify=verify)


# --- iam_pull_secret against the IAM stand-in --------------------------------------------

def iam_prepare(bench: Bench, size: int) -> NamespaceSet:
    """A fresh cluster and IAM account holding the service ID, then the namespace set (not timed)."""
    bench.reset()
    bench.start_iam().reset()
    bench.iam_service_id(IAM_SERVICE_ID)
    return bench.fresh_set("iam", size)


def _iam_check(bench: Bench):
    """Every secret: the benchmark's icr.io domains, username iamapikey, one key of the service ID."""
    found = set()

    def verify(ns_set):
        snapshot = bench.iam.snapshot()
        service = next(s for s in snapshot["service_ids"] if s["name"] == IAM_SERVICE_ID)
        known = {k["sha256"] for k in snapshot["api_keys"] if k.get("iam_id") == service["iam_id"]}

        def check(config, _namespace):
            entries = config.get("auths", {})
            if set(entries) != set(bench.desired["auths"]):
                return f"servers {sorted(entries)[:3]}..."
            passwords = {e.get("password") for e in entries.values()}
            if {e.get("username") for e in entries.values()} != {harness.IAM_API_KEY_USERNAME} or len(passwords) != 1:
                return "not one iamapikey credential for every server"
            password = passwords.pop()
            found.add(password)
            if hashlib.sha256(password.encode()).hexdigest() not in known:
                return "a key that is not the service ID's"
            return "" if config == harness.build_dockerconfig(entries, harness.IAM_API_KEY_USERNAME, password) \
                else "not the collection's dockerconfig layout"

        problem = bench.verify(ns_set, IAM_SECRET, check)
        if not problem and len(found) != 1:
            problem = f"{len(found)} different keys in the set, expected one"
        return problem

    return verify


def iam_env(bench: Bench) -> dict:
    return {"IC_API_KEY": bench.iam_key}


def iam_module(bench: Bench, ns_set: NamespaceSet, run: str, expect_changed: int | None = None) -> Measurement:
    task = {"name": "Mint a service ID key into a pull secret in every namespace of the set",
            "ibmcloud.registry.iam_pull_secret": {
                "service_id": IAM_SERVICE_ID, "name": IAM_SECRET, "iam_url": bench.iam.url,
                "namespace_selector": [ns_set.selector], "service_accounts": ["default"],
                "parallelism": bench.parallelism}}
    return bench.measure(IAM_PATH, run, ns_set,
                         lambda: _play(bench, "iam", [task], expect_changed=expect_changed, env=iam_env(bench)),
                         verify=_iam_check(bench))


def iam_floor(bench: Bench, ns_set: NamespaceSet) -> Measurement:
    servers = os.path.join(bench.workdir, "icr-servers.json")
    with open(servers, "w", encoding="utf-8") as handle:
        json.dump(sorted(bench.desired["auths"]), handle)
    import iam_server  # pylint: disable=import-outside-toplevel

    env = {"IBMREG_BENCH_IAM_KEY": bench.iam_key, "IBMREG_BENCH_IAM_ACCOUNT": iam_server.DEFAULT_ACCOUNT}
    return _floor(bench, ns_set, IAM_FLOOR, IAM_SECRET, ["--iam-url", bench.iam.url, "--service-id", IAM_SERVICE_ID,
                                                         "--servers-file", servers], env, verify=_iam_check(bench))


# --- ocp_internal_pull_secret on the OpenShift stand-in objects ----------------------------

def ocp_prepare(bench: Bench, size: int) -> NamespaceSet:
    """A fresh cluster with the OpenShift stand-in's API groups, a source namespace whose
    `default` account has its dockercfg secret (as OpenShift's controllers make it; a
    namespace of the benchmark's own, so a shared cluster's `default` is never touched),
    then the namespace set (not timed)."""
    import openshift_flavour  # pylint: disable=import-outside-toplevel

    bench.reset()
    openshift_flavour.install(bench.cluster.fixture_kubeconfig, bench.core.api_client)
    bench.ocp_source = bench.fresh_set("ocp-source", 1).names[0]
    made = openshift_flavour.project(bench.core.api_client, bench.ocp_source, accounts=(OCP_SOURCE_ACCOUNT,))
    bench.ocp_token = made[OCP_SOURCE_ACCOUNT][1]
    return bench.fresh_set("ocp", size)


def _ocp_check(bench: Bench):
    def verify(ns_set):
        expected = harness.build_dockerconfig([f"{OCP_HOST}:{OCP_PORT}"], "serviceaccount", bench.ocp_token)
        return bench.verify(ns_set, OCP_SECRET, lambda config, _ns: "" if config == expected else
                            f"servers {sorted(config.get('auths', {}))}, not the source's token for {OCP_HOST}")
    return verify


def ocp_module(bench: Bench, ns_set: NamespaceSet, run: str, expect_changed: int | None = None) -> Measurement:
    task = {"name": "Copy the internal registry's credentials into every namespace of the set",
            "ibmcloud.registry.ocp_internal_pull_secret": {
                "name": OCP_SECRET, "source_namespace": bench.ocp_source,
                "source_service_account": OCP_SOURCE_ACCOUNT,
                "registry_host": OCP_HOST, "registry_port": OCP_PORT,
                "namespace_selector": [ns_set.selector], "service_accounts": ["default"],
                "parallelism": bench.parallelism}}
    return bench.measure(OCP_PATH, run, ns_set, lambda: _play(bench, "ocp", [task], expect_changed=expect_changed),
                         verify=_ocp_check(bench))


def ocp_floor(bench: Bench, ns_set: NamespaceSet) -> Measurement:
    return _floor(bench, ns_set, OCP_FLOOR, OCP_SECRET, ["--openshift-source", f"{bench.ocp_source}/{OCP_SOURCE_ACCOUNT}",
                                                         "--server", f"{OCP_HOST}:{OCP_PORT}"],
                  verify=_ocp_check(bench))


def ansible_startup(bench: Bench) -> Measurement:
    """A play with one ansible.builtin.ping task: what any play costs before its module works."""
    task = {"name": "ping", "ansible.builtin.ping": {}}
    return bench.measure("ansible-playbook start-up", "one ping task", None,
                         lambda: _play(bench, "startup", [task]), verify=False)
