"""Faults: conflicts, an API server that goes away, 429/5xx, a world that changes mid-run.

Every case runs the real modules through ``ansible-playbook`` on the suite's private
control plane (tests/functional/reliability/common.py), usually through the fault proxy
(reliability/fault_proxy.py): an HTTPS reverse proxy on loopback that answers chosen
requests with 429/5xx, drops connections, or runs a test hook *after* the API server
answered and *before* the client sees the answer, so that "someone else wrote between
our read and our write" happens deterministically. The proxy forwards the `admin`
token, so the audit log counts the module's own requests as everywhere else.

Already covered elsewhere and not repeated here (docs/reliability.md lists them):
test_pull_secrets.py::test_concurrent_writer_loses_nothing (the ServiceAccount race),
::test_new_namespace_default_sa_is_waited_for, ::test_missing_namespace_fails_after_bounded_wait,
test_iam.py::test_429_and_5xx_then_success_are_retried,
::test_retries_running_out_fail_with_call_status_and_transaction.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import json
import os
import secrets
import threading

import pytest
from kubernetes import client as k8s

from playbook import Runner
from reliability import common
from reliability.common import (  # noqa: F401  pylint: disable=unused-import
    rel_api,
    rel_audit,
    rel_ns,
    reliability_cluster,
)
from reliability.fault_proxy import FaultProxy, write_kubeconfig

pytestmark = pytest.mark.cluster

SECRET = "rel-pull"
# Distinctive values: Ansible masks every occurrence of a no_log value in its output.
PW1, PW2 = "pw-one-" + secrets.token_hex(4), "pw-two-" + secrets.token_hex(4)


@pytest.fixture
def core(rel_api):
    return k8s.CoreV1Api(rel_api)


@pytest.fixture
def proxy(reliability_cluster):
    pki = os.path.join(reliability_cluster.state_dir, "pki")
    with FaultProxy(reliability_cluster.server, reliability_cluster.ca, os.path.join(pki, "apiserver.crt"),
                    os.path.join(pki, "apiserver.key")) as started:
        yield started


@pytest.fixture
def via_proxy(proxy, reliability_cluster, tmp_path):
    """A Runner whose kube tasks go through the fault proxy as `admin`."""
    kubeconfig = write_kubeconfig(str(tmp_path / "proxy.kubeconfig"), proxy.url, reliability_cluster.ca,
                                  reliability_cluster.admin_token, user="admin")
    return Runner(kubeconfig, workdir=str(tmp_path))


def labelled(rel_ns, core, suffixes, sa=True):
    """Namespaces with a label of their own; waits for their `default` ServiceAccounts."""
    label = rel_ns.prefix.strip("-")
    names = [rel_ns(s, labels={"rel": label}) for s in suffixes]
    if sa:
        common.wait_for_service_accounts(core, names)
    return names, "rel=" + label


def pull_secret_task(selector, password, **extra):
    args = {"name": SECRET, "namespace_selector": [selector], "service_accounts": ["default"],
            "registry": {"server": "registry.example.com", "username": "robot", "password": password}}
    args.update(extra)
    return {"name": "t", "ibmcloud.registry.icr_pull_secret": args}


def password_of(core, namespace, name=SECRET):
    secret = core.read_namespaced_secret(name, namespace)
    auths = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]
    return auths["registry.example.com"]["password"]


def refs(core, namespace, sa="default"):
    return [r.name for r in core.read_namespaced_service_account(sa, namespace).image_pull_secrets or []]


def duration(played, name="t"):
    return [seconds for task, _result, seconds in common.task_results(played) if task == name][-1]


# --- conflicts and a world that changes between read and write ------------------------------

def test_secret_update_race_409_is_retried_and_both_edits_survive(via_proxy, proxy, rel_audit, rel_ns, core):
    names, selector = labelled(rel_ns, core, ["a", "b"])
    assert via_proxy.run([pull_secret_task(selector, PW1)]).rc == 0

    def rival(_entry):
        # Another writer edits the secret in b after our LIST and before our write.
        core.patch_namespaced_secret(SECRET, names[1], {"metadata": {
            "labels": {"team": "rival"}, "annotations": {"rival": "was here"}}})

    proxy.after("GET", r"^/api/v1/secrets\?", rival)
    mark = rel_audit.mark()
    played = via_proxy.run([pull_secret_task(selector, PW2)])
    assert played.rc == 0, played.stdout[-3000:]
    assert [r["action"] for r in played["t"]["results"]] == ["updated", "updated"]
    in_b = [(w["verb"], w["code"]) for w in rel_audit.requests(mark, namespace_prefix=names[1])
            if w["resource"] == "secrets"]
    assert in_b == [("patch", 409), ("get", 200), ("patch", 200)], in_b
    for namespace in names:
        assert password_of(core, namespace) == PW2
    theirs = core.read_namespaced_secret(SECRET, names[1]).metadata
    assert theirs.labels["team"] == "rival" and theirs.annotations == {"rival": "was here"}
    assert theirs.labels["app.kubernetes.io/managed-by"] == "ibmcloud.registry"


def test_secret_deleted_between_read_and_write_is_created_again(via_proxy, proxy, rel_audit, rel_ns, core):
    names, selector = labelled(rel_ns, core, ["a", "b"])
    assert via_proxy.run([pull_secret_task(selector, PW1)]).rc == 0
    proxy.after("GET", r"^/api/v1/secrets\?", lambda _entry: core.delete_namespaced_secret(SECRET, names[1]))
    mark = rel_audit.mark()
    played = via_proxy.run([pull_secret_task(selector, PW2)])
    assert played.rc == 0, played.stdout[-3000:]
    assert [(r["namespace"], r["action"]) for r in played["t"]["results"]] == [
        (names[0], "updated"), (names[1], "created")]
    in_b = [(w["verb"], w["code"]) for w in rel_audit.requests(mark, namespace_prefix=names[1])
            if w["resource"] == "secrets"]
    assert in_b == [("patch", 404), ("get", 404), ("create", 201)], in_b
    assert password_of(core, names[1]) == PW2 and refs(core, names[1]) == [SECRET]


def test_secret_deleted_between_runs_is_recreated_and_references_stay_single(via_proxy, rel_audit, rel_ns, core):
    names, selector = labelled(rel_ns, core, ["a", "b", "c"])
    assert via_proxy.run([pull_secret_task(selector, PW1)]).rc == 0
    core.delete_namespaced_secret(SECRET, names[1])                                     # someone deletes it
    core.patch_namespaced_service_account("default", names[2], {"imagePullSecrets": None})  # and a link
    second = via_proxy.run([pull_secret_task(selector, PW1)])
    assert second.rc == 0 and second["t"]["changed"] is True, second.stdout[-3000:]
    assert [r["action"] for r in second["t"]["results"]] == ["unchanged", "created", "unchanged"]
    assert [r["action"] for r in second["t"]["service_accounts"]] == ["unchanged", "unchanged", "updated"]
    for namespace in names:
        assert refs(core, namespace) == [SECRET] and password_of(core, namespace) == PW1
    mark = rel_audit.mark()
    third = via_proxy.run([pull_secret_task(selector, PW1)])
    assert third.rc == 0 and third["t"]["changed"] is False
    assert common.admin_writes(rel_audit, mark) == []


def test_namespaces_created_or_deleted_during_a_run(via_proxy, proxy, rel_ns, core):
    names, selector = labelled(rel_ns, core, ["a", "b", "gone"])
    label = selector.split("=", 1)[1]
    late = rel_ns.prefix + "late"

    def world_changes(_entry):
        # After our namespace LIST was answered: one namespace appears, one is deleted -
        # and is seen as terminating by admission before the module goes on.
        core.create_namespace({"metadata": {"name": late, "labels": {"rel": label}}})
        core.delete_namespace(names[2])
        probe = iter(range(1000))

        def refused():
            try:
                core.create_namespaced_config_map(names[2], {"metadata": {"name": "probe-%d" % next(probe)}})
            except k8s.ApiException as exc:
                return exc.status in (403, 404)
            return False

        common.wait_for("namespace %s to refuse writes" % names[2], refused, timeout=30, interval=0.05)

    proxy.after("GET", r"^/api/v1/namespaces\?labelSelector=", world_changes)
    first = via_proxy.run([pull_secret_task(selector, PW1)])
    result = first["t"]
    assert first.rc != 0
    assert [(r["namespace"], r["action"]) for r in result["results"]] == [
        (names[0], "created"), (names[1], "created"), (names[2], "failed")]
    assert result["msg"].startswith("Secret %s failed in 1 of 3 namespaces (%s: " % (SECRET, names[2]))
    assert "not done: %s; done: %s, %s" % (names[2], names[0], names[1]) in result["msg"]
    assert late not in json.dumps(result["results"])  # not listed, not touched: left for the next run
    common.wait_for("namespace %s to be gone" % names[2],
                    lambda: names[2] not in [n.metadata.name for n in core.list_namespace().items], timeout=60)
    second = via_proxy.run([pull_secret_task(selector, PW1)])
    assert second.rc == 0, second.stdout[-3000:]
    assert [(r["namespace"], r["action"]) for r in second["t"]["results"]] == [
        (names[0], "unchanged"), (names[1], "unchanged"), (late, "created")]
    assert refs(core, late) == [SECRET]


def test_service_account_created_while_the_module_waits_for_it(via_proxy, proxy, rel_audit, rel_ns, core):
    names, selector = labelled(rel_ns, core, ["a", "b"])

    def create_builders(_entry):
        for namespace in names:
            core.create_namespaced_service_account(namespace, {"metadata": {"name": "builder"}})

    # The first LIST of builder accounts finds none; they appear right after it.
    proxy.after("GET", r"^/api/v1/serviceaccounts\?fieldSelector=metadata.name%3Dbuilder", create_builders)
    mark = rel_audit.mark()
    played = via_proxy.run([pull_secret_task(selector, PW1, service_accounts=["builder"],
                                             service_account_timeout=20)])
    assert played.rc == 0, played.stdout[-3000:]
    assert [r["action"] for r in played["t"]["service_accounts"]] == ["updated", "updated"]
    lists = [r for r in rel_audit.requests(mark, verbs={"list"}) if r["resource"] == "serviceaccounts"]
    assert len(lists) >= 2  # it looked, waited, and looked again
    for namespace in names:
        assert refs(core, namespace, "builder") == [SECRET]


# --- 429 / 5xx / dropped connections from the API server ------------------------------------

def _gaps(entries):
    times = [e["time"] for e in entries]
    return [later - earlier for earlier, later in zip(times, times[1:])]


def test_transient_429_5xx_and_dropped_connections_are_retried(via_proxy, proxy, rel_audit, rel_ns, core):
    names, selector = labelled(rel_ns, core, ["a", "b", "c"])
    proxy.fail("GET", r"^/api/v1/namespaces\?", 500, count=1)
    proxy.fail("GET", r"^/api/v1/secrets\?", 429, count=2, retry_after=1)
    proxy.fail("POST", r"/secrets$", 503, count=2)
    proxy.drop("PATCH", r"/serviceaccounts/default$", count=1)
    mark = rel_audit.mark()
    played = via_proxy.run([pull_secret_task(selector, PW1)])
    assert played.rc == 0, played.stdout[-3000:]
    assert played["t"]["counts"]["created"] == 3
    assert duration(played) < 30

    listing = proxy.entries("GET", r"^/api/v1/secrets\?")
    assert [e["status"] for e in listing] == [429, 429, 200]
    assert all(gap >= 0.9 for gap in _gaps(listing)), _gaps(listing)   # Retry-After: 1 honoured
    assert [e["status"] for e in proxy.entries("GET", r"^/api/v1/namespaces\?")] == [500, 200]
    posts = proxy.entries("POST", r"/secrets$")
    assert sorted(e["status"] for e in posts) == [201, 201, 201, 503, 503]
    by_path = collections.defaultdict(list)
    for entry in posts:
        by_path[entry["path"]].append(entry)
    for retried in by_path.values():
        assert all(gap >= 0.09 for gap in _gaps(retried)), _gaps(retried)  # backoff, not a busy loop
    assert [e["fault"] for e in proxy.entries("PATCH")].count("drop") == 1

    # The API server saw exactly one create and one link per namespace: nothing doubled.
    writes = collections.Counter((w["verb"], w["resource"], w["code"]) for w in common.admin_writes(rel_audit, mark))
    assert writes == {("create", "secrets", 201): 3, ("patch", "serviceaccounts", 200): 3}, writes
    for namespace in names:
        assert refs(core, namespace) == [SECRET]


def test_persistent_429_and_503_fail_in_bounded_time_with_a_clear_message(
        via_proxy, proxy, rel_audit, rel_ns, core):
    names, selector = labelled(rel_ns, core, ["a", "b", "c"])
    proxy.fail("GET", r"^/api/v1/secrets\?", 429, count=1000)
    mark = rel_audit.mark()
    played = via_proxy.run([pull_secret_task(selector, PW1, api_retries=3)])
    message = played["t"]["msg"]
    assert played.rc != 0
    assert message.startswith("Failed (429) to list Secret in all namespaces: injected by the test's fault proxy")
    assert message.endswith("; nothing was written")
    assert len(proxy.entries("GET", r"^/api/v1/secrets\?")) == 4          # 1 + api_retries
    assert duration(played) < 20                                          # backoff 0.2 s doubling, bounded
    assert common.admin_writes(rel_audit, mark) == []

    proxy.clear()
    proxy.fail("POST", r"^/api/v1/namespaces/%s/secrets$" % names[1], 503, count=1000)
    played = via_proxy.run([pull_secret_task(selector, PW1, api_retries=2)])
    result = played["t"]
    assert played.rc != 0
    assert [r["action"] for r in result["results"]] == ["created", "failed", "created"]
    assert result["results"][1]["error"].startswith(
        "Failed (503) to create Secret %s in namespace %s: injected by the test's fault proxy" % (SECRET, names[1]))
    assert "not done: %s; done: %s, %s" % (names[1], names[0], names[2]) in result["msg"]
    assert len(proxy.entries("POST", names[1])) == 3
    assert [r["namespace"] for r in result["service_accounts"]] == [names[0], names[2]]  # linked where it exists
    assert refs(core, names[1]) == []


# --- the IAM stand-in -----------------------------------------------------------------------

@pytest.fixture
def iam():
    import iam_server  # pylint: disable=import-outside-toplevel

    server = iam_server.IamStandIn().start()
    key = "CANARY-faults-" + secrets.token_urlsafe(16)
    server.add_admin_key(key)
    yield server, key
    server.stop()


def test_iam_faults_on_the_key_path_retry_then_fail_cleanly(iam, reliability_cluster, rel_audit, rel_ns, core,
                                                            tmp_path):
    standin, key = iam
    names, _selector = labelled(rel_ns, core, ["a"])
    runner = Runner(reliability_cluster.kubeconfig, workdir=str(tmp_path))

    def tasks(**extra):
        args = {"service_id": "faults-id", "namespaces": names, "name": "icr", "regions": ["us-south"],
                "iam_url": standin.url, "ibmcloud_api_key": key, "iam_retries": 2}
        args.update(extra)
        service_id = {"name": "faults-id", "iam_url": standin.url, "ibmcloud_api_key": key}
        return [{"name": "sid", "ibmcloud.registry.iam_service_id": service_id},
                {"name": "t", "ibmcloud.registry.iam_pull_secret": args}]

    # Minting keeps failing: bounded retries, a message naming the call, nothing in the cluster.
    standin.inject_fault("POST", "/v1/apikeys", 503, count=1000)
    iam_mark, kube_mark = standin.mark(), rel_audit.mark()
    played = runner.run([], plays=common.play(tasks(), reliability_cluster.kubeconfig))
    message = played["t"]["msg"]
    assert played.rc != 0
    assert "create_api_key (POST /v1/apikeys) failed with status 503" in message and "after 3 attempts" in message
    assert [w["status"] for w in standin.writes(iam_mark) if w["path"] == "/v1/apikeys"] == [503, 503, 503]
    assert duration(played) < 30
    assert common.admin_writes(rel_audit, kube_mark) == []
    assert standin.snapshot()["api_keys"] == []
    assert key not in played.stdout + played.stderr

    # Transient 429 and 5xx on the way: the run succeeds; a rerun reuses the key.
    standin.state.faults.clear()
    standin.inject_fault("POST", "/v1/apikeys", 429, count=2, retry_after=1)
    standin.inject_fault("GET", "/v1/serviceids/", 502, count=1)
    played = runner.run([], plays=common.play(tasks(), reliability_cluster.kubeconfig))
    assert played.rc == 0, played.stdout[-3000:]
    assert played["t"]["api_key"]["action"] == "created"
    standin.inject_fault("GET", "/v1/apikeys/details", 503, count=2)
    again = runner.run([], plays=common.play(tasks(), reliability_cluster.kubeconfig))
    assert again.rc == 0 and again["t"]["changed"] is False and again["t"]["api_key"]["action"] == "unchanged"
    assert [r["status"] for r in standin.requests() if r["path"] == "/v1/apikeys/details"][-3:] == [503, 503, 200]


# --- kube-apiserver stopped in the middle of a many-namespace run ----------------------------

NAMESPACES = 300


def test_apiserver_stopped_mid_run_reports_done_and_not_done_then_rerun_converges(
        reliability_cluster, rel_audit, core, tmp_path):
    # Not rel_ns: deleting 300 namespaces would keep the controller-manager busy during the
    # tests that follow. They stay until the private cluster is removed at the session's end.
    prefix = "r-stop-%s-" % secrets.token_hex(3)
    label = prefix.strip("-")
    names = ["%s%03d" % (prefix, index) for index in range(NAMESPACES)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda name: core.create_namespace({"metadata": {"name": name, "labels": {"rel": label}}}),
                      names))
    common.wait_for_service_accounts(core, names, timeout=180)
    runner = Runner(reliability_cluster.kubeconfig, workdir=str(tmp_path))
    # api_retries=1 keeps the doomed part short (default: 5 tries with backoff per namespace);
    # parallelism=4 leaves time to stop the API server half-way.
    task = pull_secret_task("rel=" + label, PW1, api_retries=1, parallelism=4)
    mark = rel_audit.mark()
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(played=runner.run([task])))
    thread.start()
    needles = (b'"stage":"ResponseComplete"', b'"verb":"create"', b'"resource":"secrets"', b'"username":"admin"')
    common.wait_for("the module's first secrets", lambda: common.raw_count(
        reliability_cluster.audit_log, mark, needles) >= 40, timeout=120, interval=0.02)
    argv = common.kill_apiserver(reliability_cluster.state_dir)
    thread.join(timeout=600)
    played = outcome["played"]
    result = played["t"]
    assert played.rc != 0
    by_action = collections.defaultdict(list)
    for item in result["results"]:
        by_action[item["action"]].append(item["namespace"])
    done, not_done = by_action["created"], by_action["failed"]
    assert len(done) >= 40 and not_done and len(done) + len(not_done) == NAMESPACES
    assert "Could not reach the API server to create Secret %s in namespace" % SECRET in result["msg"]
    secrets_message = result["msg"].split("; Linking secret")[0]
    assert secrets_message.startswith("Secret %s failed in %d of %d namespaces" % (SECRET, len(not_done), NAMESPACES))
    assert secrets_message.endswith("; not done: %s; done: %s" % (", ".join(not_done), ", ".join(done)))
    # The links were not made (the API server was gone): they are listed as not done either.
    assert all(item["action"] == "failed" for item in result["service_accounts"])
    assert "Linking secret %s to service accounts failed in %d of %d namespaces" % (
        SECRET, len(done), len(done)) in result["msg"]

    restarted = common.restart_apiserver(argv, reliability_cluster.state_dir)
    assert restarted is not None and restarted.server == reliability_cluster.server
    present = set(s.metadata.namespace for s in core.list_secret_for_all_namespaces(
        field_selector="metadata.name=%s" % SECRET).items)
    assert set(done) <= present                                    # what it said it did, it did
    assert len(present - set(done)) <= 4                           # at most the requests in flight

    rerun = runner.run([pull_secret_task("rel=" + label, PW1)])
    assert rerun.rc == 0, rerun.stdout[-3000:]
    counts = rerun["t"]["counts"]
    assert counts["created"] + counts["unchanged"] == NAMESPACES and counts["failed"] == 0
    assert counts["unchanged"] >= len(done)
    listed = core.list_secret_for_all_namespaces(label_selector="app.kubernetes.io/managed-by=ibmcloud.registry")
    per_namespace = collections.Counter(s.metadata.namespace for s in listed.items if s.metadata.namespace in names)
    assert per_namespace == {name: 1 for name in names}            # exactly one secret each
    accounts = core.list_service_account_for_all_namespaces(field_selector="metadata.name=default").items
    linked = {a.metadata.namespace: [r.name for r in a.image_pull_secrets or []] for a in accounts}
    assert all(linked[name] == [SECRET] for name in names)        # exactly one reference each
    mark = rel_audit.mark()
    third = runner.run([pull_secret_task("rel=" + label, PW1)])
    assert third.rc == 0 and third["t"]["changed"] is False and common.admin_writes(rel_audit, mark) == []
