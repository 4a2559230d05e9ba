"""One function per benchmark path. Each runs one client to completion inside
Bench.measure() and returns its Measurement; the namespace set is made by the caller.

- ours: one ibmcloud.registry.icr_pull_secret task for the whole set;
- kubernetes_core_loop: kubernetes.core.k8s_info, then kubernetes.core.k8s looped over
  the namespaces for the secret and again for the service account;
- kubectl_loop: the guide's kubectl commands in a shell loop (kubectl-loop.sh);
- raw_floor: the kubernetes Python client doing only the writes (floor.py);
- ansible_startup: ansible-playbook running one ansible.builtin.ping task, the fixed
  cost of any play.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile

from harness import API_KEY, HERE, SECRET_NAME, Bench, Measurement, NamespaceSet

RECAP = re.compile(r"^localhost\s*:\s*(?P<counts>.*)$", re.MULTILINE)


def _recap(stdout: str) -> dict:
    """{'ok': 1, 'changed': 0, ...} from ansible-playbook's PLAY RECAP line."""
    match = RECAP.search(stdout)
    if not match:
        return {}
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group("counts"))}


def _play(bench: Bench, key: str, tasks: list, check: bool = False, expect_changed: int | None = None) -> dict:
    """Run one play with the default callback, modules under the memory wrapper."""
    runner = bench.runner(key)
    plays = runner.play(tasks)
    plays[0]["module_defaults"]["group/kubernetes.core.k8s"] = {"kubeconfig": bench.cluster.kubeconfig}
    try:
        result = runner.run(tasks, check=check, raw=True, plays=plays, env=bench.ansible_env())
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
    argv = [sys.executable, os.path.join(HERE, "floor.py"), "--kubeconfig", bench.cluster.kubeconfig,
            "--selector", ns_set.selector, "--name", SECRET_NAME,
            "--dockerconfig", bench.dockerconfig_file, "--parallelism", str(bench.parallelism)]

    def action():
        outcome = _process(bench, argv)
        outcome["peak_of"] = "client process"
        if outcome["rc"] == 0:
            work = json.loads(outcome["stdout"].strip().splitlines()[-1])["work_seconds"]
            outcome["extra"] = {"work_seconds": work}
            outcome["note"] = f"requests alone {work:.2f}s; the rest is Python start-up and imports"
        return outcome

    return bench.measure("raw client floor", "first run", ns_set, action)


def ansible_startup(bench: Bench) -> Measurement:
    """A play with one ansible.builtin.ping task: what any play costs before its module works."""
    task = {"name": "ping", "ansible.builtin.ping": {}}
    return bench.measure("ansible-playbook start-up", "one ping task", None,
                         lambda: _play(bench, "startup", [task]), verify=False)
