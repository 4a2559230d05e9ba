# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM client layer (module_utils/iam/client.py) and the IAM stand-in, without a cluster.

The client talks to the LOCAL STAND-IN for IBM Cloud IAM (tests/standins/iam_server.py)
through the real IBM Cloud SDK, pointed at it with the URL options. These tests prove
the retry policy (429 with Retry-After, 5xx, the SDK's RetryError), the error messages
(call, status, transaction ID, never a key), paging, and that the stand-in rejects
what the real service rejects.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import secrets
import sys

import pytest
import requests

_TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(_TESTS, "standins"))

import iam_server  # noqa: E402  pylint: disable=wrong-import-position
from iam_fixtures import canary, standin  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam import client as iam  # noqa: E402
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.plan import PlanError  # noqa: E402

ACCOUNT = iam_server.DEFAULT_ACCOUNT


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(standin, canary, sleeps):
    return iam.IamClient(canary, standin.url, retries=3, sleep=sleeps.append)


def bearer(standin, key):
    response = requests.post(standin.url + "/identity/token", timeout=10,
                             data={"grant_type": iam_server.GRANT_TYPE_APIKEY, "apikey": key})
    response.raise_for_status()
    return {"Authorization": "Bearer " + response.json()["access_token"]}


# --- retries ------------------------------------------------------------------------------


def test_429_with_retry_after_then_success_is_retried(standin, client, sleeps):
    standin.inject_fault("GET", "/v1/serviceids/", 429, count=2, retry_after=1)
    assert client.list_service_ids(ACCOUNT, name="nothing") == []
    assert sleeps == [1.0, 1.0]
    statuses = [r["status"] for r in standin.requests() if r["path"] == "/v1/serviceids/"]
    assert statuses == [429, 429, 200]


def test_5xx_on_a_write_is_retried_with_backoff(standin, client, sleeps):
    standin.inject_fault("POST", "/v1/serviceids/", 503, count=1)
    created = client.result("create_service_id", account_id=ACCOUNT, name="retried")
    assert created["name"] == "retried"
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 10
    assert [r["status"] for r in standin.writes()] == [503, 201]


def test_retries_run_out_with_a_message_naming_call_status_and_transaction(standin, client, canary):
    standin.inject_fault("GET", "/v1/serviceids/", 429, count=10, retry_after=0)
    with pytest.raises(iam.IamError) as err:
        client.list_service_ids(ACCOUNT)
    message = str(err.value)
    assert "list_service_ids (GET /v1/serviceids/)" in message
    assert "status 429" in message and "after 4 attempts" in message
    assert "transaction ID standin-" in message
    assert err.value.status == 429 and err.value.transaction_id.startswith("standin-")
    assert canary not in message


def test_sdk_retry_error_is_handled_not_raised(standin, client, canary):
    # If something enables the SDK's own urllib3 retries, running out of them raises
    # requests' RetryError rather than ApiException.
    client.identity.enable_retries(max_retries=1, retry_interval=0.01)
    standin.inject_fault("GET", "/v1/serviceids/", 429, count=100, retry_after=0)
    with pytest.raises(iam.IamError) as err:
        client.list_service_ids(ACCOUNT)
    assert "kept answering 429 or 5xx" in str(err.value)
    assert "list_service_ids (GET /v1/serviceids/)" in str(err.value)
    assert canary not in str(err.value)
    standin.reset()


def test_token_errors_name_the_token_call_and_never_the_key(standin, sleeps):
    wrong = "CANARY-wrong-" + secrets.token_urlsafe(16)
    client = iam.IamClient(wrong, standin.url, retries=2, sleep=sleeps.append)
    with pytest.raises(iam.IamError) as err:
        client.list_service_ids(ACCOUNT)
    message = str(err.value)
    assert "token exchange (POST /identity/token) for list_service_ids" in message
    assert "status 400" in message and "check ibmcloud_api_key" in message
    assert wrong not in message
    assert sleeps == []  # a 400 is not retried


