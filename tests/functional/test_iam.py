"""IAM modules and the iam_pull_secret role against the local cluster and the IAM stand-in.

Every test runs the real modules through `ansible-playbook`. IBM Cloud cannot be reached
here, so the modules talk, through the real IBM Cloud SDK pointed at it with `iam_url`,
to the LOCAL STAND-IN for IBM Cloud IAM (tests/standins/iam_server.py). IAM writes are
counted in the stand-in's request log; cluster writes in the API server's audit log
(user `admin`). The IBM Cloud API key is a canary, and every minted key is read back
from the secrets; neither may appear anywhere in `-vvvv --diff` output.

The role's cluster mode writes to the `default` namespace, which other tests expect to
be free of `all-icr-io`; that test runs against a private local cluster of its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import sys
import time

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from playbook import REPO, Runner

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "standins"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))

import audit as audit_log  # noqa: E402  pylint: disable=wrong-import-position
import iam_server  # noqa: E402  pylint: disable=wrong-import-position
from iam_fixtures import canary, standin  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
import localcluster  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

ACCOUNT = iam_server.DEFAULT_ACCOUNT
MARKER = "[managed-by ibmcloud.registry]"
ROLE_CRN = "crn:v1:bluemix:public:container-registry::::serviceRole:"
PRIVATE_CLUSTER_DIR = os.path.join(REPO, ".cluster-iam")


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def core(kube_fixture_client):
    return k8s.CoreV1Api(kube_fixture_client)


class IamPlays:
    """ansible-playbook with the IAM modules pointed at the stand-in and one cluster."""

    def __init__(self, runner: Runner, standin, canary: str):
        self.runner = runner
        self.standin = standin
        self.canary = canary

    def run(self, tasks, key_in_env=True, **kwargs):
        defaults = {
            "ibmcloud.registry.iam_service_id": {"iam_url": self.standin.url},
            "ibmcloud.registry.iam_registry_policy": {"iam_url": self.standin.url},
            "ibmcloud.registry.iam_pull_secret": {"iam_url": self.standin.url,
                                                  "kubeconfig": self.runner.kubeconfig},
        }
        play_vars = {}
        if not key_in_env:
            play_vars["canary_key"] = self.canary
            for module in defaults.values():
                module["ibmcloud_api_key"] = "{{ canary_key }}"
        plays = [{"name": "iam", "hosts": "localhost", "connection": "local", "gather_facts": False,
                  "vars": play_vars, "module_defaults": defaults, "tasks": tasks}]
        env = {"IC_API_KEY": self.canary} if key_in_env else {"IC_API_KEY": "", "IBMCLOUD_API_KEY": ""}
        return self.runner.run(tasks, plays=plays, env=env, **kwargs)

    def role(self, role_vars, **kwargs):
        # The role passes no connection option: it uses the play's module_defaults.
        task = {"name": "role", "ansible.builtin.include_role": {"name": "ibmcloud.registry.iam_pull_secret"},
                "vars": role_vars}
        return self.run([task], **kwargs)


@pytest.fixture
def plays(runner, standin, canary):
    return IamPlays(runner, standin, canary)


def wait_for_sa(core, namespace, sa="default"):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            return core.read_namespaced_service_account(sa, namespace)
        except k8s.ApiException:
            time.sleep(0.2)
    raise AssertionError("no service account %s in %s" % (sa, namespace))


def secret_passwords(core, namespace, name):
    secret = core.read_namespaced_secret(name, namespace)
    assert secret.type == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]
    assert all(entry["username"] == "iamapikey" for entry in auths.values())
    return set(entry["password"] for entry in auths.values()), sorted(auths)


def key_id_of(standin, value):
    digest = hashlib.sha256(value.encode()).hexdigest()
    found = [k for k in standin.snapshot()["api_keys"] if k["sha256"] == digest]
    return found[0]["id"] if found else None


def pull_refs(core, namespace, sa="default"):
    return [ref.name for ref in core.read_namespaced_service_account(sa, namespace).image_pull_secrets or []]


def assert_no_leak(output: str, *values: str):
    """Neither a value nor its base64 forms (alone or in an auth field) is in output."""
    for value in values:
        assert value, "an empty value proves nothing"
        forms = {value, base64.b64encode(value.encode()).decode(),
                 base64.b64encode(("iamapikey:" + value).encode()).decode()}
        for form in forms:
            assert form not in output, "a key value leaked into the output"


def recap_changed(stdout: str) -> int:
    line = [l for l in stdout.splitlines() if l.startswith("localhost") and "changed=" in l][-1]
    return int(line.split("changed=")[1].split()[0])


def seed_tasks(cluster_name, namespaces, rotate=False, secret="icr-io"):
    sid = "%s-team-id" % cluster_name
    return [
        {"name": "sid", "ibmcloud.registry.iam_service_id": {
            "name": sid,
            "description": "Service ID for IBM Cloud Container Registry in Kubernetes cluster %s" % cluster_name}},
        {"name": "policy", "ibmcloud.registry.iam_registry_policy": {
            "service_id": sid, "roles": ["Reader"], "regions": ["us-south"]}},
        {"name": "key", "ibmcloud.registry.iam_pull_secret": {
            "service_id": sid, "api_key_name": "%s-team-key" % cluster_name, "name": secret,
            "regions": ["us-south", "global"], "namespaces": namespaces, "service_accounts": ["default"],
            "rotate": rotate}},
    ]


def our_keys(standin, name):
    return [k for k in standin.snapshot()["api_keys"] if k["name"] == name and MARKER in (k.get("description") or "")]


# --- the modules ----------------------------------------------------------------------------


def test_check_mode_writes_nothing_anywhere_and_leaks_nothing(plays, standin, audit, unique_ns, canary):
    names = [unique_ns("a"), unique_ns("b")]
    iam_mark, kube_mark = standin.mark(), audit.mark()
    result = plays.run(seed_tasks("c1", names), check=True, diff=True, verbosity=4, raw=True)
    assert result.rc == 0, result.stdout[-3000:]
    assert recap_changed(result.stdout) == 3
    assert standin.writes(iam_mark) == []
    assert audit.writes(kube_mark, namespace_prefix=unique_ns.prefix) == []
    assert standin.snapshot() == {"service_ids": [], "api_keys": [], "policies": []}
    assert_no_leak(result.stdout + result.stderr, canary)


def test_first_run_creates_everything_and_rerun_is_no_change_with_zero_writes(plays, standin, audit,
                                                                              unique_ns, core, canary):
    names = [unique_ns("a"), unique_ns("b")]
    for name in names:
        wait_for_sa(core, name)
    tasks = seed_tasks("c2", names)
    check = plays.run(tasks, check=True)
    assert check.rc == 0, check.stdout[-3000:]

    iam_mark, kube_mark = standin.mark(), audit.mark()
    first = plays.run(tasks)
    assert first.rc == 0, first.stdout[-3000:]
    assert all(first[t]["changed"] for t in ("sid", "policy", "key"))
    # Check mode predicted the same per-namespace actions and policies.
    assert [r["action"] for r in check["key"]["results"]] == [r["action"] for r in first["key"]["results"]]
    assert [(p["action"], p["roles"], p["region"]) for p in check["policy"]["policies"]] == \
        [(p["action"], p["roles"], p["region"]) for p in first["policy"]["policies"]]
    writes = [(w["method"], w["path"].split("/")[2]) for w in standin.writes(iam_mark)]
    assert writes == [("POST", "serviceids"), ("POST", "policies"), ("POST", "apikeys")]
    assert audit.writes(kube_mark, namespace_prefix=unique_ns.prefix)

    state = standin.snapshot()
    (sid,) = state["service_ids"]
    (policy,) = state["policies"]
    (key,) = state["api_keys"]
    assert sid["name"] == "c2-team-id" and first["sid"]["service_id"]["id"] == sid["id"]
    assert [r["role_id"] for r in policy["control"]["grant"]["roles"]] == [ROLE_CRN + "Reader"]
    assert {"key": "region", "operator": "stringEquals", "value": "us-south"} in policy["resource"]["attributes"]
    assert key["name"] == "c2-team-key" and key["iam_id"] == sid["iam_id"] and MARKER in key["description"]
    result_key = first["key"]["api_key"]
    assert result_key["id"] == key["id"] and result_key["action"] == "created"
    minted = set()
    for name in names:
        values, servers = secret_passwords(core, name, "icr-io")
        assert servers == ["icr.io", "private.icr.io", "private.us.icr.io", "us.icr.io"]
        assert len(values) == 1 and key_id_of(standin, next(iter(values))) == key["id"]
        minted |= values
        assert pull_refs(core, name) == ["icr-io"]
    # The key's fingerprint is the collection's one fingerprint (scrypt), not a plain hash of the value.
    from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (  # pylint: disable=import-outside-toplevel
        fingerprint,
    )
    assert result_key["fingerprint"] == fingerprint(next(iter(minted)))
    assert result_key["fingerprint"] != "sha256:" + hashlib.sha256(next(iter(minted)).encode()).hexdigest()

    iam_mark, kube_mark = standin.mark(), audit.mark()
    second = plays.run(tasks)
    assert second.rc == 0, second.stdout[-3000:]
    assert not any(second[t]["changed"] for t in ("sid", "policy", "key"))
    assert second["key"]["api_key"]["action"] == "unchanged" and second["key"]["api_key"]["id"] == key["id"]
    assert standin.writes(iam_mark) == []
    assert audit.writes(kube_mark, namespace_prefix=unique_ns.prefix) == []
    # A rerun is reads only: one token, lookups, listings - and the key by value, in a header.
    details = [r for r in standin.requests() if r["seq"] > iam_mark and r["path"] == "/v1/apikeys/details"]
    assert len(details) == 1 and details[0]["query"] == []

    text = json.dumps(first.tasks) + json.dumps(second.tasks) + first.stderr + second.stderr
    assert_no_leak(text, canary, *minted)


def test_rotation_leaves_one_collection_key_everywhere_and_keeps_foreign_keys(
        plays, standin, audit, unique_ns, core, canary):
    names = [unique_ns("a"), unique_ns("b"), unique_ns("c")]
    first = plays.run(seed_tasks("c3", names), key_in_env=False)
    assert first.rc == 0, first.stdout[-3000:]
    old_values, _servers = secret_passwords(core, names[0], "icr-io")
    sid = standin.snapshot()["service_ids"][0]
    # Keys somebody else made for the same service ID: another name, and the same name by hand.
    foreign_id, foreign_value = standin.create_api_key_directly(sid["iam_id"], "ci-push-key", "made by hand")
    twin_id, twin_value = standin.create_api_key_directly(sid["iam_id"], "c3-team-key", "same name, by hand")

    iam_mark, kube_mark = standin.mark(), audit.mark()
    rotated = plays.run(seed_tasks("c3", names, rotate=True), key_in_env=False, diff=True, verbosity=4, raw=True)
    assert rotated.rc == 0, rotated.stdout[-3000:]
    assert recap_changed(rotated.stdout) == 1
    new_values = set()
    for name in names:
        values, _servers = secret_passwords(core, name, "icr-io")
        new_values |= values
    assert len(new_values) == 1 and new_values.isdisjoint(old_values)
    (ours,) = our_keys(standin, "c3-team-key")
    assert key_id_of(standin, next(iter(new_values))) == ours["id"]
    remaining = set(k["id"] for k in standin.snapshot()["api_keys"])
    assert {foreign_id, twin_id} <= remaining and len(remaining) == 3
    assert key_id_of(standin, next(iter(old_values))) is None  # the old key is gone
    # IAM: one create, then deletes after the secrets were updated; cluster: 3 updates.
    assert [w["method"] for w in standin.writes(iam_mark)] == ["POST", "DELETE"]
    assert sorted(w["verb"] for w in audit.writes(kube_mark, namespace_prefix=unique_ns.prefix)) == ["patch"] * 3
    assert_no_leak(rotated.stdout + rotated.stderr, canary, foreign_value, twin_value,
                   *(old_values | new_values))

    again = plays.run(seed_tasks("c3", names), key_in_env=False)
    assert again.rc == 0 and again["key"]["changed"] is False
    assert again["key"]["api_key"]["id"] == ours["id"]


def test_rotation_that_cannot_update_a_secret_keeps_the_old_key(plays, standin, unique_ns, core):
    names = [unique_ns("a"), unique_ns("b")]
    assert plays.run(seed_tasks("c4", names)).rc == 0
    (old,) = our_keys(standin, "c4-team-key")
    # Somebody replaced the secret in b with one of another type: it cannot be updated.
    core.delete_namespaced_secret("icr-io", names[1])
    core.create_namespaced_secret(names[1], {"metadata": {"name": "icr-io"}, "type": "Opaque",
                                             "data": {"x": base64.b64encode(b"y").decode()}})
    # Asked to replace secrets it did not create, the module cannot parse that one.
    tasks = seed_tasks("c4", names, rotate=True)
    tasks[2]["ibmcloud.registry.iam_pull_secret"]["replace_existing"] = True
    rotated = plays.run(tasks)
    assert rotated.rc != 0
    result = rotated["key"]
    assert names[1] in result["msg"] and result["counts"]["failed"] == 1
    assert result["deleted_api_keys"] == []
    kept = set(k["id"] for k in our_keys(standin, "c4-team-key"))
    assert old["id"] in kept and result["api_key"]["id"] in kept and len(kept) == 2
    values, _servers = secret_passwords(core, names[0], "icr-io")
    assert key_id_of(standin, next(iter(values))) == result["api_key"]["id"]
    assert "rotation incomplete" in rotated.stdout


def test_429_and_5xx_then_success_are_retried(plays, standin, unique_ns, core):
    names = [unique_ns("a")]
    standin.inject_fault("POST", "/identity/token", 503, count=1)
    standin.inject_fault("GET", "/v1/serviceids/", 429, count=2, retry_after=1)
    standin.inject_fault("POST", "/v1/apikeys", 429, count=2, retry_after=1)
    started = time.time()
    result = plays.run(seed_tasks("c5", names))
    assert result.rc == 0, result.stdout[-3000:]
    assert time.time() - started >= 2  # Retry-After was honoured
    log = standin.requests()
    assert [r["status"] for r in log if r["method"] == "POST" and r["path"] == "/v1/apikeys"] == [429, 429, 201]
    assert [r["status"] for r in log if r["path"] == "/identity/token"][:2] == [503, 200]
    values, _servers = secret_passwords(core, names[0], "icr-io")
    assert key_id_of(standin, next(iter(values))) is not None


def test_retries_running_out_fail_with_call_status_and_transaction(plays, standin, unique_ns, canary):
    standin.inject_fault("GET", "/v1/serviceids/", 429, count=100, retry_after=0)
    result = plays.run([{"name": "sid", "ibmcloud.registry.iam_service_id": {"name": "x", "iam_retries": 1}}])
    assert result.rc != 0
    message = result["sid"]["msg"]
    assert "list_service_ids (GET /v1/serviceids/)" in message and "status 429" in message
    assert "transaction ID standin-" in message
    assert_no_leak(json.dumps(result.tasks), canary)


def test_policy_replaced_with_if_match_and_exclusive_removes_the_rest(plays, standin):
    assert plays.run([{"name": "sid", "ibmcloud.registry.iam_service_id": {"name": "pol-id"}}]).rc == 0
    iam_id = standin.snapshot()["service_ids"][0]["iam_id"]

    def body(role, region):
        attributes = [{"key": "accountId", "operator": "stringEquals", "value": ACCOUNT},
                      {"key": "serviceName", "operator": "stringEquals", "value": "container-registry"},
                      {"key": "region", "operator": "stringEquals", "value": region}]
        return {"type": "access", "control": {"grant": {"roles": [{"role_id": ROLE_CRN + role}]}},
                "subject": {"attributes": [{"key": "iam_id", "operator": "stringEquals", "value": iam_id}]},
                "resource": {"attributes": attributes}}

    manager = standin.create_policy_directly(body("Manager", "us-south"))
    writer = standin.create_policy_directly(body("Writer", "eu-de"))
    task = {"name": "p", "ibmcloud.registry.iam_registry_policy": {
        "service_id": "pol-id", "roles": ["reader"], "regions": ["us-south"]}}

    mark = standin.mark()
    first = plays.run([task], diff=True)
    assert first.rc == 0, first.stdout[-3000:]
    assert first["p"]["policies"] == [{"id": manager, "roles": ["Reader"], "region": "us-south",
                                       "namespace": "all", "action": "updated"}]
    assert [(w["method"], w["path"]) for w in standin.writes(mark)] == [("PUT", "/v2/policies/" + manager)]
    policies = {p["id"]: p for p in standin.snapshot()["policies"]}
    assert [r["role_id"] for r in policies[manager]["control"]["grant"]["roles"]] == [ROLE_CRN + "Reader"]
    assert writer in policies  # not exclusive: left alone

    exclusive = dict(task, **{"ibmcloud.registry.iam_registry_policy": dict(
        task["ibmcloud.registry.iam_registry_policy"], exclusive=True)})
    second = plays.run([exclusive])
    assert [(p["id"], p["action"]) for p in second["p"]["policies"]] == [
        (manager, "unchanged"), (writer, "deleted")]
    assert set(p["id"] for p in standin.snapshot()["policies"]) == {manager}
    mark = standin.mark()
    third = plays.run([exclusive])
    assert third["p"]["changed"] is False and standin.writes(mark) == []

    absent = plays.run([{"name": "p", "ibmcloud.registry.iam_registry_policy": {
        "service_id": "pol-id", "state": "absent"}}])
    assert [p["action"] for p in absent["p"]["policies"]] == ["deleted"]
    assert standin.snapshot()["policies"] == []


def test_duplicate_service_id_names_fail_with_their_ids_and_id_chooses(plays, standin, canary):
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
    from ibm_platform_services import IamIdentityV1

    identity = IamIdentityV1(authenticator=IAMAuthenticator(canary, url=standin.url))
    identity.set_service_url(standin.url)
    ids = [identity.create_service_id(account_id=ACCOUNT, name="twin").get_result()["id"] for _index in range(2)]
    for sid in ids:
        standin.backdate_service_id(sid, days=7)
    mark = standin.mark()
    result = plays.run([{"name": "sid", "ibmcloud.registry.iam_service_id": {"name": "twin", "description": "d"}}])
    assert result.rc != 0
    assert all(sid in result["sid"]["msg"] for sid in ids) and "choose one by its ID" in result["sid"]["msg"]
    # Made long ago, they are no concurrent create to wait for: one listing, then the error.
    listings = [r for r in standin.requests()
                if r["seq"] > mark and r["method"] == "GET" and r["path"] == "/v1/serviceids/"]
    assert len(listings) == 1, listings
    chosen = plays.run([{"name": "sid", "ibmcloud.registry.iam_service_id": {
        "name": "twin", "id": ids[1], "description": "d"}}], diff=True)
    assert chosen.rc == 0
    assert chosen["sid"]["results"] == [{"namespace": None, "name": "twin", "id": ids[1], "action": "updated"}]
    assert "outcome" not in chosen["sid"]
    assert chosen["sid"]["diff"] == {"before": {"name": "twin", "description": ""},
                                     "after": {"name": "twin", "description": "d"}}


def test_service_id_absent_removes_it_with_its_keys(plays, standin, unique_ns, core):
    names = [unique_ns("a")]
    assert plays.run(seed_tasks("c6", names)).rc == 0
    check = plays.run([{"name": "sid", "ibmcloud.registry.iam_service_id": {
        "name": "c6-team-id", "state": "absent"}}], check=True)
    assert check["sid"]["changed"] is True and len(standin.snapshot()["service_ids"]) == 1
    gone = plays.run([{"name": "sid", "ibmcloud.registry.iam_service_id": {
        "name": "c6-team-id", "state": "absent"}}])
    assert gone["sid"]["results"][0]["action"] == "deleted" and gone["sid"]["counts"]["deleted"] == 1
    assert [k["name"] for k in gone["sid"]["api_keys"]] == ["c6-team-key"]
    assert standin.snapshot() == {"service_ids": [], "api_keys": [], "policies": []}
    again = plays.run([{"name": "sid", "ibmcloud.registry.iam_service_id": {
        "name": "c6-team-id", "state": "absent"}}])
    assert again["sid"]["changed"] is False and again["sid"]["results"][0]["action"] == "absent"


def test_a_secret_holding_a_key_iam_does_not_know_gets_a_new_key(plays, standin, unique_ns, core):
    name = unique_ns("a")
    assert plays.run(seed_tasks("c7", [name])).rc == 0
    (key,) = our_keys(standin, "c7-team-key")
    # The key is deleted in IAM behind our back: the next run mints a new one.
    with standin.state.lock:
        del standin.state.api_keys[key["id"]]
    result = plays.run(seed_tasks("c7", [name]))
    assert result.rc == 0 and result["key"]["api_key"]["action"] == "created"
    values, _servers = secret_passwords(core, name, "icr-io")
    assert key_id_of(standin, next(iter(values))) == result["key"]["api_key"]["id"]


def test_pull_secret_absent_removes_secrets_links_and_our_keys_only(plays, standin, unique_ns, core):
    names = [unique_ns("a"), unique_ns("b")]
    for name in names:
        wait_for_sa(core, name)
    assert plays.run(seed_tasks("c8", names)).rc == 0
    sid = standin.snapshot()["service_ids"][0]
    foreign_id, _foreign_value = standin.create_api_key_directly(sid["iam_id"], "other-key")
    task = seed_tasks("c8", names)[2]
    absent = dict(task, **{"ibmcloud.registry.iam_pull_secret": dict(
        task["ibmcloud.registry.iam_pull_secret"], state="absent")})
    absent["ibmcloud.registry.iam_pull_secret"].pop("rotate")
    gone = plays.run([absent])
    assert gone.rc == 0, gone.stdout[-3000:]
    assert gone["key"]["counts"]["deleted"] == 2
    assert [k["name"] for k in gone["key"]["deleted_api_keys"]] == ["c8-team-key"]
    assert [k["id"] for k in standin.snapshot()["api_keys"]] == [foreign_id]
    for name in names:
        assert pull_refs(core, name) == []
    assert plays.run([absent])["key"]["changed"] is False


def test_role_namespace_mode_follows_the_seed(plays, standin, audit, unique_ns, core, canary):
    names = [unique_ns("a"), unique_ns("b")]
    for name in names:
        wait_for_sa(core, name)
    role_vars = {"iam_pull_secret_mode": "namespace", "iam_pull_secret_cluster_name": "mycluster",
                 "iam_pull_secret_namespaces": names, "iam_pull_secret_policy_regions": ["us-south"],
                 "iam_pull_secret_registry_namespaces": ["payments"]}
    iam_mark, kube_mark = standin.mark(), audit.mark()
    check = plays.role(role_vars, check=True, diff=True, verbosity=4, raw=True)
    assert check.rc == 0, check.stdout[-3000:]
    assert recap_changed(check.stdout) == 6
    assert standin.writes(iam_mark) == [] and audit.writes(kube_mark, namespace_prefix=unique_ns.prefix) == []
    assert_no_leak(check.stdout + check.stderr, canary)

    first = plays.role(role_vars, diff=True, verbosity=4, raw=True)
    assert first.rc == 0, first.stdout[-3000:]
    assert recap_changed(first.stdout) == 6
    state = standin.snapshot()
    assert sorted(s["name"] for s in state["service_ids"]) == ["mycluster-%s-id" % n for n in names]
    for sid in state["service_ids"]:
        namespace = sid["name"][len("mycluster-"):-len("-id")]
        assert sid["description"] == ("Service ID for IBM Cloud Container Registry in Kubernetes cluster "
                                      "mycluster namespace %s" % namespace)
    assert sorted(k["name"] for k in state["api_keys"]) == ["mycluster-%s-key" % n for n in names]
    for policy in state["policies"]:
        values = {a["key"]: a["value"] for a in policy["resource"]["attributes"]}
        assert values == {"accountId": ACCOUNT, "serviceName": "container-registry", "region": "us-south",
                          "resourceType": "namespace", "resource": "payments"}
    minted = set()
    for name in names:
        values, _servers = secret_passwords(core, name, "mycluster-icr-io")
        key = [k for k in state["api_keys"] if k["name"] == "mycluster-%s-key" % name][0]
        assert key_id_of(standin, next(iter(values))) == key["id"]
        minted |= values
        assert pull_refs(core, name) == ["mycluster-icr-io"]
    assert len(minted) == 2  # one key per namespace
    assert_no_leak(first.stdout + first.stderr, canary, *minted)

    iam_mark, kube_mark = standin.mark(), audit.mark()
    second = plays.role(role_vars)
    assert second.rc == 0 and second.stats["localhost"]["changed"] == 0
    assert standin.writes(iam_mark) == [] and audit.writes(kube_mark, namespace_prefix=unique_ns.prefix) == []


# --- the role's cluster mode, on a private cluster (it writes to `default`) ----------------------


@pytest.fixture(scope="module")
def private_cluster():
    """A cluster of its own, from a clean state directory, removed afterwards."""
    localcluster.stop(PRIVATE_CLUSTER_DIR)
    shutil.rmtree(PRIVATE_CLUSTER_DIR, ignore_errors=True)
    info = localcluster.ensure_running(PRIVATE_CLUSTER_DIR)
    yield info
    localcluster.stop(PRIVATE_CLUSTER_DIR)
    shutil.rmtree(PRIVATE_CLUSTER_DIR, ignore_errors=True)


def test_role_cluster_mode_reproduces_cluster_pull_secret_apply(private_cluster, standin, canary, tmp_path):
    private_audit = audit_log.AuditLog(private_cluster.audit_log)
    api_client = k8s_config.new_client_from_config(config_file=private_cluster.fixture_kubeconfig)
    core = k8s.CoreV1Api(api_client)
    plays = IamPlays(Runner(private_cluster.kubeconfig, workdir=str(tmp_path)), standin, canary)
    role_vars = {"iam_pull_secret_cluster_name": "prod-east", "iam_pull_secret_cluster_id": "c0a1b2c3d4e5"}
    # What the cluster had before: the service ID with a registry policy somebody
    # customised, and an all-icr-io in default that this collection did not create.
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator  # pylint: disable=import-outside-toplevel
    from ibm_platform_services import IamIdentityV1  # pylint: disable=import-outside-toplevel

    identity = IamIdentityV1(authenticator=IAMAuthenticator(canary, url=standin.url))
    identity.set_service_url(standin.url)
    sid = identity.create_service_id(account_id=ACCOUNT, name="cluster-c0a1b2c3d4e5",
                                     description="ID for prod-east").get_result()
    writer = standin.create_policy_directly({
        "type": "access", "control": {"grant": {"roles": [{"role_id": ROLE_CRN + "Writer"}]}},
        "subject": {"attributes": [{"key": "iam_id", "operator": "stringEquals", "value": sid["iam_id"]}]},
        "resource": {"attributes": [{"key": "accountId", "operator": "stringEquals", "value": ACCOUNT},
                                    {"key": "serviceName", "operator": "stringEquals", "value": "container-registry"},
                                    {"key": "region", "operator": "stringEquals", "value": "eu-de"}]}})
    theirs = {"auths": {"icr.io": {"username": "iamapikey", "password": "theirs-" + secrets.token_hex(8)}}}
    core.create_namespaced_secret("default", {
        "metadata": {"name": "all-icr-io"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(theirs).encode()).decode()}})
    try:
        # Defaults only add: the Reader policy, nothing else; all-icr-io stays, no key is made.
        iam_mark, kube_mark = standin.mark(), private_audit.mark()
        check = plays.role(role_vars, check=True)
        assert check.rc == 0, check.stdout[-3000:]
        assert check.stats["localhost"]["changed"] == 1
        assert standin.writes(iam_mark) == [] and private_audit.writes(kube_mark) == []
        added = plays.role(role_vars)
        assert added.rc == 0, added.stdout[-3000:]
        assert [(w["method"], w["path"]) for w in standin.writes(iam_mark)] == [("POST", "/v2/policies")]
        assert private_audit.writes(kube_mark) == []
        assert writer in set(p["id"] for p in standin.snapshot()["policies"])
        assert standin.snapshot()["api_keys"] == []
        kept = core.read_namespaced_secret("all-icr-io", "default")
        assert json.loads(base64.b64decode(kept.data[".dockerconfigjson"])) == theirs
        assert "replace_existing" in added.stdout  # the warning says how to replace it

        # Asked to, the role does what the command does: replaces both.
        role_vars.update(iam_pull_secret_replace_existing=True, iam_pull_secret_exclusive_policies=True)
        iam_mark, kube_mark = standin.mark(), private_audit.mark()
        first = plays.role(role_vars, diff=True, verbosity=4, raw=True)
        assert first.rc == 0, first.stdout[-3000:]
        state = standin.snapshot()
        (sid,) = state["service_ids"]
        assert (sid["name"], sid["description"]) == ("cluster-c0a1b2c3d4e5", "ID for prod-east")
        (policy,) = state["policies"]
        assert [r["role_id"] for r in policy["control"]["grant"]["roles"]] == [ROLE_CRN + "Reader"]
        assert {a["key"]: a["value"] for a in policy["resource"]["attributes"]} == {
            "accountId": ACCOUNT, "serviceName": "container-registry"}
        (key,) = state["api_keys"]
        assert key["name"] == "cluster-c0a1b2c3d4e5-key" and key["iam_id"] == sid["iam_id"]
        values, servers = secret_passwords(core, "default", "all-icr-io")
        assert len(servers) == 26 and "icr.io" in servers and "private.us.icr.io" in servers
        assert key_id_of(standin, next(iter(values))) == key["id"]
        assert pull_refs(core, "default") == ["all-icr-io"]
        assert private_audit.writes(kube_mark)
        assert_no_leak(first.stdout + first.stderr, canary, *values)

        iam_mark, kube_mark = standin.mark(), private_audit.mark()
        second = plays.role(role_vars)
        assert second.rc == 0 and second.stats["localhost"]["changed"] == 0
        assert standin.writes(iam_mark) == [] and private_audit.writes(kube_mark) == []
    finally:
        api_client.close()
