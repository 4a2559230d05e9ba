# -*- coding: utf-8 -*-
"""registry_pull_probe's waiting: one LIST of the run's pods serves every namespace probed at once.

The fake API below records each request; its "kubelet" reports a pod pulled a few poll
intervals after the pod was created, so every wait takes several polls.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import KubeError
from ansible_collections.ibmcloud.registry.plugins.module_utils.probe import plan, runners

IMAGE = "registry.example.test/team/app:1"
PARAMS = {"image": IMAGE, "service_account": "default", "timeout": 30, "host_network": False, "command": None}


class FakeCore(object):
    def __init__(self, api):
        self.api = api

    def create_namespaced_pod(self, namespace, body):
        return self.api.create(namespace, body)

    def delete_namespaced_pod(self, name, namespace, grace_period_seconds=None):
        return self.api.delete(namespace, name)

    def list_pod_for_all_namespaces(self, **kwargs):
        return self.api.list(**kwargs)

    def read_namespaced_pod(self, name, namespace):
        return self.api.get(namespace, name)

    def list_namespaced_event(self, namespace, field_selector=None):
        return self.api.events(namespace)


class FakeAPI(object):
    """Pods in memory; each read of a pod moves its fake kubelet one step on."""

    def __init__(self, list_allowed=True, seconds_to_pull=0.2):
        self.lock = threading.Lock()
        self.pods = {}
        self.created = {}
        self.requests = []
        self.list_allowed = list_allowed
        self.seconds_to_pull = seconds_to_pull
        self.core = FakeCore(self)

    def warn(self, message):
        pass

    # the KubeClient surface the runner uses
    def call(self, what, func, *args, **kwargs):
        return func(*args, **kwargs)

    def call_json(self, what, func, *args, **kwargs):
        return func(*args, **kwargs)

    def list_json(self, what, func, **kwargs):
        return func(**kwargs).get("items", [])

    def _record(self, verb):
        with self.lock:
            self.requests.append(verb)

    def _seen(self, key):
        pod = self.pods[key]
        if time.time() - self.created[key] >= self.seconds_to_pull:
            pod["status"] = {"phase": "Running", "containerStatuses": [
                {"image": IMAGE, "imageID": IMAGE + "@sha256:" + "0" * 64, "state": {"running": {}}}]}
        return dict(pod)

    def create(self, namespace, body):
        self._record("create")
        with self.lock:
            self.pods[(namespace, body["metadata"]["name"])] = dict(body, status={"phase": "Pending"})
            self.created[(namespace, body["metadata"]["name"])] = time.time()
        return body

    def delete(self, namespace, name):
        self._record("delete")
        with self.lock:
            self.pods.pop((namespace, name))

    def list(self, label_selector=None):
        self._record("list")
        if not self.list_allowed:
            raise KubeError("Forbidden (403) to list Pod in all namespaces", status=403)
        key, value = label_selector.split("=")
        with self.lock:
            return {"items": [self._seen(k) for k, pod in sorted(self.pods.items())
                              if pod["metadata"]["labels"].get(key) == value]}

    def get(self, namespace, name):
        self._record("get")
        with self.lock:
            return self._seen((namespace, name))

    def events(self, namespace):
        self._record("events")
        return {"items": []}


def probe_all(api, namespaces, monkeypatch):
    """Probe the namespaces 8 at a time; the number of pod reads the waits made."""
    monkeypatch.setattr(runners, "POLL_INTERVAL", 0.05)
    prober = runners.Prober(api, PARAMS, "abcd1234")
    reads = []
    read = prober.pods.read

    def counted(*args):
        reads.append(args)
        return read(*args)

    prober.pods.read = counted
    return runners.map_bounded(prober.probe, namespaces, 8), len(reads)


def test_one_list_per_poll_serves_every_namespace(monkeypatch):
    api = FakeAPI()
    namespaces = ["ns-%d" % i for i in range(32)]
    items, reads = probe_all(api, namespaces, monkeypatch)
    assert [item["outcome"] for item in items] == [plan.PULLED] * 32
    assert api.requests.count("create") == 32 and api.requests.count("delete") == 32
    assert api.requests.count("get") == 0
    # Each wait reads its pod several times; one LIST answers the 8 waits of a poll.
    assert reads >= 32 * 3
    assert api.requests.count("list") * 4 <= reads, (api.requests.count("list"), reads)
    assert api.pods == {}


def test_without_cluster_wide_list_each_pod_is_read_by_itself(monkeypatch):
    api = FakeAPI(list_allowed=False)
    items, reads = probe_all(api, ["ns-a", "ns-b"], monkeypatch)
    assert [item["outcome"] for item in items] == [plan.PULLED] * 2
    assert api.requests.count("list") == 1  # asked once, then per pod
    assert api.requests.count("get") == reads >= 2 * 3


def test_a_pod_deleted_by_someone_else_is_an_error_naming_it(monkeypatch):
    api = FakeAPI(seconds_to_pull=1000)
    monkeypatch.setattr(runners, "POLL_INTERVAL", 0.05)
    pods = runners.RunPods(api, "abcd1234")
    api.create("ns-a", plan.probe_pod("ns-a", IMAGE, "default", "abcd1234", deadline=0, timeout=30))
    assert pods.read("ns-a", plan.pod_name("abcd1234"), created_at=0)["status"]["phase"] == "Pending"
    api.pods.clear()
    try:
        pods.read("ns-a", plan.pod_name("abcd1234"), created_at=runners.time.time())
    except KubeError as exc:
        assert exc.status == 404 and "ns-a" in str(exc)
    else:
        raise AssertionError("a missing pod must raise 404")
