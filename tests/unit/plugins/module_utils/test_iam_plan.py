# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure IAM planning: service ID choice, v2 policy equivalence and planning, which
API keys are ours, and which key a rerun reuses."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.iam import plan as ip
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import build_dockerconfig

ACCOUNT = "0123456789abcdef0123456789abcdef"
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
IAM_ID = "iam-ServiceId-11111111-2222-3333-4444-555555555555"


def policy(pid, roles=("Reader",), region=None, namespace=None, iam_id=IAM_ID, account=ACCOUNT, **extra):
    body = ip.policy_body(account, iam_id, list(roles), (region, namespace))
    body["id"] = pid
    # What the API adds to roles on reads.
    for role in body["control"]["grant"]["roles"]:
        role["display_name"] = role["role_id"].rsplit(":", 1)[-1]
    body.update(extra)
    return body


# --- validation ---------------------------------------------------------------------------


def test_roles_are_normalised_case_insensitively_and_deduplicated():
    assert ip.normalise_roles(["writer", "READER", "Reader"]) == ["Reader", "Writer"]


def test_unknown_role_names_the_valid_ones():
    with pytest.raises(ip.PlanError, match="Administrator.*Reader, Writer, Manager"):
        ip.normalise_roles(["Administrator"])


def test_region_and_registry_namespace_validation():
    assert ip.region_errors(["us-south", "global"]) == []
    assert "fr-par" in ip.region_errors(["fr-par"])[0]
    assert ip.registry_namespace_errors(["payments", "team_a-1"]) == []
    assert len(ip.registry_namespace_errors(["ab", "Upper", "-lead", "x" * 31])) == 4


def test_account_and_service_id_formats():
    assert ip.account_id_error(ACCOUNT) is None
    assert ip.account_id_error("not-an-account")
    assert ip.is_service_id_id("ServiceId-1f0c3a5c-2e0d-4c6f-9b2d-2f1c5a9e8d7b")
    assert not ip.is_service_id_id("cluster-abc-id")


# --- service IDs --------------------------------------------------------------------------


def test_pick_service_id_by_name_and_duplicates_list_their_ids():
    records = [{"id": "ServiceId-b", "name": "x"}, {"id": "ServiceId-a", "name": "x"}, {"id": "ServiceId-c", "name": "y"}]
    assert ip.pick_service_id(records, "y")["id"] == "ServiceId-c"
    assert ip.pick_service_id(records, "z") is None
    with pytest.raises(ip.PlanError) as err:
        ip.pick_service_id(records, "x", ACCOUNT)
    assert "ServiceId-a, ServiceId-b" in str(err.value) and ACCOUNT in str(err.value)


def test_first_created_is_the_same_for_every_run_whatever_the_order():
    records = [{"id": "ServiceId-b", "name": "x", "created_at": "2026-11-27T08:00+0000"},
               {"id": "ServiceId-a", "name": "x", "created_at": "2026-11-27T08:01+0000"},
               {"id": "ServiceId-0", "name": "x", "created_at": "2026-11-27T08:00+0000"},
               {"id": "ServiceId-1", "name": "y", "created_at": "2026-11-27T07:00+0000"}]
    assert ip.first_created(records, "x")["id"] == "ServiceId-0"
    assert ip.first_created(list(reversed(records)), "x")["id"] == "ServiceId-0"
    assert ip.first_created(records, "z") is None


def test_recent_duplicates_are_a_concurrent_create_and_old_ones_are_not():
    now = datetime.datetime(2026, 11, 27, 8, 1, 30, tzinfo=datetime.timezone.utc)
    fresh = [{"id": "ServiceId-a", "name": "x", "created_at": "2026-11-27T08:00+0000"},
             {"id": "ServiceId-b", "name": "x", "created_at": "2026-11-27T08:01+0000"}]
    assert ip.recent_duplicates(fresh, "x", now)
    assert not ip.recent_duplicates(fresh[:1], "x", now)
    assert not ip.recent_duplicates(fresh, "x", now + datetime.timedelta(minutes=5))
    old = [dict(fresh[0], created_at="2026-11-20T08:00+0000"), fresh[1]]
    assert not ip.recent_duplicates(old, "x", now)
    assert not ip.recent_duplicates([dict(fresh[0], created_at="yesterday"), fresh[1]], "x", now)


