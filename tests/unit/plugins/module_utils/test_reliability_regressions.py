# -*- coding: utf-8 -*-
"""The module_utils fixes that the reliability suite (docs/reliability.md) found, pinned
down without a cluster; the functional cases that found them are named in each test."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import dockerconfig as dc
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift import plan as ocp
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import plan as ps
from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import service_accounts as sa
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import KubeError

DESIRED = dc.build_dockerconfig(["us.icr.io"], "iamapikey", "key-1")


def b64(document):
    return base64.b64encode(json.dumps(document).encode()).decode()


class FakeClient:
    """Calls go straight to the methods below, which record themselves."""

    def __init__(self, **behaviour):
        self.core = self
        self.calls = []
        self.behaviour = behaviour

    def call(self, what, func, *args, **kwargs):
        return func(*args, **kwargs)

    call_json = call

    def list_json(self, what, func, keep=None, **kwargs):
        items = self.call_json(what, func, **kwargs).get("items") or []
        return [keep(item) if keep else item for item in items]

    def __getattr__(self, method):
        outcome = self.behaviour[method]

        def run(*args, **kwargs):
            self.calls.append(method)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        return run


def test_failure_message_lists_what_was_and_was_not_done():
    items = [results.item("a", "s", "created"), results.item("b", "s", "failed", "boom"),
             results.item("c", "s", "unchanged"), results.item("d", "s", "failed", "bang")]
    message = results.failure_message("Secret s", items)
    assert message == "Secret s failed in 2 of 4 namespaces (b: boom; d: bang); not done: b, d; done: a, c"
    every = [results.item("x", "s", "failed", "e")]
    assert results.failure_message("Secret s", every).endswith("; not done: x; done: none")
    two_names = [results.item("n", "default", "updated"), results.item("n", "builder", "failed", "e")]
    assert results.failure_message("Links", two_names).endswith("; not done: n/builder; done: n/default")
    assert results.failure_message("Secret s", items[:1]) is None


def test_legacy_dockercfg_secret_is_refused_not_patched():
    # test_bad_input: existing-secret-legacy-dockercfg
    legacy = {"type": dc.DOCKERCFG_TYPE, "data": {".dockercfg": b64({"us.icr.io": {"auth": "dTpw"}})},
              "metadata": {"labels": {ps.MANAGED_BY_LABEL: ps.MANAGED_BY_VALUE}, "resourceVersion": "3"}}
    step = ps.plan_secret("ns", "s", legacy, DESIRED)
    assert step["action"] == "failed"
    assert step["error"] == ("Secret ns/s exists with type kubernetes.io/dockercfg, not "
                             "kubernetes.io/dockerconfigjson; delete it or choose another name")
    assert ps.plan_secret("ns", "s", legacy, DESIRED, force=True)["action"] == "failed"
    assert ps.plan_secret("ns", "s", legacy, None, "absent")["action"] == "deleted"


def test_secret_deleted_between_read_and_update_is_created_again():
    # test_reliability_faults: test_secret_deleted_between_read_and_write_is_created_again
    other = dc.build_dockerconfig(["us.icr.io"], "iamapikey", "key-0")
    existing = {"type": dc.DOCKERCONFIGJSON_TYPE, "data": dc.encode_secret_data(other),
                "metadata": {"labels": {ps.MANAGED_BY_LABEL: ps.MANAGED_BY_VALUE}, "resourceVersion": "7"}}
    plan = ps.plan_pull_secrets({"ns": existing}, ["ns"], "s", DESIRED)
    client = FakeClient(patch_namespaced_secret=KubeError("gone", status=404),
                        read_namespaced_secret=KubeError("gone", status=404),
                        create_namespaced_secret={})
    assert ps.apply_plan(client, plan, 1) == [results.item("ns", "s", "created")]
    assert client.calls == ["patch_namespaced_secret", "read_namespaced_secret", "create_namespaced_secret"]


def test_a_failed_service_account_read_fails_each_namespace_instead_of_raising():
    # test_least_privilege: *-no-serviceaccounts; test_reliability_faults: the apiserver stop
    forbidden = KubeError("Forbidden (403) to get ServiceAccount default in namespace a: no", status=403)
    client = FakeClient(list_service_account_for_all_namespaces=forbidden,
                        read_namespaced_service_account=forbidden)
    items, diff = sa.ensure_links(client, ["a", "b"], ["default"], ["s"], wait_timeout=0)
    assert [(i["namespace"], i["action"], i["error"]) for i in items] == [
        ("a", "failed", str(forbidden)), ("b", "failed", str(forbidden))]
    assert diff == {"before": {}, "after": {}}


def test_source_dockercfg_without_credentials_is_named():
    # test_bad_input: internal-source-unparsable
    secret = {"type": dc.DOCKERCFG_TYPE, "data": {".dockercfg": b64({"r.svc:5000": {"email": "x"}})}}
    with pytest.raises(dc.DockerConfigError) as info:
        ocp.internal_credentials(secret, "Secret ns/default-dockercfg-x")
    assert str(info.value) == "Secret ns/default-dockercfg-x: an auths entry has no username and password"