def test_unreachable_iam_is_retried_then_reported(sleeps):
    client = iam.IamClient("CANARY-x", "http://127.0.0.1:9", retries=1, sleep=sleeps.append)
    with pytest.raises(iam.IamError, match="could not reach http://127.0.0.1:9 after 2 attempts"):
        client.list_service_ids(ACCOUNT)


def test_scrub_removes_every_known_key():
    client = iam.IamClient("CANARY-admin-key", "http://127.0.0.1:9")
    client.add_secret("minted-key-value")
    assert client.scrub("a CANARY-admin-key b minted-key-value c") == "a ******** b ******** c"


# --- lookups and paging -------------------------------------------------------------------


def test_account_comes_from_the_token_when_not_given(client):
    assert client.account_id() == ACCOUNT
    assert client.account_id("f" * 32) == "f" * 32


def test_paging_reads_every_page_and_duplicates_are_an_error(standin, canary, sleeps):
    client = iam.IamClient(canary, standin.url, page_size=2, sleep=sleeps.append)
    ids = [client.result("create_service_id", account_id=ACCOUNT, name="same")["id"] for _index in range(5)]
    client.result("create_service_id", account_id=ACCOUNT, name="unique")
    assert len(client.list_service_ids(ACCOUNT)) == 6
    assert sorted(s["id"] for s in client.list_service_ids(ACCOUNT, name="same")) == sorted(ids)
    with pytest.raises(PlanError) as err:
        client.find_service_id(ACCOUNT, "same")
    for sid in ids:
        assert sid in str(err.value)
    # Just created, they could be a concurrent create settling: read again, then give up.
    assert sleeps == [1] * (iam.SETTLE_ATTEMPTS - 1)
    # By ID, one of them is fine.
    assert client.find_service_id(ACCOUNT, ids[3])["id"] == ids[3]
    assert client.find_service_id(ACCOUNT, "ServiceId-00000000-0000-0000-0000-000000000000") is None
    pages = [r for r in standin.requests() if r["path"] == "/v1/serviceids/" and r["method"] == "GET"]
    assert any("pagetoken" in r["query"] for r in pages)


def test_concurrent_creates_of_one_name_leave_one_service_id(standin, client, sleeps):
    alone, deleted = client.create_service_id(ACCOUNT, "concurrent", "first")
    assert deleted is None and sleeps == [1]  # alone: one second look
    # Two runs both found none and both create; each then keeps the one both agree on.
    first_run = client.result("create_service_id", account_id=ACCOUNT, name="twice")
    second_kept, second_deleted = client.create_service_id(ACCOUNT, "twice")
    first_kept, first_deleted = client.keep_first_created(ACCOUNT, "twice", first_run)
    remaining = [r["id"] for r in client.list_service_ids(ACCOUNT, name="twice")]
    assert remaining == [first_kept["id"]] == [second_kept["id"]]
    deleted = [d for d in (first_deleted, second_deleted) if d]
    assert len(deleted) == 1 and deleted[0] != remaining[0]
    assert client.find_service_id(ACCOUNT, "concurrent")["id"] == alone["id"]


def test_policy_and_api_key_paging(standin, canary):
    client = iam.IamClient(canary, standin.url, page_size=2)
    sid = client.result("create_service_id", account_id=ACCOUNT, name="pager")
    from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.plan import policy_body

    for region in ("us-south", "eu-de", "jp-tok"):
        client.result("create_v2_policy", **policy_body(ACCOUNT, sid["iam_id"], ["Reader"], (region, None)))
    assert len(client.list_registry_policies(ACCOUNT, sid["iam_id"])) == 3
    for index in range(3):
        client.result("create_api_key", name="k%d" % index, iam_id=sid["iam_id"], account_id=ACCOUNT)
    keys = client.list_api_keys(ACCOUNT, sid["iam_id"])
    assert sorted(k["name"] for k in keys) == ["k0", "k1", "k2"]
    assert all(k["apikey"] == "" for k in keys)  # values only on create


