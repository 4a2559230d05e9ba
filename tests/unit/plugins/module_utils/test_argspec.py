# -*- coding: utf-8 -*-
"""run_module: what every module's main() does with its argument_spec() and its runner."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import ArgumentSpec, run_module


def spec():
    return ArgumentSpec(dict(namespaces=dict(type="list", elements="str"), all_namespaces=dict(type="bool")),
                        mutually_exclusive=[("namespaces", "all_namespaces")])


def module_args(monkeypatch, args):
    """The task's arguments, as Ansible hands them to a module (ansible-core 2.19 also wants a profile)."""
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)


def test_the_runner_gets_the_module_of_that_spec_in_check_mode(monkeypatch):
    # Without supports_check_mode, AnsibleModule would exit as skipped before the runner.
    args = {"namespaces": ["team-a"], "_ansible_check_mode": True}
    module_args(monkeypatch, args)
    modules = []
    run_module(spec, modules.append)
    assert len(modules) == 1 and modules[0].check_mode
    assert modules[0].params == {"namespaces": ["team-a"], "all_namespaces": None}


def test_the_spec_constraints_hold_before_the_runner(monkeypatch, capsys):
    args = {"namespaces": ["team-a"], "all_namespaces": True}
    module_args(monkeypatch, args)
    modules = []
    with pytest.raises(SystemExit) as exit_:
        run_module(spec, modules.append)
    assert exit_.value.code == 1 and modules == []
    assert "mutually exclusive" in json.loads(capsys.readouterr().out)["msg"]
