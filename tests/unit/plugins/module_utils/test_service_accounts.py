# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.service_accounts import (
    linked_list,
    plan_links,
)


def refs(*names):
    return [{"name": n} for n in names]


def test_add_appends_once_and_keeps_foreign_entries_in_order():
    current = refs("default-dockercfg-x", "all-icr-io")
    assert linked_list(current, ["mine"], "present") == refs("default-dockercfg-x", "all-icr-io", "mine")
    again = linked_list(linked_list(current, ["mine"], "present"), ["mine"], "present")
    assert again == refs("default-dockercfg-x", "all-icr-io", "mine")


def test_duplicates_of_managed_names_collapse_to_first_place():
    current = refs("mine", "other", "mine", "other")
    assert linked_list(current, ["mine"], "present") == refs("mine", "other", "other")


def test_remove_only_named_entries():
    assert linked_list(refs("a", "mine", "b", "mine"), ["mine"], "absent") == refs("a", "b")
    assert linked_list(None, ["mine"], "absent") == []


def test_foreign_fields_on_entries_are_kept():
    current = [{"name": "tok", "namespace": "ns", "uid": "1"}]
    assert linked_list(current, ["mine"], "present")[0] == current[0]


def test_plan_links_reports_only_changing_fields():
    account = {"imagePullSecrets": refs("mine"), "secrets": refs("tok")}
    assert plan_links(account, ["mine"], ["pull"], "present") == {}
    assert plan_links(account, ["mine"], ["pull", "mount"], "present") == {"secrets": refs("tok", "mine")}
    assert plan_links(account, ["mine"], ["pull", "mount"], "absent") == {"imagePullSecrets": []}


def test_secret_then_links_only_where_the_secret_is_in_place(monkeypatch):
    from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import runners as sa

    calls = []
    secret_items = [{"namespace": "a", "action": "created"}, {"namespace": "b", "action": "failed"},
                    {"namespace": "c", "action": "unchanged"}]
    monkeypatch.setattr(sa, "ensure_pull_secrets", lambda *args, **kwargs: (secret_items, {"before": {}, "after": {}}))

    def links(client, namespaces, service_accounts, names, link_for, state, check_mode, timeout, parallelism,
              want_diff):
        calls.append((namespaces, service_accounts, names, link_for, state, want_diff))
        return ["linked"], {"before": {}, "after": {}}

    monkeypatch.setattr(sa, "ensure_links", links)
    result = sa.ensure_secret_and_links(None, ["a", "b", "c"], "s", {}, "present", False, ["default"], 30)
    assert result[0] == secret_items and result[2] == ["linked"]
    assert calls == [(["a", "c"], ["default"], ["s"], ("pull",), "present", True)]
    assert sa.ensure_secret_and_links(None, ["a"], "s", {}, "present", False, [], 30)[2:] == ([], None)
    assert len(calls) == 1