def test_key_details_by_value(standin, client):
    sid = client.result("create_service_id", account_id=ACCOUNT, name="details")
    created = client.result("create_api_key", name="k", iam_id=sid["iam_id"], account_id=ACCOUNT)
    details = client.key_details(created["apikey"])
    assert details["id"] == created["id"] and details["iam_id"] == sid["iam_id"]
    assert client.key_details("not-a-key-" + secrets.token_hex(8)) is None
    log = [r for r in standin.requests() if r["path"] == "/v1/apikeys/details"]
    assert log and all(r["query"] == [] for r in log)  # the value travels in a header


def test_verify_api_key_logs_in_with_that_key_and_reads_its_claims(standin, client):
    sid = client.result("create_service_id", account_id=ACCOUNT, name="verify")
    created = client.result("create_api_key", name="k", iam_id=sid["iam_id"], account_id=ACCOUNT)
    mark = standin.mark()
    claims = client.verify_api_key(created["apikey"])
    assert claims["iam_id"] == sid["iam_id"] and claims["account"]["bss"] == ACCOUNT
    # One token exchange of its own: the client's cached admin token is not what is checked.
    assert [(r["method"], r["path"], r["status"]) for r in standin.requests() if r["seq"] > mark] == [
        ("POST", "/identity/token", 200)]


def test_verify_api_key_of_a_deleted_key_fails_without_showing_it(standin, client):
    sid = client.result("create_service_id", account_id=ACCOUNT, name="verify-gone")
    created = client.result("create_api_key", name="k", iam_id=sid["iam_id"], account_id=ACCOUNT)
    client.call("delete_api_key", id=created["id"])
    with pytest.raises(iam.IamError) as raised:
        client.verify_api_key(created["apikey"])
    message = str(raised.value)
    assert message.startswith("the new API key could not log in") and "status 400" in message
    assert created["apikey"] not in message and "check ibmcloud_api_key" not in message


def test_token_claims_are_read_with_pyjwt_and_junk_is_no_claims():
    token = iam_server.make_token({"account": {"bss": ACCOUNT}, "iam_id": "iam-x"})
    assert iam.token_claims(token) == {"account": {"bss": ACCOUNT}, "iam_id": "iam-x"}
    for junk in ("", "not-a-jwt", "a.b.c", None):
        assert iam.token_claims(junk) == {}


# --- the stand-in is strict where IAM is ---------------------------------------------------


def test_standin_rejects_unknown_query_parameters(standin, canary):
    response = requests.get(standin.url + "/v1/serviceids/", timeout=10, headers=bearer(standin, canary),
                            params={"account_id": ACCOUNT, "bogus": "1"})
    assert response.status_code == 400 and "bogus" in response.json()["errors"][0]["message"]


def test_standin_requires_json_bodies_and_required_fields(standin, canary):
    headers = bearer(standin, canary)
    form = requests.post(standin.url + "/v1/serviceids/", timeout=10, headers=headers,
                         data={"account_id": ACCOUNT, "name": "x"})
    assert form.status_code == 415
    missing = requests.post(standin.url + "/v1/serviceids/", timeout=10, headers=headers, json={"name": "x"})
    assert missing.status_code == 400 and "account_id" in missing.text
    key = requests.post(standin.url + "/v1/apikeys", timeout=10, headers=headers, json={"name": "k"})
    assert key.status_code == 400 and "iam_id" in key.text
    policy = requests.post(standin.url + "/v2/policies", timeout=10, headers=headers, json={"type": "access"})
    assert policy.status_code == 400 and "control" in policy.text


def test_standin_requires_a_bearer_token(standin, canary):
    del canary
    response = requests.get(standin.url + "/v1/serviceids/", timeout=10, params={"account_id": ACCOUNT})
    assert response.status_code == 401
    response = requests.get(standin.url + "/v1/serviceids/", timeout=10, params={"account_id": ACCOUNT},
                            headers={"Authorization": "Bearer made-up"})
    assert response.status_code == 401


