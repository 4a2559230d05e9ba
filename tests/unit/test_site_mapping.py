# -*- coding: utf-8 -*-
"""site.yml's vars file maps onto the roles without a list to keep in step.

Each playbooks/tasks/part_<part>.yml runs one role. The keys a part takes in the vars file
are derived from that role's meta/argument_specs.yml (``<part>_<key>`` -> ``<part>.<key>``)
by check_vars.yml, and map_part_vars.yml turns them into the role's variables. Adding a
role option is one edit (the role); these tests prove it on a temporary copy of the
playbooks and roles, with a real ansible-playbook (no cluster: the tasks under test read
only the vars file and the argument specs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = os.path.join(REPO, "playbooks")
TASKS = os.path.join(PLAYBOOKS, "tasks")
# Role variables a part file sets itself (include_role vars win over the mapped facts):
# computed from the inventory, forced by rotate_api_key.yml, or decided by the play.
FIXED = {
    "iam_pull_secret": {"iam_pull_secret_cluster_name", "iam_pull_secret_cluster_id", "iam_pull_secret_rotate"},
    "containerd_hosts": {"containerd_hosts_mode"},
}
# Playbooks whose plays run the parts; each sets the connection in module_defaults.
RUNNING_PLAYBOOKS = ("site.yml", "verify.yml", "rotate_api_key.yml")


def load(path):
    with open(path, encoding="utf-8") as src:
        return yaml.safe_load(src)


def parts():
    found = {}
    for path in sorted(glob.glob(os.path.join(TASKS, "part_*.yml"))):
        part = os.path.basename(path)[len("part_"):-len(".yml")]
        (task,) = load(path)
        found[part] = task
    return found


PARTS = parts()


def role_options(part, roles=os.path.join(REPO, "roles")):
    spec = load(os.path.join(roles, part, "meta", "argument_specs.yml"))["argument_specs"]["main"]
    return set(spec["options"])


def test_every_part_is_imported_by_parts_yml():
    imported = [t["ansible.builtin.import_tasks"] for t in load(os.path.join(TASKS, "parts.yml"))]
    assert sorted(imported) == sorted("part_%s.yml" % p for p in PARTS)
    assert not os.path.exists(os.path.join(PLAYBOOKS, "vars", "part_keys.yml")), "the keys come from the roles"


@pytest.mark.parametrize("part", sorted(PARTS))
def test_part_maps_its_keys_then_runs_its_role(part):
    task = PARTS[part]
    assert task["when"].startswith("%s is defined" % part)
    mapping, run = task["block"]
    assert mapping["ansible.builtin.import_tasks"] == "map_part_vars.yml"
    assert mapping["vars"] == {"registry_part": part}
    assert run["ansible.builtin.include_role"]["name"] == "ibmcloud.registry." + part, "a part is named after its role"
    fixed = set(run.get("vars") or {})
    assert fixed == FIXED.get(part, set()), "only computed or forced variables are set by hand"
    assert fixed <= role_options(part)


def test_connection_keys_are_the_module_defaults_keys():
    """iam_pull_secret's IAM keys are read by module_defaults, not by the role: check_vars.yml lists them."""
    (check,) = load(os.path.join(TASKS, "check_vars.yml"))
    listed = check["vars"]["registry_part_connection_keys"]
    play = load(os.path.join(PLAYBOOKS, "site.yml"))[0]
    used = {}
    for options in play["module_defaults"].values():
        for value in options.values():
            for part, key in re.findall(r"\b(%s)\.(\w+)" % "|".join(PARTS), value):
                used.setdefault(part, set()).add(key)
    assert {part: set(keys) for part, keys in listed.items()} == used
    for part, keys in used.items():
        assert not {"%s_%s" % (part, key) for key in keys} & role_options(part)


@pytest.mark.parametrize("playbook", RUNNING_PLAYBOOKS)
def test_playbooks_set_the_same_module_defaults(playbook):
    """Roles pass no connection option: every playbook that runs them sets module_defaults."""
    site = load(os.path.join(PLAYBOOKS, "site.yml"))[0]["module_defaults"]
    assert set(site) == {"group/ibmcloud.registry.kube", "group/ibmcloud.registry.iam"}
    assert load(os.path.join(PLAYBOOKS, playbook))[0]["module_defaults"] == site


def test_roles_pass_no_connection_option():
    """A task argument (even one templated to omit) replaces the play's module_defaults value."""
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

    connection = set(AUTH_ARG_SPEC) | {"ibmcloud_api_key", "account_id", "iam_url", "iam_endpoint"}
    for option in AUTH_ARG_SPEC.values():
        connection.update(option.get("aliases") or [])
    offending = []
    for path in sorted(glob.glob(os.path.join(REPO, "roles", "*", "tasks", "*.yml"))):
        for task in _tasks(load(path) or []):
            for action, args in task.items():
                if (action.startswith("ibmcloud.registry.") or action.startswith("kubernetes.core.")) \
                        and isinstance(args, dict):
                    offending += ["%s: %s %s" % (os.path.relpath(path, REPO), action, name)
                                  for name in sorted(connection & set(args))]
            if "environment" in task:
                offending.append("%s: %s sets environment" % (os.path.relpath(path, REPO), task.get("name")))
    assert offending == []