def test_service_id_changes_only_for_managed_fields():
    record = {"name": "a", "description": "old"}
    assert ip.service_id_changes(record, name="a", description=None) == {}
    assert ip.service_id_changes(record, name="a", description="new") == {"description": "new"}
    assert ip.service_id_changes({"name": "a"}, description="") == {}


# --- policies -----------------------------------------------------------------------------


def test_policy_body_is_the_v2_wire_shape():
    body = ip.policy_body(ACCOUNT, IAM_ID, ["Reader"], ("us-south", "payments"), "d")
    assert body["type"] == "access"
    assert body["control"] == {"grant": {"roles": [
        {"role_id": "crn:v1:bluemix:public:container-registry::::serviceRole:Reader"}]}}
    assert body["subject"] == {"attributes": [{"key": "iam_id", "operator": "stringEquals", "value": IAM_ID}]}
    keys = [(a["key"], a["value"]) for a in body["resource"]["attributes"]]
    assert keys == [("accountId", ACCOUNT), ("serviceName", "container-registry"), ("region", "us-south"),
                    ("resourceType", "namespace"), ("resource", "payments")]


def test_scope_of_plain_and_custom_policies():
    assert ip.policy_scope(policy("p"), ACCOUNT) == (None, None)
    assert ip.policy_scope(policy("p", region="eu-de", namespace="ns1"), ACCOUNT) == ("eu-de", "ns1")
    # Attribute order does not matter.
    reordered = policy("p", region="eu-de")
    reordered["resource"]["attributes"].reverse()
    assert ip.policy_scope(reordered, ACCOUNT) == ("eu-de", None)
    # Another account, a rule, a stringMatch or an extra attribute: not a plain policy.
    assert ip.policy_scope(policy("p", account=OTHER_ACCOUNT), ACCOUNT) is None
    assert ip.policy_scope(policy("p", rule={"key": "x"}), ACCOUNT) is None
    wildcard = policy("p", region="us-south")
    wildcard["resource"]["attributes"][2]["operator"] = "stringMatch"
    assert ip.policy_scope(wildcard, ACCOUNT) is None
    grouped = policy("p")
    grouped["resource"]["attributes"].append({"key": "resourceGroupId", "operator": "stringEquals", "value": "g"})
    assert ip.policy_scope(grouped, ACCOUNT) is None


def test_equivalent_policy_is_unchanged_whatever_the_role_order_and_display_names():
    existing = [policy("p1", roles=("Writer", "Reader"))]
    steps = ip.plan_policies(existing, ACCOUNT, IAM_ID, ["Reader", "Writer"], [(None, None)])
    assert [(s["action"], s["policy"]["id"]) for s in steps] == [("unchanged", "p1")]


def test_same_scope_other_roles_is_replaced_other_scopes_left_alone_without_exclusive():
    existing = [policy("p1", roles=("Manager",)), policy("p2", region="eu-de"),
                policy("other-subject", iam_id="iam-ServiceId-x")]
    steps = ip.plan_policies(existing, ACCOUNT, IAM_ID, ["Reader"], [(None, None)])
    assert [(s["action"], (s["policy"] or {}).get("id")) for s in steps] == [("updated", "p1")]


def test_exclusive_deletes_every_other_registry_policy_of_the_subject_only():
    custom = policy("p3", rule={"operator": "and", "conditions": []})
    other_service = policy("p4")
    other_service["resource"]["attributes"][1]["value"] = "cloud-object-storage"
    existing = [policy("p1"), policy("p2", region="eu-de"), custom, other_service,
                policy("other-subject", iam_id="iam-ServiceId-x")]
    steps = ip.plan_policies(existing, ACCOUNT, IAM_ID, ["Reader"], [(None, None)], exclusive=True)
    assert [(s["action"], (s["policy"] or {}).get("id")) for s in steps] == [
        ("unchanged", "p1"), ("deleted", "p2"), ("deleted", "p3")]


def test_one_policy_per_region_and_namespace_pair():
    scopes = ip.desired_scopes(["us-south", "eu-de"], ["a-ns", "b-ns"])
    assert scopes == [("us-south", "a-ns"), ("us-south", "b-ns"), ("eu-de", "a-ns"), ("eu-de", "b-ns")]
    steps = ip.plan_policies([policy("p", region="eu-de", namespace="b-ns")], ACCOUNT, IAM_ID, ["Reader"], scopes)
    assert [s["action"] for s in steps] == ["created", "created", "created", "unchanged"]
    assert ip.desired_scopes([], []) == [(None, None)]