def test_standin_if_match_and_conflicts(standin, client):
    sid = client.result("create_service_id", account_id=ACCOUNT, name="etag")
    with pytest.raises(iam.IamError) as err:
        client.result("update_service_id", id=sid["id"], if_match="1-stale", description="x")
    assert err.value.status == 409
    updated = client.result("update_service_id", id=sid["id"], if_match=sid["entity_tag"], description="x")
    assert updated["description"] == "x" and updated["entity_tag"] != sid["entity_tag"]

    from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.plan import policy_body

    body = policy_body(ACCOUNT, sid["iam_id"], ["Reader"], ("us-south", None))
    created = client.call("create_v2_policy", **body)
    with pytest.raises(iam.IamError) as err:
        client.call("create_v2_policy", **body)
    assert err.value.status == 409  # same subject and resource
    pid = created.get_result()["id"]
    with pytest.raises(iam.IamError) as err:
        client.call("replace_v2_policy", id=pid, if_match="1-stale", **body)
    assert err.value.status == 412
    etag = client.call("get_v2_policy", id=pid).get_headers()["ETag"]
    writer = policy_body(ACCOUNT, sid["iam_id"], ["Writer"], ("us-south", None))
    client.call("replace_v2_policy", id=pid, if_match=etag, **writer)
    bad_region = policy_body(ACCOUNT, sid["iam_id"], ["Reader"], ("mars-1", None))
    with pytest.raises(iam.IamError) as err:
        client.call("create_v2_policy", **bad_region)
    assert err.value.status == 400 and "mars-1" in str(err.value)


def test_deleting_a_service_id_deletes_its_keys_and_policies(standin, client):
    sid = client.result("create_service_id", account_id=ACCOUNT, name="cascade")
    client.result("create_api_key", name="k", iam_id=sid["iam_id"], account_id=ACCOUNT)
    from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.plan import policy_body

    client.result("create_v2_policy", **policy_body(ACCOUNT, sid["iam_id"], ["Reader"], (None, None)))
    client.call("delete_service_id", id=sid["id"])
    state = standin.snapshot()
    assert state["api_keys"] == [] and state["policies"] == [] and state["service_ids"] == []


def test_validate_iam_params_never_shows_the_key():
    errors = iam.validate_iam_params({"ibmcloud_api_key": '"CANARY-quoted"', "account_id": "xyz",
                                      "iam_url": "ftp://x/path", "iam_retries": 99})
    text = "; ".join(errors)
    assert "CANARY" not in text
    assert len(errors) == 4
    assert iam.validate_iam_params({"ibmcloud_api_key": None})[0].startswith("ibmcloud_api_key is required")
    assert iam.iam_base_url({"iam_endpoint": "private"}) == iam.PRIVATE_IAM_URL
    assert iam.iam_base_url({"iam_endpoint": "public"}) == iam.PUBLIC_IAM_URL
    assert iam.iam_base_url({"iam_url": "http://127.0.0.1:1/", "iam_endpoint": "private"}) == "http://127.0.0.1:1"


def test_a_policy_another_run_created_meanwhile_is_made_right_not_an_error(client):
    from ansible_collections.ibmcloud.registry.plugins.module_utils.iam import runners
    from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.plan import plan_policies, policy_body

    sid = client.result("create_service_id", account_id=ACCOUNT, name="raced")
    scope = ("us-south", None)
    # Both runs read no policy and planned a create; the other run's create landed first.
    step = plan_policies([], ACCOUNT, sid["iam_id"], ["Reader"], [scope])[0]
    assert step["action"] == "created"
    same = client.result("create_v2_policy", **policy_body(ACCOUNT, sid["iam_id"], ["Reader"], scope))["id"]
    assert runners._apply_policy_step(client, step, ACCOUNT, sid["iam_id"], "d") == ("unchanged", same)
    # Planned Reader, but the other run granted Writer on that scope: replaced in place.
    writer = plan_policies([], ACCOUNT, sid["iam_id"], ["Writer"], [scope])[0]
    assert runners._apply_policy_step(client, writer, ACCOUNT, sid["iam_id"], "d") == ("updated", same)
    assert [p["id"] for p in client.list_registry_policies(ACCOUNT, sid["iam_id"])] == [same]
