"""Run real `ansible-playbook` against the local cluster from pytest.

Functional tests describe tasks as Python data; `Runner.run()` writes a playbook,
runs `ansible-playbook` in a subprocess with this repository installed as the
`ibmcloud.registry` collection (a symlink in a temporary collections path), and
returns the per-task results parsed from the ansible.posix.json callback. With
`raw=True` the default callback is used instead, for tests that read the
human output (for example, canary scans at -vvvv).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collections_path() -> str:
    """A directory holding ansible_collections/ibmcloud/registry -> this repository."""
    base = os.path.join(REPO, ".tmp", "functional-collections")
    link = os.path.join(base, "ansible_collections", "ibmcloud", "registry")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    return base


@dataclass
class PlayResult:
    rc: int
    stdout: str
    stderr: str
    tasks: dict = field(default_factory=dict)  # task name -> localhost result
    stats: dict = field(default_factory=dict)

    def __getitem__(self, task_name: str) -> dict:
        return self.tasks[task_name]


class Runner:
    """ansible-playbook with module_defaults pointing every kube task at one cluster."""

    def __init__(self, kubeconfig: str, workdir: str | None = None):
        self.kubeconfig = kubeconfig
        self.workdir = workdir or tempfile.mkdtemp(prefix="ibmreg-play-")

    def play(self, tasks: list, hosts: str = "localhost", play_vars: dict | None = None) -> list:
        return [{
            "name": "functional test",
            "hosts": hosts,
            "connection": "local",
            "gather_facts": False,
            "vars": play_vars or {},
            "module_defaults": {"group/ibmcloud.registry.kube": {"kubeconfig": self.kubeconfig}},
            "tasks": tasks,
        }]

    def run(self, tasks: list, check: bool = False, diff: bool = False, verbosity: int = 0,
            raw: bool = False, extra_vars: dict | None = None, play_vars: dict | None = None,
            plays: list | None = None, inventory: str | None = None, env: dict | None = None,
            args: tuple = ()) -> PlayResult:
        path = os.path.join(self.workdir, "play.yml")
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(plays or self.play(tasks, play_vars=play_vars), handle, sort_keys=False)
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), path]
        command += ["-i", inventory or "localhost,"]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        if verbosity:
            command.append("-" + "v" * verbosity)
        if extra_vars:
            command += ["-e", json.dumps(extra_vars)]
        command += list(args)
        run_env = dict(os.environ,
                       ANSIBLE_COLLECTIONS_PATH=collections_path(),
                       ANSIBLE_HOST_KEY_CHECKING="False",
                       ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                       ANSIBLE_LOCAL_TEMP=os.path.join(self.workdir, "tmp"),
                       ANSIBLE_NOCOLOR="1")
        if not raw:
            run_env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
        run_env.update(env or {})
        proc = subprocess.run(command, capture_output=True, text=True, env=run_env, cwd=self.workdir,
                              timeout=900, check=False)
        result = PlayResult(proc.returncode, proc.stdout, proc.stderr)
        if not raw:
            _parse_json_callback(result)
        return result


def _parse_json_callback(result: PlayResult) -> None:
    try:
        document = json.loads(result.stdout)
    except ValueError:
        return
    for play in document.get("plays", []):
        for task in play.get("tasks", []):
            hosts = task.get("hosts", {})
            host_result = hosts.get("localhost") or next(iter(hosts.values()), {})
            result.tasks[task["task"]["name"]] = host_result
    result.stats = document.get("stats", {})
