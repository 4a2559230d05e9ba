"""API key rotation done right, against the local cluster and the IAM stand-in.

The order the module keeps: mint the new key, log in with it (the IAM token exchange a
registry's token service makes for `iamapikey` logins), update every secret, and only
then delete the old keys - or, with a grace period, mark them so that a later run deletes
them. A new key that cannot log in changes no secret; a secret that cannot take the new
key (here its namespace denies the update through RBAC) keeps its old key valid, and the
result names that namespace. playbooks/rotate_api_key.yml is run as a user runs it.

IBM Cloud IAM is the LOCAL STAND-IN (tests/standins/iam_server.py); cluster writes are
counted in the real API server's audit log.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time

import pytest
import requests
import yaml
from kubernetes import client as k8s

import test_iam as iam_tests
from playbook import Runner

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "standins"))

import iam_server  # noqa: E402  pylint: disable=wrong-import-position
from iam_fixtures import canary, standin  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
from reliability.common import service_account_token  # noqa: E402  pylint: disable=wrong-import-position
from reliability.fault_proxy import write_kubeconfig  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster


@pytest.fixture
def plays(runner, standin, canary):
    return iam_tests.IamPlays(runner, standin, canary)


@pytest.fixture
def core(kube_fixture_client):
    return k8s.CoreV1Api(kube_fixture_client)


def key_task(sid, key_name, namespaces, **options):
    return {"name": "key", "ibmcloud.registry.iam_pull_secret": dict(
        service_id=sid, api_key_name=key_name, name="icr-io", regions=["us-south"], namespaces=namespaces,
        **options)}


def setup(plays, core, name, namespaces):
    """Service ID with Reader, and its key in every namespace's icr-io; returns (sid, key value)."""
    for namespace in namespaces:
        iam_tests.wait_for_sa(core, namespace)
    tasks = [{"name": "sid", "ibmcloud.registry.iam_service_id": {"name": name + "-id"}},
             {"name": "policy", "ibmcloud.registry.iam_registry_policy": {"service_id": name + "-id"}},
             key_task(name + "-id", name + "-key", namespaces, service_accounts=["default"])]
    first = plays.run(tasks)
    assert first.rc == 0, first.stdout[-3000:]
    values = held(core, namespaces)
    assert len(set(values.values())) == 1
    return plays.standin.snapshot()["service_ids"][0], next(iter(values.values()))


def held(core, namespaces):
    """namespace -> the one iamapikey value its icr-io holds."""
    found = {}
    for namespace in namespaces:
        values, _servers = iam_tests.secret_passwords(core, namespace, "icr-io")
        assert len(values) == 1
        found[namespace] = next(iter(values))
    return found


def logs_in(standin, value):
    """The token exchange a registry's token service makes for `iamapikey` and that key."""
    response = requests.post(standin.url + "/identity/token", timeout=10, data={
        "grant_type": iam_server.GRANT_TYPE_APIKEY, "apikey": value})
    return response.status_code == 200


def audit_time(event_time):
    return datetime.datetime.strptime(event_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


# --- the playbook -------------------------------------------------------------------------------


def test_rotate_api_key_playbook_logs_in_with_the_new_key_before_deleting_the_old(
        plays, standin, audit, cluster, core, unique_ns, tmp_path):
    namespaces = [unique_ns("a"), unique_ns("b")]
    for namespace in namespaces:
        iam_tests.wait_for_sa(core, namespace)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"clusters": {
        "hosts": {"rot": {"k8s_kubeconfig": cluster.kubeconfig}},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}))
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump({"iam_pull_secret": {
        "mode": "namespace", "cluster_name": "rot", "namespaces": namespaces, "iam_url": standin.url,
        "policy_regions": ["us-south"], "regions": ["us-south"]}}))

    def playbook(check=False):
        return plays.runner.run([], plays=[{"ansible.builtin.import_playbook": "ibmcloud.registry.rotate_api_key"}],
                                inventory=str(inventory), check=check, raw=True,
                                args=("-e", "@" + str(vars_file)), env={"IC_API_KEY": plays.canary})

    # The keys to rotate: what site.yml's iam_pull_secret part makes, through the role.
    made = plays.role({"iam_pull_secret_mode": "namespace", "iam_pull_secret_cluster_name": "rot",
                       "iam_pull_secret_namespaces": namespaces, "iam_pull_secret_regions": ["us-south"],
                       "iam_pull_secret_policy_regions": ["us-south"]})
    assert made.rc == 0, made.stdout[-3000:]
    old = {}
    for namespace in namespaces:
        values, _servers = iam_tests.secret_passwords(core, namespace, "rot-icr-io")
        old[namespace] = next(iter(values))
    old_ids = {ns: iam_tests.key_id_of(standin, value) for ns, value in old.items()}

    iam_mark, kube_mark = standin.mark(), audit.mark()
    check = playbook(check=True)
    assert check.rc == 0, check.stdout[-3000:]
    assert standin.writes(iam_mark) == [] and audit.writes(kube_mark, namespace_prefix=unique_ns.prefix) == []

    iam_mark, kube_mark = standin.mark(), audit.mark()
    rotated = playbook()
    assert rotated.rc == 0, rotated.stdout[-3000:]
    state = standin.snapshot()
    log = [entry for entry in standin.requests() if entry["seq"] > iam_mark]
    patches = {event["objectRef"]["namespace"]: audit_time(event["stageTimestamp"])
               for event in audit.events(kube_mark, "admin")
               if event.get("verb") == "patch" and event["objectRef"].get("resource") == "secrets"
               and event["objectRef"].get("namespace") in namespaces}
    for namespace in namespaces:
        values, _servers = iam_tests.secret_passwords(core, namespace, "rot-icr-io")
        (new,) = values
        new_id = iam_tests.key_id_of(standin, new)
        assert new != old[namespace] and new_id is not None
        assert iam_tests.key_id_of(standin, old[namespace]) is None and not logs_in(standin, old[namespace])
        sid = [s for s in state["service_ids"] if s["name"] == "rot-%s-id" % namespace][0]
        created = [e for e in log if e["method"] == "POST" and e["path"] == "/v1/apikeys" and e["status"] == 201]
        login = [e for e in log if e["path"] == "/identity/token" and e.get("iam_id") == sid["iam_id"]]
        deleted = [e for e in log if e["method"] == "DELETE" and e["path"] == "/v1/apikeys/" + old_ids[namespace]]
        assert login and deleted and len(deleted) == 1
        # Mint, log in, update the secret, and only then delete the old key.
        assert min(e["seq"] for e in created) < login[0]["seq"] < deleted[0]["seq"]
        assert login[0]["time"] <= patches[namespace] <= deleted[0]["time"]
    assert "new key (logged in before any old key was deleted)" in rotated.stdout
    iam_tests.assert_no_leak(rotated.stdout + rotated.stderr, plays.canary, *old.values())


