# -*- coding: utf-8 -*-
"""No module option may take a name of kubernetes.core's connection options.

module_defaults for group/ibmcloud.registry.kube and K8S_AUTH_* set kubernetes.core's
connection options (host, api_key, ...) for every module of the group; a module option of
the same name (or alias) would swallow them and send requests, token included, elsewhere.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import os

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import ArgumentSpec
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

MODULES_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "modules")
MODULE_NAMES = sorted(name[:-3] for name in os.listdir(MODULES_DIR)
                      if name.endswith(".py") and not name.startswith("_"))
CONNECTION_NAMES = set(AUTH_ARG_SPEC)
for _option in AUTH_ARG_SPEC.values():
    CONNECTION_NAMES.update(_option.get("aliases") or [])


def argument_spec(module_name):
    """The argument spec the module gives AnsibleModule (its argument_spec(), beside DOCUMENTATION)."""
    module = importlib.import_module("ansible_collections.ibmcloud.registry.plugins.modules." + module_name)
    return module.argument_spec().argument_spec


def test_every_module_is_checked():
    assert "ocp_registry_route" in MODULE_NAMES and len(MODULE_NAMES) >= 11


def connection_collisions(spec):
    """Connection options the spec redefines, and own options or aliases named like one."""
    redefined = ["%s (redefined)" % name for name in spec
                 if name in AUTH_ARG_SPEC and spec[name] != AUTH_ARG_SPEC[name]]
    named_alike = ["%s (option %s)" % (name, option)
                   for option, settings in spec.items() if option not in AUTH_ARG_SPEC
                   for name in [option] + list(settings.get("aliases") or [])
                   if name in CONNECTION_NAMES]
    return sorted(redefined + named_alike)


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_own_options_do_not_take_connection_names(module_name):
    assert connection_collisions(argument_spec(module_name)) == []


def test_the_check_catches_a_collision():
    """The check fails on the bug it guards against: host as the route's host name."""
    spec = argument_spec("ocp_registry_route")
    assert connection_collisions(dict(spec, host=dict(type="str", aliases=["hostname"]))) == \
        ["host (redefined)"]
    assert connection_collisions(dict(spec, route_host=dict(type="str", aliases=["api_key"]))) == \
        ["api_key (option route_host)"]


def test_an_option_cannot_be_defined_twice():
    spec = ArgumentSpec(dict(name=dict(type="str")), mutually_exclusive=[("a", "b")])
    with pytest.raises(ValueError, match="options defined twice: name"):
        spec.merge(ArgumentSpec(dict(name=dict(type="str", default="x"))))
    spec.merge(ArgumentSpec(dict(other=dict(type="int")), mutually_exclusive=[("c", "d")]))
    assert sorted(spec.argument_spec) == ["name", "other"]
    assert spec.mutually_exclusive == [("a", "b"), ("c", "d")]


@pytest.mark.parametrize("module_name", ["icr_pull_secret", "sa_pull_secret", "iam_pull_secret",
                                         "ocp_internal_pull_secret"])
def test_targeting_modules_keep_the_targeting_constraint(module_name):
    module = importlib.import_module("ansible_collections.ibmcloud.registry.plugins.modules." + module_name)
    assert ("namespaces", "namespace_selector", "all_namespaces") in module.argument_spec().mutually_exclusive
