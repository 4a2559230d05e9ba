# -*- coding: utf-8 -*-
"""Each shared option group: one spec factory, one doc fragment, the same options in both.

validate-modules compares a module's documentation with its argument spec; this compares
each group on its own, so a factory and its fragment cannot drift apart, and every module
that merges a factory extends its fragment (and no module documents one of its options
itself).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import os

import pytest
import yaml

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import ArgumentSpec
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.client import iam_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import target_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.runners import (
    icr_secret_argument_spec,
    pull_secret_argument_spec,
)
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

PACKAGE = "ansible_collections.ibmcloud.registry.plugins."
MODULES_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "modules")
MODULE_NAMES = sorted(name[:-3] for name in os.listdir(MODULES_DIR) if name.endswith(".py"))


def own_kube_options():
    """kube_argument_spec() without kubernetes.core's connection options, which its
    fragment kubernetes.core.k8s_auth_options documents."""
    spec = kube_argument_spec().argument_spec
    return ArgumentSpec(dict((name, settings) for name, settings in spec.items() if name not in AUTH_ARG_SPEC))


# Fragment name -> its factory.
FACTORIES = {
    "kube": own_kube_options,
    "targeting": target_argument_spec,
    "ibmcloud_auth": iam_argument_spec,
    "pull_secret": pull_secret_argument_spec,
    "icr_secret": icr_secret_argument_spec,
}
# What a documented option and its spec entry must agree on.
KEYS = ("type", "elements", "default", "choices", "aliases")


def fragment_options(name):
    fragment = importlib.import_module(PACKAGE + "doc_fragments." + name).ModuleDocFragment
    return yaml.safe_load(fragment.DOCUMENTATION)["options"]


def module_doc(name):
    module = importlib.import_module(PACKAGE + "modules." + name)
    return yaml.safe_load(module.DOCUMENTATION), module.argument_spec().argument_spec


def agreeing(documented, spec):
    """The KEYS of both sides; a spec entry without a type is a string to AnsibleModule."""
    doc_side = dict((key, documented.get(key)) for key in KEYS)
    spec_side = dict((key, spec.get(key)) for key in KEYS)
    spec_side["type"] = spec_side["type"] or "str"
    return doc_side, spec_side


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_the_fragment_documents_exactly_the_options_of_its_factory(name):
    documented, spec = fragment_options(name), FACTORIES[name]().argument_spec
    assert sorted(documented) == sorted(spec)
    for option in spec:
        doc_side, spec_side = agreeing(documented[option], spec[option])
        assert doc_side == spec_side, option


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_a_module_extends_the_fragment_of_every_group_it_merges(module_name):
    doc, spec = module_doc(module_name)
    fragments = [f.rsplit(".", 1)[-1] for f in doc.get("extends_documentation_fragment") or []
                 if f.startswith("ibmcloud.registry.")]
    for name, factory in sorted(FACTORIES.items()):
        group = set(factory().argument_spec)
        merged = group <= set(spec)
        assert merged == (name in fragments), name
        if merged:
            assert not group & set(doc.get("options") or {}), "%s documents options of %s" % (module_name, name)


def test_the_check_catches_a_drift():
    doc_side, spec_side = agreeing(fragment_options("pull_secret")["force"], dict(type="bool", default=True))
    assert doc_side != spec_side
