# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ibmcloud.registry.plugins.filter.registry_changes import registry_changes


def pull_secret_result(secret_action="created", sa_action="updated", added=("all-icr-io",)):
    return {
        "changed": True, "name": "all-icr-io",
        "results": [{"namespace": "a", "name": "all-icr-io", "action": secret_action},
                    {"namespace": "b", "name": "all-icr-io", "action": "unchanged"}],
        "service_accounts": [{"namespace": "a", "name": "default", "action": sa_action,
                              "added": list(added), "removed": []},
                             {"namespace": "b", "name": "default", "action": "unchanged", "added": [], "removed": []}],
    }


def test_pull_secret_module_result_lists_changes_per_namespace():
    records = registry_changes(pull_secret_result(), part="pull_secrets")
    assert [(r["namespace"], r["kind"], r["name"], r["action"]) for r in records] == [
        ("a", "Secret", "all-icr-io", "created"), ("a", "ServiceAccount", "default", "updated")]
    assert records[0]["problem"] == "Secret all-icr-io is missing"
    assert records[1]["problem"] == "ServiceAccount default does not reference all-icr-io"
    assert records[1]["summary"] == "updated ServiceAccount a/default +all-icr-io"
    assert all(r["part"] == "pull_secrets" for r in records)


def test_loop_results_are_flattened_and_skipped_items_ignored():
    registered = {"changed": True, "results": [
        dict(pull_secret_result(), ansible_loop_var="pull_secrets_index", pull_secrets_index=0),
        {"skipped": True, "ansible_loop_var": "pull_secrets_index", "pull_secrets_index": 1},
        dict(pull_secret_result("updated", "unchanged", ()), ansible_loop_var="pull_secrets_index")]}
    records = registry_changes(registered)
    assert [r["summary"] for r in records] == [
        "created Secret a/all-icr-io", "updated ServiceAccount a/default +all-icr-io", "updated Secret a/all-icr-io"]
    assert records[2]["problem"] == "Secret all-icr-io differs from the declaration"


def test_nothing_changed_or_skipped_or_undefined_is_empty():
    assert registry_changes(pull_secret_result("unchanged", "unchanged", ())) == []
    assert registry_changes({"skipped": True, "changed": False}) == []
    assert registry_changes(None) == []


def test_removed_references_and_deleted_secrets():
    result = {"results": [{"namespace": "a", "name": "old", "action": "deleted"}],
              "service_accounts": [{"namespace": "a", "name": "default", "action": "updated",
                                    "added": [], "removed": ["old"]}]}
    problems = [r["problem"] for r in registry_changes(result)]
    assert problems == ["Secret old exists but is declared absent", "ServiceAccount default still references old"]


def test_sa_pull_secret_results_are_service_accounts():
    result = {"results": [{"namespace": "a", "name": "builder", "action": "updated", "added": ["w"], "removed": []}]}
    (record,) = registry_changes(result, kind="ServiceAccount")
    assert record["kind"] == "ServiceAccount" and record["problem"] == "ServiceAccount builder does not reference w"


def test_route_missing_or_not_admitted():
    created = {"changed": True, "action": "created", "name": "image-registry",
               "namespace": "openshift-image-registry", "admitted": False}
    assert [r["problem"] for r in registry_changes(created, kind="Route")] == ["Route image-registry is missing"]
    pending = {"changed": False, "action": "unchanged", "name": "image-registry",
               "namespace": "openshift-image-registry", "admitted": False}
    (record,) = registry_changes(pending, kind="Route")
    assert record["action"] == "not-admitted" and "not admitted" in record["problem"]
    admitted = dict(pending, admitted=True)
    assert registry_changes(admitted, kind="Route") == []


def test_outcome_key_and_registry_config():
    assert registry_changes({"changed": True, "outcome": "updated", "name": "image-registry"}, kind="Route")
    (record,) = registry_changes({"changed": True, "action": "updated"}, kind="Config")
    assert record["namespace"] == "" and record["summary"] == "updated Config cluster"


def test_kubernetes_core_k8s_results():
    result = {"changed": True, "method": "create",
              "result": {"kind": "DaemonSet", "metadata": {"name": "ds", "namespace": "kube-system"}}}
    (record,) = registry_changes(result)
    assert record["summary"] == "created DaemonSet kube-system/ds"
    assert registry_changes(dict(result, changed=False)) == []


def test_failures_are_reported():
    result = {"results": [{"namespace": "a", "name": "s", "action": "failed", "error": "forbidden"}]}
    (record,) = registry_changes(result)
    assert record["action"] == "failed" and "forbidden" in record["problem"]
    (failed,) = registry_changes({"failed": True, "msg": "boom"}, kind="Route")
    assert failed["problem"] == "Route: boom"


def test_bad_input():
    with pytest.raises(AnsibleFilterError):
        registry_changes(["not", "a", "result"])
