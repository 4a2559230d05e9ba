# -*- coding: utf-8 -*-
"""The strategy ibmcloud.registry.exit_codes with a real ansible-playbook (no cluster).

verify.yml's last play uses it: a failed task there is an error (exit code 1); failures of
earlier plays (drift) keep exit code 2 even when later plays pass; nothing failed is 0.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import sys

import pytest
import yaml

import ansible_collections.ibmcloud.registry as collection

# ansible_collections/ibmcloud/registry -> the directory holding ansible_collections.
COLLECTIONS_PATH = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(list(collection.__path__)[0]))))


def play(hosts, fail_on, strategy=None, name="play"):
    entry = {"name": name, "hosts": hosts, "gather_facts": False, "connection": "local",
             "tasks": [{"name": "maybe fail", "ansible.builtin.fail": {"msg": "failed on purpose"},
                        "when": "inventory_hostname in %r" % (fail_on,)}]}
    if strategy:
        entry["strategy"] = strategy
    return entry


def run(tmp_path, plays):
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(plays), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_HOME=str(tmp_path / ".ansible"),
               ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_RETRY_FILES_ENABLED="0")
    # The script, not `python -m ansible playbook`: under ansible-test units the ansible
    # package on sys.path has no entry-point metadata.
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(playbook):
        playbook = shutil.which("ansible-playbook")
    return subprocess.run([playbook, "-i", "a,b,localhost,", str(path), "-e", "ansible_python_interpreter=%s" % sys.executable],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.parametrize("earlier_failures,last_failures,code", [
    ([], [], 0),
    (["a"], [], 2),          # drift in an earlier play, the last play passes
    ([], ["localhost"], 1),  # an error recorded, the last play fails
    (["a"], ["localhost"], 1),  # errors win over drift
])
def test_exit_codes(tmp_path, earlier_failures, last_failures, code):
    result = run(tmp_path, [play("a,b", earlier_failures, name="audit"),
                            play("localhost", last_failures, strategy="ibmcloud.registry.exit_codes", name="last")])
    assert result.returncode == code, result.stdout + result.stderr
    assert "PLAY [last]" in result.stdout


def test_without_the_strategy_a_failure_in_the_last_play_exits_2(tmp_path):
    """What the strategy changes: linear gives 2 for any failed task."""
    result = run(tmp_path, [play("a,b", [], name="audit"), play("localhost", ["localhost"], name="last")])
    assert result.returncode == 2, result.stdout + result.stderr