def test_absent_deletes_given_scopes_or_everything():
    existing = [policy("p1"), policy("p2", region="eu-de"), policy("p3", rule={"x": 1})]
    scoped = ip.plan_policies(existing, ACCOUNT, IAM_ID, [], [("eu-de", None)], state="absent")
    assert [s["policy"]["id"] for s in scoped] == ["p2"]
    everything = ip.plan_policies(existing, ACCOUNT, IAM_ID, [], None, state="absent")
    assert [s["policy"]["id"] for s in everything] == ["p1", "p2", "p3"]


def test_no_existing_subject_in_check_mode_plans_creates():
    steps = ip.plan_policies([], ACCOUNT, None, ["Reader"], [("us-south", None)])
    assert [s["action"] for s in steps] == ["created"]
    assert ip.step_summary(steps[0], "created") == {
        "id": None, "roles": ["Reader"], "region": "us-south", "namespace": "all", "action": "created"}


def test_policies_diff_shows_roles_and_scope_only():
    steps = ip.plan_policies([policy("p1", roles=("Manager",))], ACCOUNT, IAM_ID, ["Reader"], [(None, None)])
    diff = ip.policies_diff(steps)
    assert diff["before"] == [{"id": "p1", "roles": ["Manager"], "region": "all", "namespace": "all"}]
    assert diff["after"] == [{"id": "p1", "roles": ["Reader"], "region": "all", "namespace": "all"}]


# --- keys ---------------------------------------------------------------------------------


def test_key_description_gets_the_marker_once():
    described = ip.key_description("API key for x")
    assert described.endswith(ip.MANAGED_MARKER)
    assert ip.key_description(described) == described
    assert ip.key_description(None) == ip.MANAGED_MARKER


def test_only_our_keys_for_this_name_are_deleted():
    keys = [
        {"id": "k1", "name": "c-key", "description": ip.key_description("ours")},
        {"id": "k2", "name": "c-key", "description": "made by hand"},             # same name, not ours
        {"id": "k3", "name": "other-key", "description": ip.key_description("")},  # ours, other purpose
        {"id": "k4", "name": "c-key", "description": ip.key_description("")},      # the new one
        {"id": "k5", "name": "c-key"},                                              # no description
    ]
    assert [k["id"] for k in ip.keys_to_delete(keys, "c-key", keep_ids=["k4"])] == ["k1"]


def test_key_summary_never_carries_the_value():
    summary = ip.key_summary({"id": "k", "name": "n", "apikey": "secret-value", "created_at": "t",
                              "description": ip.key_description("")}, "created")
    assert "secret-value" not in repr(summary)
    assert summary == {"id": "k", "name": "n", "created_at": "t", "managed": True, "action": "created"}


def test_candidate_keys_come_from_iamapikey_entries_most_shared_first():
    one = build_dockerconfig(["icr.io", "us.icr.io"], "iamapikey", "key-one")
    two = build_dockerconfig(["icr.io"], "iamapikey", "key-two")
    other = build_dockerconfig(["cp.icr.io"], "cp", "entitlement")
    auth_only = {"auths": {"icr.io": {"auth": build_dockerconfig(["x"], "iamapikey", "key-two")["auths"]["x"]["auth"]}}}
    candidates = ip.candidate_keys({"a": one, "b": two, "c": two, "d": other, "e": auth_only})
    assert candidates == [("key-two", ["b", "c", "e"]), ("key-one", ["a"])]


def test_choose_key_reuses_only_known_enabled_keys_of_the_service_id():
    mine_old = {"id": "k1", "iam_id": IAM_ID, "created_at": "2026-01-01T00:00+0000"}
    mine_new = {"id": "k2", "iam_id": IAM_ID, "created_at": "2026-02-01T00:00+0000"}
    foreign = {"id": "k3", "iam_id": "iam-ServiceId-other", "created_at": "2026-03-01T00:00+0000"}
    disabled = dict(mine_new, id="k4", disabled=True, created_at="2026-04-01T00:00+0000")
    assert ip.choose_key([(None, ["a"]), (foreign, ["b"])], IAM_ID) is None
    assert ip.choose_key([(mine_old, ["a", "b"]), (mine_new, ["c"]), (foreign, ["d"]), (disabled, ["e"])],
                         IAM_ID) == 1
    assert ip.choose_key([(disabled, ["a"])], IAM_ID) is None