def _tasks(tasks):
    for task in tasks:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key) or [])


# --- the derivation, run for real on a temporary copy ---------------------------------

PROBE_PLAY = """
- name: The vars file checks and the mapping of site.yml, without a cluster
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check the vars file
      ansible.builtin.import_tasks: tasks/check_vars.yml
    - name: Map the pull_secrets keys
      ansible.builtin.import_tasks: tasks/map_part_vars.yml
      vars:
        registry_part: pull_secrets
    - name: Show what the role would get
      ansible.builtin.debug:
        msg: "MAPPED {{ {'new': pull_secrets_probe_new_option | default('UNSET'),
                         'email': pull_secrets_email | default('UNSET')} | to_json }} END"
"""


@pytest.fixture
def copy(tmp_path):
    """playbooks/ and roles/ side by side, as in the repository and the installed collection."""
    shutil.copytree(PLAYBOOKS, str(tmp_path / "playbooks"))
    shutil.copytree(os.path.join(REPO, "roles"), str(tmp_path / "roles"))
    (tmp_path / "playbooks" / "probe.yml").write_text(PROBE_PLAY, encoding="utf-8")
    return tmp_path


def run_probe(copy, site_vars):
    vars_file = copy / "vars.yml"
    vars_file.write_text(yaml.safe_dump(site_vars), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_HOME=str(copy / ".ansible"))
    # The script, not `python -m ansible playbook`: under ansible-test units the ansible
    # package on sys.path has no entry-point metadata.
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(playbook):
        playbook = shutil.which("ansible-playbook")
    return subprocess.run(
        [playbook, "-i", "localhost,", str(copy / "playbooks" / "probe.yml"),
         "-e", "@%s" % vars_file, "-e", "ansible_python_interpreter=%s" % sys.executable],
        capture_output=True, text=True, env=env, timeout=300, check=False)


def mapped(result):
    match = re.search(r"MAPPED (.*) END", result.stdout)
    assert match, result.stdout + result.stderr
    return yaml.safe_load(match.group(1).replace('\\"', '"'))


def add_option(copy, part, option, spec):
    path = copy / "roles" / part / "meta" / "argument_specs.yml"
    specs = load(str(path))
    specs["argument_specs"]["main"]["options"][option] = spec
    path.write_text(yaml.safe_dump(specs), encoding="utf-8")


def test_unknown_keys_name_part_and_key_for_every_part_at_once(copy):
    result = run_probe(copy, {"pull_secrets": {"probe_new_option": "x", "namespaces": ["a"]},
                              "entitled_registry": {"secret_nmae": "typo"},
                              "iam_pull_secret": {"iam_url": "http://127.0.0.1:1", "mode": "namespace"}})
    assert result.returncode != 0
    assert "Unknown key(s) under pull_secrets in the vars file: probe_new_option." in result.stdout
    assert "Unknown key(s) under entitled_registry in the vars file: secret_nmae." in result.stdout
    assert "under iam_pull_secret" not in result.stdout, "connection keys and role options are known"
    assert "MAPPED" not in result.stdout, "nothing runs after a bad vars file"


def test_a_new_role_option_is_accepted_and_mapped_without_other_edits(copy):
    site_vars = {"pull_secrets": {"probe_new_option": "probe-value", "email": "me@example.com"}}
    assert run_probe(copy, site_vars).returncode != 0

    add_option(copy, "pull_secrets", "pull_secrets_probe_new_option",
               {"description": "An option added for this test.", "type": "str"})
    result = run_probe(copy, site_vars)
    assert result.returncode == 0, result.stdout + result.stderr
    assert mapped(result) == {"new": "probe-value", "email": "me@example.com"}
    assert result.stdout.count("probe-value") == 1, "the mapping task (no_log) shows no value"


def test_keys_left_out_keep_the_role_defaults(copy):
    result = run_probe(copy, {"pull_secrets": {}})
    assert result.returncode == 0, result.stdout + result.stderr
    # Not mapped: the role's defaults/main.yml applies inside the role.
    assert mapped(result) == {"new": "UNSET", "email": "UNSET"}


def test_not_a_mapping_is_refused(copy):
    result = run_probe(copy, {"pull_secrets": ["namespaces"]})
    assert result.returncode != 0
    assert "Unknown key(s) under pull_secrets in the vars file: (not a mapping)." in result.stdout