# --- grace period -------------------------------------------------------------------------------


def test_grace_period_keeps_the_old_key_valid_and_a_later_run_deletes_it(plays, standin, audit, core,
                                                                         unique_ns):
    namespaces = [unique_ns("a")]
    _sid, old_value = setup(plays, core, "grace", namespaces)
    old_id = iam_tests.key_id_of(standin, old_value)

    rotated = plays.run([key_task("grace-id", "grace-key", namespaces, rotate=True, rotation_grace_period=3600)])
    assert rotated.rc == 0, rotated.stdout[-3000:]
    result = rotated["key"]
    assert result["api_key"]["action"] == "created" and result["api_key"]["rotated"] is True
    assert result["deleted_api_keys"] == []
    (retired,) = result["retired_api_keys"]
    assert retired["id"] == old_id and retired["action"] == "updated"
    deadline = datetime.datetime.strptime(retired["delete_after"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert 3500 < deadline - time.time() <= 3600
    assert held(core, namespaces)[namespaces[0]] != old_value
    # Still valid for pulls that use a copy of the old secret, and marked in IAM.
    assert logs_in(standin, old_value)
    record = [k for k in standin.snapshot()["api_keys"] if k["id"] == old_id][0]
    assert "[retired by rotation; delete after %s]" % retired["delete_after"] in record["description"]

    task = key_task("grace-id", "grace-key", namespaces)
    iam_mark, kube_mark = standin.mark(), audit.mark()
    early = plays.run([task])
    assert early.rc == 0 and early["key"]["deleted_api_keys"] == [], early.stdout[-3000:]
    assert early["key"]["changed"] is False
    assert standin.writes(iam_mark) == [] and audit.writes(kube_mark, namespace_prefix=unique_ns.prefix) == []

    # The hour passes: the stand-in's record of the key says so (as IAM's would an hour later).
    past = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    with standin.state.lock:
        stored = standin.state.api_keys[old_id]
        stored["description"] = stored["description"].replace(retired["delete_after"], past)
    iam_mark = standin.mark()
    later = plays.run([task])
    assert later.rc == 0 and later["key"]["changed"] is True
    assert [k["id"] for k in later["key"]["deleted_api_keys"]] == [old_id]
    assert [(w["method"], w["path"]) for w in standin.writes(iam_mark)] == [("DELETE", "/v1/apikeys/" + old_id)]
    assert not logs_in(standin, old_value)

    iam_mark = standin.mark()
    assert plays.run([task])["key"]["changed"] is False and standin.writes(iam_mark) == []


# --- failures midway ----------------------------------------------------------------------------


def test_a_new_key_that_cannot_log_in_is_deleted_and_no_secret_changes(plays, standin, audit, core, unique_ns):
    namespaces = [unique_ns("a"), unique_ns("b")]
    _sid, old_value = setup(plays, core, "nologin", namespaces)
    old_id = iam_tests.key_id_of(standin, old_value)
    # The task's own token exchange goes through; the next one, the new key's login, fails.
    standin.inject_fault("POST", "/identity/token", 400, count=1, skip=1)
    iam_mark, kube_mark = standin.mark(), audit.mark()
    rotated = plays.run([key_task("nologin-id", "nologin-key", namespaces, rotate=True)])
    assert rotated.rc != 0
    result = rotated["key"]
    assert "the new API key could not log in" in result["msg"] and "no secret was changed" in result["msg"]
    assert result["namespaces_holding_old_key"] == sorted(namespaces)
    assert all(namespace in result["msg"] for namespace in namespaces)
    new_id = result["api_key"]["id"]
    assert [(w["method"], w["path"]) for w in standin.writes(iam_mark)] == [
        ("POST", "/v1/apikeys"), ("DELETE", "/v1/apikeys/" + new_id)]
    assert audit.writes(kube_mark, namespace_prefix=unique_ns.prefix) == []
    assert set(held(core, namespaces).values()) == {old_value} and logs_in(standin, old_value)
    assert [k["id"] for k in iam_tests.our_keys(standin, "nologin-key")] == [old_id]


def restricted_kubeconfig(cluster, fixture_api, unique_ns, writable, workdir):
    """A ServiceAccount that reads secrets everywhere but may write them only in ``writable``."""
    core = k8s.CoreV1Api(fixture_api)
    rbac = k8s.RbacAuthorizationV1Api(fixture_api)
    ids = unique_ns("ids")
    core.create_namespaced_service_account(ids, {"metadata": {"name": "rotator"}})
    subject = [{"kind": "ServiceAccount", "name": "rotator", "namespace": ids}]
    name = unique_ns.prefix + "rotator"
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": [
        {"apiGroups": [""], "resources": ["secrets", "namespaces"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "patch"]}]})
    rbac.create_cluster_role_binding({"metadata": {"name": name}, "subjects": subject, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}})
    for namespace in writable:
        rbac.create_namespaced_role(namespace, {"metadata": {"name": "rotator"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "patch", "update"]}]})
        rbac.create_namespaced_role_binding(namespace, {"metadata": {"name": "rotator"}, "subjects": subject,
                                                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                                    "kind": "Role", "name": "rotator"}})
    token = service_account_token(core, ids, "rotator")
    path = write_kubeconfig(os.path.join(workdir, "rotator.kubeconfig"), cluster.server, cluster.ca, token,
                            user="rotator")
    return path, name