# --- rotation: which older keys go, and when ------------------------------------------------

NOW = datetime.datetime(2026, 12, 2, 5, 0, 0, tzinfo=datetime.timezone.utc)


def our_key(kid, description=""):
    return {"id": kid, "name": "c-key", "description": ip.key_description(description)}


def test_retired_description_round_trips_and_replaces_an_earlier_mark():
    later = NOW + datetime.timedelta(hours=1)
    text = ip.retired_description(ip.key_description("for ns a"), NOW)
    assert text.endswith("[retired by rotation; delete after 2026-12-02T05:00:00Z]")
    again = ip.retired_description(text, later)
    assert again.count("retired by rotation") == 1 and ip.retired_until({"description": again}) == later
    assert ip.MANAGED_MARKER in again
    assert ip.retired_until({"description": ip.key_description("x")}) is None


def test_rotation_deletes_older_keys_at_once_without_grace():
    keys = [our_key("new"), our_key("old"), {"id": "foreign", "name": "c-key", "description": "by hand"}]
    plan = ip.plan_old_keys(keys, "c-key", "new", [], NOW, rotating=True)
    assert [k["id"] for k in plan["delete"]] == ["old"] and plan["retire"] == [] and plan["wait"] == []


def test_rotation_with_grace_retires_and_a_later_run_deletes_after_the_time():
    keys = [our_key("new"), our_key("old")]
    plan = ip.plan_old_keys(keys, "c-key", "new", [], NOW, rotating=True, grace_seconds=60)
    assert [k["id"] for k in plan["retire"]] == ["old"] and plan["delete"] == []
    retired = [our_key("new"), dict(our_key("old"), description=ip.retired_description(
        our_key("old")["description"], NOW + datetime.timedelta(seconds=60)))]
    soon = ip.plan_old_keys(retired, "c-key", "new", [], NOW, rotating=False)
    assert [k["id"] for k in soon["wait"]] == ["old"] and soon["delete"] == []
    late = ip.plan_old_keys(retired, "c-key", "new", [], NOW + datetime.timedelta(seconds=61), rotating=False)
    assert [k["id"] for k in late["delete"]] == ["old"]


def test_outside_rotation_no_older_key_is_touched_and_a_held_key_is_kept():
    keys = [our_key("new"), our_key("old")]
    assert ip.plan_old_keys(keys, "c-key", "new", [], NOW, rotating=False) == {"delete": [], "retire": [], "wait": []}
    # A key a secret still holds is kept even in a rotation, marked for a later run; and
    # a retired one it holds waits even after its time.
    plan = ip.plan_old_keys(keys, "c-key", "new", ["old"], NOW, rotating=True)
    assert plan["delete"] == [] and [k["id"] for k in plan["retire"]] == ["old"]
    retired = [our_key("new"), dict(our_key("old"), description=ip.retired_description(ip.key_description(""), NOW))]
    assert [k["id"] for k in ip.plan_old_keys(retired, "c-key", "new", ["old"], NOW, rotating=False)["wait"]] == ["old"]


def test_blocked_rotation_deletes_nothing_but_marks_the_older_keys_for_the_run_that_finishes():
    keys = [our_key("new"), our_key("old")]
    plan = ip.plan_old_keys(keys, "c-key", "new", [], NOW, rotating=True, blocked=True)
    assert plan["delete"] == [] and [k["id"] for k in plan["retire"]] == ["old"]
    retired = [our_key("new"), dict(our_key("old"), description=ip.retired_description(ip.key_description(""), NOW))]
    assert [k["id"] for k in ip.plan_old_keys(retired, "c-key", "new", [], NOW, rotating=False,
                                              blocked=True)["wait"]] == ["old"]
    assert [k["id"] for k in ip.plan_old_keys(retired, "c-key", "new", [], NOW, rotating=False)["delete"]] == ["old"]


def test_grace_period_bounds():
    assert ip.grace_period_error(0) is None and ip.grace_period_error(86400) is None
    assert "rotation_grace_period" in ip.grace_period_error(-1)
    assert "rotation_grace_period" in ip.grace_period_error(91 * 86400)
