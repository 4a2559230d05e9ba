# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import dockerconfig as dc
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import plan as ps

DESIRED = dc.build_dockerconfig(["us.icr.io"], "iamapikey", "key-1")


def secret(config=None, managed=True, secret_type=dc.DOCKERCONFIGJSON_TYPE, data=None):
    config = config or DESIRED
    labels = {ps.MANAGED_BY_LABEL: ps.MANAGED_BY_VALUE} if managed else {}
    return {"type": secret_type, "data": data if data is not None else dc.encode_secret_data(config),
            "metadata": {"labels": labels, "resourceVersion": "7"}}


def test_plan_actions():
    other = dc.build_dockerconfig(["us.icr.io"], "iamapikey", "key-2")
    existing = {"same": secret(), "differs": secret(other), "unlabelled": secret(managed=False)}
    plan = ps.plan_pull_secrets(existing, ["same", "differs", "unlabelled", "new"], "s", DESIRED)
    assert [step["action"] for step in plan] == ["unchanged", "update", "update", "create"]
    assert plan[1]["resource_version"] == "7"


def test_wrong_type_fails_that_namespace_only():
    existing = {"bad": secret(secret_type="Opaque", data={"x": "eA=="})}
    plan = ps.plan_pull_secrets(existing, ["bad", "ok"], "s", DESIRED)
    assert plan[0]["action"] == "failed" and "type Opaque" in plan[0]["error"]
    assert plan[1]["action"] == "create"


def test_unparsable_content_needs_force():
    existing = {"bad": secret(data={".dockerconfigjson": "bm90IGpzb24="})}
    assert ps.plan_secret("bad", "s", existing["bad"], DESIRED)["action"] == "failed"
    assert ps.plan_secret("bad", "s", existing["bad"], DESIRED, force=True)["action"] == "update"


def test_absent_deletes_only_managed_unless_forced():
    assert ps.plan_secret("n", "s", secret(), None, "absent")["action"] == "delete"
    assert ps.plan_secret("n", "s", None, None, "absent")["action"] == "absent"
    assert ps.plan_secret("n", "s", secret(managed=False), None, "absent")["action"] == "failed"
    assert ps.plan_secret("n", "s", secret(managed=False), None, "absent", force=True)["action"] == "delete"


def test_predicted_results_and_redacted_diff():
    plan = ps.plan_pull_secrets({"a": secret(dc.build_dockerconfig(["us.icr.io"], "iamapikey", "old"))},
                                ["a", "b"], "s", DESIRED)
    assert [r["action"] for r in ps.predicted_results(plan)] == ["updated", "created"]
    diff = ps.plan_diff(plan)
    text = json.dumps(diff)
    assert "key-1" not in text and "old" not in text.replace("(changed)", "")
    assert diff["after"]["a"]["auths"]["us.icr.io"]["password"].endswith("(changed)")
    assert diff["before"]["b"] is None


def test_create_body_has_only_data_type_and_label():
    body = ps.secret_body("ns", "s", DESIRED)
    assert set(body) == {"apiVersion", "kind", "metadata", "type", "data"}
    assert set(body["data"]) == {".dockerconfigjson"}
    assert set(body["metadata"]) == {"name", "namespace", "labels"}
