# -*- coding: utf-8 -*-
"""site.yml's vars file maps onto the roles without drifting from them.

Each playbooks/tasks/part_<part>.yml includes one role and maps the keys of the vars file's
`<part>` onto the role's variables, `<part>.<key>` -> `<role>_<key>`, each with the role's
default. These tests keep three things in step: the keys accepted by check_vars.yml
(playbooks/vars/part_keys.yml), the mapping, and the roles' defaults and argument specs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import glob
import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASKS = os.path.join(REPO, "playbooks", "tasks")
MAPPED = re.compile(r"^\{\{ (?P<part>\w+)\.(?P<key>\w+) \| default\((?P<default>.*)\) \}\}$")
# Role variables set from somewhere other than the part's keys (connection, mode of the play).
DERIVED = {
    # rotate_api_key.yml forces it with registry_rotate_api_key
    "iam_pull_secret": {"iam_pull_secret_rotate"},
    "containerd_hosts": {"containerd_hosts_mode"},
}
# Role variables that site.yml does not offer at cluster level (node-mode settings of the
# containerd role belong in the node hosts' variables).
NOT_OFFERED = {
    "containerd_hosts": {"containerd_hosts_backup", "containerd_hosts_containerd_config",
                         "containerd_hosts_containerd_config_check", "containerd_hosts_restart_containerd",
                         "containerd_hosts_containerd_service", "containerd_hosts_containerd_version",
                         "containerd_hosts_install_python_deps", "containerd_hosts_python_packages",
                         "containerd_hosts_python_packages_before_311", "containerd_hosts_pip_packages",
                         "containerd_hosts_pip_packages_before_311", "containerd_hosts_mode"},
}
# Playbooks whose plays run the parts; each sets the connection in module_defaults.
PLAYBOOKS = ("site.yml", "verify.yml", "rotate_api_key.yml")


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
PART_KEYS = load(os.path.join(REPO, "playbooks", "vars", "part_keys.yml"))["registry_part_keys"]


def module_defaults_keys(part):
    """Keys of a part that site.yml passes as module options through module_defaults."""
    play = load(os.path.join(REPO, "playbooks", "site.yml"))[0]
    return sorted(set(key for options in play["module_defaults"].values() for value in options.values()
                      for key in re.findall(r"\b%s\.(\w+)" % part, value)))


def jinja_literal(text):
    """A Jinja literal (true, none, 'x', [..], {..}) as Python, or raise ValueError."""
    python = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnone\b", "None", text)))
    return ast.literal_eval(python)


def test_every_part_is_imported_by_parts_yml():
    imported = [t["ansible.builtin.import_tasks"] for t in load(os.path.join(TASKS, "parts.yml"))]
    assert sorted(imported) == sorted("part_%s.yml" % p for p in PARTS)
    assert set(PART_KEYS) == set(PARTS)


@pytest.mark.parametrize("part", sorted(PARTS))
def test_part_keys_match_the_mapping(part):
    task = PARTS[part]
    role = task["ansible.builtin.include_role"]["name"].split(".")[-1]
    assert role == part, "a part is named after its role"
    assert task["when"].startswith("%s is defined" % part)
    keys = []
    for variable, value in task["vars"].items():
        if variable in DERIVED.get(part, set()):
            keys.extend(re.findall(r"\b%s\.(\w+)" % part, value))
            continue
        match = MAPPED.match(value)
        assert match, "%s: %r does not map a key of %s" % (variable, value, part)
        assert match["part"] == part
        assert variable == "%s_%s" % (role, match["key"]), "%s.%s must map onto %s_%s" % (
            part, match["key"], role, match["key"])
        keys.append(match["key"])
    # Keys that choose whether or how the part runs (containerd_hosts.mode).
    keys.extend(re.findall(r"\b%s\.(\w+)" % part, task["when"]))
    keys.extend(module_defaults_keys(part))
    assert sorted(set(keys)) == sorted(PART_KEYS[part])


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbooks_set_the_same_module_defaults(playbook):
    """Roles pass no connection option: every playbook that runs them sets module_defaults."""
    site = load(os.path.join(REPO, "playbooks", "site.yml"))[0]["module_defaults"]
    assert set(site) == {"group/ibmcloud.registry.kube", "group/ibmcloud.registry.iam"}
    assert load(os.path.join(REPO, "playbooks", playbook))[0]["module_defaults"] == site


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


@pytest.mark.parametrize("part", sorted(PARTS))
def test_mapping_defaults_are_the_role_defaults(part):
    task = PARTS[part]
    defaults = load(os.path.join(REPO, "roles", part, "defaults", "main.yml")) or {}
    for variable, value in task["vars"].items():
        match = MAPPED.match(value)
        if not match:
            continue
        try:
            default = jinja_literal(match["default"])
        except (ValueError, SyntaxError):
            continue  # computed from other variables (documented in docs/guide.md)
        if variable in defaults:
            assert default == defaults[variable], "%s: site.yml default %r, role default %r" % (
                variable, default, defaults[variable])
        else:
            # No default in the role: the mapping must pass "not set" (empty or null).
            assert default in ("", None, [], {}), variable


@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_role_variable_is_offered(part):
    spec = load(os.path.join(REPO, "roles", part, "meta", "argument_specs.yml"))["argument_specs"]["main"]
    offered = set(PARTS[part]["vars"]) | NOT_OFFERED.get(part, set())
    assert set(spec["options"]) - offered == set()
