# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""registry_pull_probe, step by step: validate, find the namespaces, remove leftovers,
probe each namespace in bounded parallel, delete every probe pod, report."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import os
import threading
import time

from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    describe_target,
    get_kube_client,
    map_bounded,
    validate_kube_params,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import (
    object_name_error,
    resolve_namespaces,
    validate_target_params,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.probe import plan

# Seconds between two reads of a probe pod; events are read every other time, and only
# while the pod's status does not decide.
POLL_INTERVAL = 1.0


def validate(params):
    """Every option error at once, before any request."""
    errors = validate_kube_params(params) + validate_target_params(params)
    for problem in (plan.image_error(params.get("image")),
                    object_name_error(params.get("service_account"), "service_account")):
        if problem:
            errors.append(problem)
    if params.get("timeout") is None or not 1 <= params["timeout"] <= 3600:
        errors.append("timeout must be between 1 and 3600 seconds, got %s" % params.get("timeout"))
    if params.get("command") is not None and not [part for part in params["command"] if part]:
        errors.append("command must name a program when given, got an empty list")
    return errors


def find_leftovers(client, namespaces, parallelism, now):
    """Probe pods of earlier runs in the target namespaces (one LIST, or one per namespace)."""
    wanted = set(namespaces)
    selector = plan.leftover_selector()
    try:
        pods = client.list_json(describe_target("list", "Pod"), client.core.list_pod_for_all_namespaces,
                                label_selector=selector)
    except KubeError as exc:
        if exc.status != 403:
            raise
        pods = []
        for found in map_bounded(
                lambda ns: client.list_json(describe_target("list", "Pod", ns), client.core.list_namespaced_pod,
                                            namespace=ns, label_selector=selector),
                namespaces, parallelism):
            pods.extend(found)
    return sorted(("%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"]))
                  for pod in pods if pod["metadata"]["namespace"] in wanted and plan.is_leftover(pod, now))


def delete_pod(client, namespace, name):
    """Delete a probe pod at once; True when it existed."""
    try:
        client.call(describe_target("delete", "Pod", namespace, name), client.core.delete_namespaced_pod,
                    name, namespace, grace_period_seconds=0)
        return True
    except KubeError as exc:
        if exc.status == 404:
            return False
        raise


class RunPods(object):
    """The probe pods of one run, read for every waiting namespace at once.

    One LIST by the run's label serves all namespaces probed in parallel, so a wait costs
    about one request per POLL_INTERVAL however many namespaces are probed. A snapshot
    answers a reader only when it was taken after the reader's pod was created (and at most
    POLL_INTERVAL ago). Without cluster-wide list permission (namespaced Roles) each pod
    is read by itself, as before.
    """

    def __init__(self, client, run_id, clock=time.time):
        self.client = client
        self.selector = "%s=%s" % (plan.PROBE_LABEL, run_id)
        self.clock = clock
        self.lock = threading.Lock()
        self.taken_at = None
        self.pods = {}
        self.per_pod = False

    def read(self, namespace, name, created_at):
        """The pod as a dict; KubeError 404 when it is gone."""
        if not self.per_pod:
            with self.lock:
                if self.taken_at is None or self.taken_at < max(created_at, self.clock() - POLL_INTERVAL):
                    self._refresh()
                if not self.per_pod:
                    pod = self.pods.get((namespace, name))
                    if pod is None:
                        raise KubeError("Not found (404) to %s: the probe pod is gone"
                                        % describe_target("get", "Pod", namespace, name), status=404)
                    return pod
        return self.client.call_json(describe_target("get", "Pod", namespace, name),
                                     self.client.core.read_namespaced_pod, name, namespace)

    def _refresh(self):
        started = self.clock()
        try:
            pods = self.client.list_json(describe_target("list", "Pod"), self.client.core.list_pod_for_all_namespaces,
                                         label_selector=self.selector)
        except KubeError as exc:
            if exc.status != 403:
                raise
            self.per_pod = True
            return
        self.pods = dict(((pod["metadata"]["namespace"], pod["metadata"]["name"]), pod) for pod in pods)
        self.taken_at = started


