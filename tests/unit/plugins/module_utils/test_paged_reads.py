# -*- coding: utf-8 -*-
"""Reads whose memory follows the target set: paged LISTs reduced as each page arrives."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import client as kube
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import service_accounts as sa
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import dockerconfig as dc
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import plan as ps

DESIRED = dc.build_dockerconfig(["us.icr.io", "de.icr.io"], "iamapikey", "key-1")
OTHER = dc.build_dockerconfig(["us.icr.io"], "iamapikey", "key-2")


class Response:
    def __init__(self, body):
        self.data = json.dumps(body).encode()


class PagedList:
    """A LIST endpoint over ``objects`` that honours limit and _continue, and records them."""

    def __init__(self, objects):
        self.objects = objects
        self.requests = []

    def __call__(self, _preload_content=True, limit=None, _continue=None, field_selector=None):
        self.requests.append({"limit": limit, "continue": _continue, "field_selector": field_selector})
        start = int(_continue or 0)
        end = start + limit
        metadata = {"continue": str(end)} if end < len(self.objects) else {}
        return Response({"items": self.objects[start:end], "metadata": metadata})


class Core:
    def __init__(self, secrets=(), accounts=()):
        self.list_secret_for_all_namespaces = PagedList(list(secrets))
        self.list_service_account_for_all_namespaces = PagedList(list(accounts))


def kube_client(core):
    client = kube.KubeClient.__new__(kube.KubeClient)
    client.core, client.retries, client._sleep = core, 0, None
    return client


def secret(namespace, config=None, managed=True, secret_type=dc.DOCKERCONFIGJSON_TYPE, data=None):
    config = config or DESIRED
    labels = {ps.MANAGED_BY_LABEL: ps.MANAGED_BY_VALUE, "team": "a"} if managed else {"team": "a"}
    return {"type": secret_type, "data": data if data is not None else dc.encode_secret_data(config),
            "metadata": {"name": "s", "namespace": namespace, "labels": labels, "resourceVersion": "7",
                         "uid": "u-" + namespace, "managedFields": [{"manager": "x"}]}}


def test_find_named_keeps_only_target_namespaces_reduced_page_by_page():
    crowd = [secret("other-%04d" % i) for i in range(1000)]
    core = Core(secrets=crowd[:400] + [secret("t1"), secret("t2")] + crowd[400:])
    kept = []
    found = kube.find_named(kube_client(core), "Secret", "s", ["t1", "t2"],
                            keep=lambda obj: kept.append(obj["metadata"]["namespace"]) or "summary")
    assert found == {"t1": "summary", "t2": "summary"}
    assert kept == ["t1", "t2"]  # objects of other namespaces are never kept or reduced
    requests = core.list_secret_for_all_namespaces.requests
    # A small target set reads pages of MIN_NAMED_PAGE: 1002 objects in 3 requests.
    assert [r["limit"] for r in requests] == [kube.MIN_NAMED_PAGE] * 3
    assert requests[0]["field_selector"] == "metadata.name=s"


def test_page_size_follows_the_target_set_within_bounds():
    assert kube.named_page_size(2) == kube.MIN_NAMED_PAGE
    # A no-op rerun at N=1000 stays one LIST: the page is not filled exactly.
    assert kube.named_page_size(1000) == 1000 + kube.NAMED_PAGE_SLACK
    assert kube.named_page_size(20000) == kube.LIST_PAGE_SIZE
    assert kube.named_page_size(5000, 1000) == 1000


def test_secrets_and_service_accounts_of_1500_namespaces_are_one_list_each():
    names = ["ns-%04d" % i for i in range(1500)]
    core = Core(secrets=[secret(ns) for ns in names],
                accounts=[{"metadata": {"name": "s", "namespace": ns, "resourceVersion": "1"}} for ns in names])
    client = kube_client(core)
    assert len(kube.find_named(client, "Secret", "s", names, keep=lambda obj: 1)) == 1500
    assert len(kube.find_named(client, "ServiceAccount", "s", names, keep=lambda obj: 1)) == 1500
    page = 1500 + kube.NAMED_PAGE_SLACK
    assert [r["limit"] for r in core.list_secret_for_all_namespaces.requests] == [page]
    assert [r["limit"] for r in core.list_service_account_for_all_namespaces.requests] == [page]


def test_find_named_default_keep_drops_managed_fields():
    core = Core(secrets=[secret("a"), secret("b")])
    found = kube.find_named(kube_client(core), "Secret", "s", ["a", "b"])
    assert "managedFields" not in found["a"]["metadata"] and found["b"]["metadata"]["uid"] == "u-b"


def test_list_json_drops_items_keep_maps_to_none():
    core = Core(secrets=[secret("a"), secret("b"), secret("c")])
    names = kube_client(core).list_json("list Secret", core.list_secret_for_all_namespaces, page_size=2,
                                        keep=lambda obj: None if obj["metadata"]["namespace"] == "b"
                                        else obj["metadata"]["namespace"])
    assert names == ["a", "c"]
    assert [r["continue"] for r in core.list_secret_for_all_namespaces.requests] == [None, "2"]


def test_summary_of_a_secret_that_matches_drops_the_data():
    summary = ps.secret_summary(secret("a"), DESIRED)
    assert summary == {"type": dc.DOCKERCONFIGJSON_TYPE, "matches_desired": True,
                       "metadata": {"resourceVersion": "7", "labels": {ps.MANAGED_BY_LABEL: ps.MANAGED_BY_VALUE}}}
    assert ps.secret_summary(secret("a", OTHER), DESIRED)["matches_desired"] is False
    assert "data" not in ps.secret_summary(secret("a", OTHER), DESIRED)
    # Kept when a diff needs it, or when plan_secret's message needs it.
    assert "data" in ps.secret_summary(secret("a", OTHER), DESIRED, keep_data=True)
    assert "data" in ps.secret_summary(secret("a", data={".dockerconfigjson": "bm90IGpzb24="}), DESIRED)
    assert "data" in ps.secret_summary(secret("a", secret_type="Opaque", data={"x": "eA=="}), DESIRED)


EXISTING = {
    "same": secret("same"),
    "differs": secret("differs", OTHER),
    "unlabelled": secret("unlabelled", managed=False),
    "unlabelled-differs": secret("unlabelled-differs", OTHER, managed=False),
    "opaque": secret("opaque", secret_type="Opaque", data={"x": "eA=="}),
    "unparsable": secret("unparsable", data={".dockerconfigjson": "bm90IGpzb24="}),
    "unparsable-foreign": secret("unparsable-foreign", managed=False, data={".dockerconfigjson": "bm90IGpzb24="}),
    "legacy": secret("legacy", secret_type=dc.DOCKERCFG_TYPE,
                     data={".dockercfg": dc.encode_secret_data(DESIRED["auths"])[".dockerconfigjson"]}),
}
NAMESPACES = sorted(EXISTING) + ["new"]


@pytest.mark.parametrize("state,force", [("present", False), ("present", True), ("absent", False),
                                         ("absent", True)])
def test_plans_from_summaries_are_the_plans_from_whole_secrets(state, force):
    desired = DESIRED if state == "present" else None
    whole = ps.plan_pull_secrets(EXISTING, NAMESPACES, "s", desired, state, force)
    with_data = dict((ns, ps.secret_summary(obj, desired, keep_data=True)) for ns, obj in EXISTING.items())
    without = dict((ns, ps.secret_summary(obj, desired)) for ns, obj in EXISTING.items())
    # With the data kept for a diff: the same plan, before/after included.
    assert ps.plan_pull_secrets(with_data, NAMESPACES, "s", desired, state, force) == whole
    assert ps.plan_diff(ps.plan_pull_secrets(with_data, NAMESPACES, "s", desired, state, force)) == ps.plan_diff(whole)
    # Without a diff: the same actions, errors and resourceVersions.
    keys = ("namespace", "action", "error", "resource_version")
    slim = ps.plan_pull_secrets(without, NAMESPACES, "s", desired, state, force)
    assert [[step.get(k) for k in keys] for step in slim] == [[step.get(k) for k in keys] for step in whole]
    assert ps.predicted_results(slim) == ps.predicted_results(whole)


def test_link_view_keeps_what_linking_needs():
    account = {"metadata": {"name": "default", "namespace": "a", "resourceVersion": "9", "uid": "x",
                            "labels": {"l": "v"}, "managedFields": [{}]},
               "imagePullSecrets": [{"name": "mine"}], "secrets": [{"name": "tok"}], "automountServiceAccountToken": True}
    view = sa.link_view(account)
    assert view == {"metadata": {"resourceVersion": "9"}, "imagePullSecrets": [{"name": "mine"}],
                    "secrets": [{"name": "tok"}]}
    assert sa.plan_links(view, ["mine"], ["pull", "mount"], "present") == \
        sa.plan_links(account, ["mine"], ["pull", "mount"], "present")
    assert sa.link_view({"metadata": {"resourceVersion": "1"}}) == {"metadata": {"resourceVersion": "1"}}


def test_service_accounts_are_read_as_link_views_of_the_targets_only():
    accounts = [{"metadata": {"name": "default", "namespace": ns, "resourceVersion": "3", "uid": ns}}
                for ns in ("x", "a", "y", "b")]
    core = Core(accounts=accounts)
    found = sa.wait_for_service_accounts(kube_client(core), "default", ["a", "b"], 0, 1)
    assert found == {"a": {"metadata": {"resourceVersion": "3"}}, "b": {"metadata": {"resourceVersion": "3"}}}


def test_map_bounded_keeps_order_and_queues_a_few_calls_per_thread(monkeypatch):
    import threading

    monkeypatch.setattr(kube, "QUEUED_PER_THREAD", 2)
    started, lock, most = [], threading.Lock(), [0]
    pending = {"count": 0}

    def work(item):
        with lock:
            started.append(item)
        time.sleep(0.001)  # slower than submitting: unbounded queueing would pile up
        return item * 2

    class CountingPool(kube.ThreadPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            future = super(CountingPool, self).submit(fn, *args, **kwargs)
            with lock:
                pending["count"] += 1
                most[0] = max(most[0], pending["count"])
            future.add_done_callback(lambda _f: done())
            return future

    def done():
        with lock:
            pending["count"] -= 1

    monkeypatch.setattr(kube, "ThreadPoolExecutor", CountingPool)
    assert kube.map_bounded(work, range(200), 3) == [i * 2 for i in range(200)]
    assert sorted(started) == list(range(200))
    assert most[0] <= 2 * 3 + 1


def test_map_bounded_propagates_an_error_and_starts_no_later_call():
    started = []

    def work(item):
        started.append(item)
        if item == 0:
            raise ValueError("boom")
        return item

    with pytest.raises(ValueError):
        kube.map_bounded(work, range(1000), 2)
    assert len(started) < 1000
