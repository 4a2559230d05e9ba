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
    assert [step["action"] for step in plan] == ["unchanged", "updated", "updated", "created"]
    assert plan[1]["resource_version"] == "7"


def test_wrong_type_fails_that_namespace_only():
    existing = {"bad": secret(secret_type="Opaque", data={"x": "eA=="})}
    plan = ps.plan_pull_secrets(existing, ["bad", "ok"], "s", DESIRED)
    assert plan[0]["action"] == "failed" and "type Opaque" in plan[0]["error"]
    assert plan[1]["action"] == "created"


def test_unparsable_content_needs_force():
    existing = {"bad": secret(data={".dockerconfigjson": "bm90IGpzb24="})}
    assert ps.plan_secret("bad", "s", existing["bad"], DESIRED)["action"] == "failed"
    assert ps.plan_secret("bad", "s", existing["bad"], DESIRED, force=True)["action"] == "updated"


def test_absent_deletes_only_managed_unless_forced():
    assert ps.plan_secret("n", "s", secret(), None, "absent")["action"] == "deleted"
    assert ps.plan_secret("n", "s", None, None, "absent")["action"] == "absent"
    assert ps.plan_secret("n", "s", secret(managed=False), None, "absent")["action"] == "failed"
    assert ps.plan_secret("n", "s", secret(managed=False), None, "absent", force=True)["action"] == "deleted"


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


def source_params(**kw):
    from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import runners

    base = dict(state="present", iam_api_key=None, entitlement_key=None, registry=None, copy_from=None,
                regions=["all"], endpoints=["public", "private"], email=None)
    base.update(kw)
    return runners.validate_source_params(base)


def test_a_secret_over_one_mib_is_refused_naming_the_option():
    huge = "x" * (1024 * 1024)
    errors = source_params(registry={"server": "r.example.com", "username": "u", "password": huge})
    assert len(errors) == 1 and errors[0].startswith("registry.password: the secret would hold ")
    assert huge not in errors[0]
    # 26 icr.io domains carry the key 26 times: a key of 20 KiB is already too much.
    errors = source_params(iam_api_key="k" * 20000)
    assert len(errors) == 1 and errors[0].startswith("iam_api_key: ")
    assert source_params(entitlement_key="e" * 1000) == []
    errors = source_params(entitlement_key="e", email="m" * (1024 * 1024))
    assert errors and errors[0].startswith("email: ")


def test_plan_actions_are_the_result_vocabulary():
    from ansible_collections.ibmcloud.registry.plugins.module_utils.common.results import ACTIONS

    existing = {"same": secret(), "differs": secret(dc.build_dockerconfig(["us.icr.io"], "iamapikey", "x"))}
    present = ps.plan_pull_secrets(existing, ["same", "differs", "new"], "s", DESIRED)
    absent = ps.plan_pull_secrets(existing, ["same", "new"], "s", None, "absent")
    assert {step["action"] for step in present + absent} <= set(ACTIONS)
    assert ps.predicted_results(present + absent) == [
        {"namespace": step["namespace"], "name": "s", "action": step["action"]} for step in present + absent]


def test_ensure_refuses_an_oversized_secret_before_any_request():
    big = dc.build_dockerconfig(["a.io"], "u", "x" * dc.MAX_SECRET_BYTES)
    try:
        ps.ensure_pull_secrets(None, ["a"], "s", big)
    except ps.KubeError as exc:
        assert exc.status == 413 and "1 MiB" in str(exc)
    else:
        raise AssertionError("no error")


def test_size_is_reported_with_the_other_errors():
    errors = source_params(registry={"server": "bad host", "username": "u", "password": "x" * (1024 * 1024)})
    assert [e.split(":")[0] for e in errors] == ["registry.server", "registry.password"]