def test_a_secret_that_cannot_take_the_new_key_keeps_the_old_key_and_is_named(
        plays, standin, cluster, kube_fixture_client, core, unique_ns, tmp_path):
    namespaces = [unique_ns("a"), unique_ns("b"), unique_ns("c")]
    _sid, old_value = setup(plays, core, "midway", namespaces)
    old_id = iam_tests.key_id_of(standin, old_value)
    kubeconfig, cluster_objects = restricted_kubeconfig(cluster, kube_fixture_client, unique_ns,
                                                        [namespaces[0], namespaces[2]], str(tmp_path))
    rbac = k8s.RbacAuthorizationV1Api(kube_fixture_client)
    try:
        restricted = iam_tests.IamPlays(Runner(kubeconfig, workdir=str(tmp_path)), standin, plays.canary)
        rotated = restricted.run([key_task("midway-id", "midway-key", namespaces, rotate=True)])
        assert rotated.rc != 0
        result = rotated["key"]
        assert result["namespaces_holding_old_key"] == [namespaces[1]]
        assert namespaces[1] in result["msg"] and result["counts"]["failed"] == 1
        assert result["deleted_api_keys"] == []
        new_id = result["api_key"]["id"]
        values = held(core, namespaces)
        assert values[namespaces[1]] == old_value and logs_in(standin, old_value)
        assert {iam_tests.key_id_of(standin, values[ns]) for ns in (namespaces[0], namespaces[2])} == {new_id}
        # The old key is kept, marked, so that the run that updates every secret deletes it.
        assert [k["id"] for k in result["retired_api_keys"]] == [old_id]
        assert "rotation incomplete" in rotated.stdout
        assert_json_has_no_value(rotated, old_value)
    finally:
        rbac.delete_cluster_role_binding(cluster_objects)
        rbac.delete_cluster_role(cluster_objects)

    # Fixed (here: with the full identity again), a plain run finishes the rotation.
    finished = plays.run([key_task("midway-id", "midway-key", namespaces)])
    assert finished.rc == 0, finished.stdout[-3000:]
    assert [r["action"] for r in finished["key"]["results"]] == ["unchanged", "updated", "unchanged"]
    assert [k["id"] for k in finished["key"]["deleted_api_keys"]] == [old_id]
    assert {iam_tests.key_id_of(standin, v) for v in held(core, namespaces).values()} == {new_id}
    assert not logs_in(standin, old_value)
    assert plays.run([key_task("midway-id", "midway-key", namespaces)])["key"]["changed"] is False


def assert_json_has_no_value(result, value):
    iam_tests.assert_no_leak(json.dumps(result.tasks) + result.stderr, value)
