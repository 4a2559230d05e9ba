# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import targeting as t
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import map_bounded


def params(**kw):
    base = dict(namespaces=None, namespace_selector=None, all_namespaces=False,
                exclude_namespaces=[], include_system_namespaces=False)
    base.update(kw)
    return base


@pytest.mark.parametrize("name", ["default", "a", "team-1", "x" * 63])
def test_valid_namespace_names(name):
    assert t.namespace_name_error(name) is None


@pytest.mark.parametrize("name", ["", "Dev", "-a", "a-", "a_b", "a.b", "x" * 64, None])
def test_invalid_namespace_names(name):
    assert t.namespace_name_error(name)


def test_targets_are_required_and_validated():
    assert "one of namespaces" in t.validate_target_params(params())[0]
    assert "empty list" in t.validate_target_params(params(namespaces=[]))[0]
    errors = t.validate_target_params(params(namespaces=["ok", "Not_OK"]))
    assert len(errors) == 1 and "Not_OK" in errors[0] and errors[0].startswith("namespaces:")
    assert t.validate_target_params(params(namespace_selector=["team=a,env in (dev,test)", "!legacy"])) == []
    assert t.validate_target_params(params(namespace_selector=["team=="])) == []
    assert "namespace_selector" in t.validate_target_params(params(namespace_selector=["a b c"]))[0]


def test_system_namespaces_are_skipped_unless_asked():
    names = ["default", "kube-system", "openshift-monitoring", "openshift", "ibm-system", "calico-system",
             "tigera-operator", "dev"]
    assert t.filter_namespaces(names, params(all_namespaces=True)) == ["default", "dev"]
    assert len(t.filter_namespaces(names, params(all_namespaces=True, include_system_namespaces=True))) == 8


def test_excludes_are_globs_and_skip_is_applied():
    names = ["default", "sandbox-1", "sandbox-2", "dev", "prod"]
    chosen = t.filter_namespaces(names, params(all_namespaces=True, exclude_namespaces=["sandbox-*"]),
                                 skip=["default"])
    assert chosen == ["dev", "prod"]


def test_explicit_namespaces_are_used_as_given_without_duplicates():
    assert t.filter_namespaces(["x"], params(namespaces=["kube-system", "b", "b"])) == ["kube-system", "b"]


def test_map_bounded_keeps_order():
    assert map_bounded(lambda x: x * 2, range(50), 8) == [x * 2 for x in range(50)]
    assert map_bounded(lambda x: x, [], 8) == []


@pytest.mark.parametrize("name,ok", [("all-icr-io", True), ("a.b", True), ("UPPER", False), ("", False),
                                     ("x" * 254, False)])
def test_object_names(name, ok):
    assert (t.object_name_error(name) is None) == ok


class NamespaceLister:
    """A client whose only request is the LIST of namespaces; records warnings."""

    def __init__(self, names, error=None):
        self.core = self
        self.names, self.error = names, error
        self.lists, self.warnings = 0, []

    def list_namespace(self):
        raise AssertionError("called through list_json only")

    def list_json(self, what, func, keep=None, **kwargs):
        self.lists += 1
        if self.error is not None:
            raise self.error
        return [keep({"metadata": {"name": name}}) for name in self.names]

    def warn(self, message):
        self.warnings.append(message)


def test_named_namespaces_that_do_not_exist_fail_before_any_write():
    client = NamespaceLister(["default", "a"])
    with pytest.raises(t.KubeError) as info:
        t.resolve_namespaces(client, params(namespaces=["a", "gone-1", "gone-2"], state="present"))
    assert str(info.value) == ("namespaces: gone-1, gone-2 do not exist; create them first, or set "
                               "missing_namespaces=skip to leave them out with a warning")
    assert client.lists == 1


def test_require_namespaces_names_the_missing_ones_and_trusts_names_under_namespaced_rbac():
    client = NamespaceLister(["default", "a"])
    t.require_namespaces(client, ["a", "default"])
    with pytest.raises(t.KubeError) as info:
        t.require_namespaces(client, ["a", "gone"])
    assert (str(info.value), info.value.status) == ("namespaces: gone does not exist; create it first", 404)
    assert client.lists == 2
    # A Role in each namespace, no LIST of namespaces: the names are used as given.
    t.require_namespaces(NamespaceLister([], error=t.KubeError("forbidden", status=403)), ["a"])
    with pytest.raises(t.KubeError):
        t.require_namespaces(NamespaceLister([], error=t.KubeError("boom", status=500)), ["a"])


def test_missing_namespaces_skip_warns_per_namespace():
    client = NamespaceLister(["default", "a"])
    chosen = t.resolve_namespaces(client, params(namespaces=["gone", "a"], state="present",
                                                 missing_namespaces="skip"))
    assert chosen == ["a"]
    assert client.warnings == ["namespaces: gone does not exist; skipped (missing_namespaces=skip)"]


def test_named_namespaces_that_exist_are_used_in_their_order():
    client = NamespaceLister(["b", "a"])
    assert t.resolve_namespaces(client, params(namespaces=["b", "a", "b"], state="present")) == ["b", "a"]
    assert client.warnings == []


def test_namespaced_rbac_uses_named_namespaces_as_given():
    client = NamespaceLister([], error=t.KubeError("Forbidden (403) to list Namespace", status=403))
    assert t.resolve_namespaces(client, params(namespaces=["a"], state="present")) == ["a"]
    other = NamespaceLister([], error=t.KubeError("Failed (500)", status=500))
    with pytest.raises(t.KubeError):
        t.resolve_namespaces(other, params(namespaces=["a"], state="present"))


def test_state_absent_does_not_list_named_namespaces():
    client = NamespaceLister([])
    assert t.resolve_namespaces(client, params(namespaces=["gone"], state="absent")) == ["gone"]
    assert client.lists == 0


def test_missing_namespaces_option_is_part_of_targeting():
    spec = t.target_argument_spec().argument_spec["missing_namespaces"]
    assert spec["default"] == "fail" and spec["choices"] == ["fail", "skip"]