class Prober(object):
    """Runs one probe pod per namespace and waits for its pull."""

    def __init__(self, client, params, run_id, clock=time.time, sleep=time.sleep):
        self.client = client
        self.params = params
        self.run_id = run_id
        self.clock = clock
        self.sleep = sleep
        self.pods = RunPods(client, run_id, clock)

    def item(self, namespace, outcome, message, started=None):
        return {
            "namespace": namespace,
            "name": plan.pod_name(self.run_id),
            "service_account": self.params["service_account"],
            "image": self.params["image"],
            "outcome": outcome,
            "pulled": outcome == plan.PULLED,
            "message": message,
            "seconds": round(self.clock() - started, 1) if started is not None else 0,
        }

    def probe(self, namespace):
        params = self.params
        name = plan.pod_name(self.run_id)
        started = self.clock()
        manifest = plan.probe_pod(namespace, params["image"], params["service_account"], self.run_id,
                                  deadline=started + params["timeout"] + plan.DEADLINE_SLACK,
                                  timeout=params["timeout"], host_network=params["host_network"],
                                  command=params.get("command"))
        try:
            self.client.call(describe_target("create", "Pod", namespace, name),
                             self.client.core.create_namespaced_pod, namespace, manifest)
        except KubeError as exc:
            outcome, message = plan.admission_refusal(namespace, exc.status, str(exc))
            return self.item(namespace, outcome, message, started)
        created = self.clock()
        try:
            outcome, message = self.wait(namespace, name, started, created)
        except KubeError as exc:
            outcome, message = plan.ERROR, "namespace %s: %s" % (namespace, exc)
        try:
            delete_pod(self.client, namespace, name)
        except KubeError as exc:
            if outcome != plan.ERROR:
                outcome = plan.ERROR
                message = "%s; then the probe pod could not be deleted (%s)" % (message, exc)
        return self.item(namespace, outcome, message, started)

    def wait(self, namespace, name, started, created):
        pod, events, polls = {}, [], 0
        while True:
            # First a pause: a pod just created is not scheduled yet, and by then another
            # namespace's read has usually listed it.
            self.sleep(POLL_INTERVAL)
            pod = self.pods.read(namespace, name, created)
            decided = plan.classify(pod, events)
            if decided is None and polls % 2 == 1:
                events = self.events(namespace, pod)
                decided = plan.classify(pod, events)
            if decided is not None:
                return decided
            if self.clock() - started >= self.params["timeout"]:
                return plan.timed_out(self.params["timeout"], pod, self.events(namespace, pod))
            polls += 1

    def events(self, namespace, pod):
        uid = (pod.get("metadata") or {}).get("uid")
        selector = "involvedObject.kind=Pod,involvedObject.name=%s" % pod["metadata"]["name"]
        try:
            events = self.client.list_json(describe_target("list", "Event", namespace),
                                           self.client.core.list_namespaced_event, namespace=namespace,
                                           field_selector=selector)
        except KubeError as exc:
            if exc.status != 403:
                raise
            # Without events the pod's status still decides; only the kubelet's wording
            # of a back-off may be shorter.
            return []
        # A leftover of the same name from an earlier run has other events.
        return [e for e in events if not uid or (e.get("involvedObject") or {}).get("uid") in (None, uid)]


def run_registry_pull_probe(module):
    params = module.params
    errors = validate(params)
    if errors:
        module.fail_json(msg="Invalid options: " + "; ".join(errors))
    client = get_kube_client(module)
    try:
        namespaces = resolve_namespaces(client, params)
        leftovers = find_leftovers(client, namespaces, params["parallelism"], time.time())
    except KubeError as exc:
        module.fail_json(msg="%s; no probe pod was created" % exc)

    if module.check_mode:
        items = [dict(namespace=namespace, name=None, service_account=params["service_account"],
                      image=params["image"], outcome=plan.SKIPPED, pulled=False, seconds=0,
                      message="check mode: would run a pod as service account %s pulling %s"
                              % (params["service_account"], params["image"]))
                 for namespace in namespaces]
        module.exit_json(changed=bool(leftovers), results=items, counts=results.count(items, "outcome", plan.OUTCOMES),
                         leftovers=leftovers, leftovers_deleted=[])

    deleted = []
    for ref in leftovers:
        namespace, name = ref.split("/", 1)
        try:
            if delete_pod(client, namespace, name):
                deleted.append(ref)
        except KubeError as exc:
            module.fail_json(msg="Could not remove the leftover probe pod %s: %s; no probe pod was created"
                             % (ref, exc), leftovers=leftovers, leftovers_deleted=deleted)

    run_id = binascii.hexlify(os.urandom(4)).decode()
    prober = Prober(client, params, run_id)
    items = map_bounded(prober.probe, namespaces, params["parallelism"])
    result = dict(changed=bool(deleted), results=items, counts=results.count(items, "outcome", plan.OUTCOMES),
                  leftovers=leftovers, leftovers_deleted=deleted, run_id=run_id)
    message = plan.failure_message(params["image"], items, params["fail_on_pull_error"])
    if message:
        module.fail_json(msg=message, **result)
    module.exit_json(**result)
