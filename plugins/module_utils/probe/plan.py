# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pull probe as pure functions on dicts: the probe pod, and what its status says.

A probe pod runs as one service account of a namespace with imagePullPolicy Always, so
the kubelet pulls the image with exactly the pull secrets a workload of that account
gets. Its status (and the kubelet's events) tell whether the pull worked; the kubelet's
message is sorted into a few outcomes a pipeline can act on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
)

# Every probe pod carries both labels, so the leftovers of a run that was killed can be
# found with one LIST; the run id is the label's value.
PROBE_LABEL = "ibmcloud.registry/pull-probe"
# When a probe pod's run is over at the latest (seconds since the epoch): only pods past
# it are leftovers, so two runs on one cluster never delete each other's pods.
DEADLINE_ANNOTATION = "ibmcloud.registry/pull-probe-deadline"
IMAGE_ANNOTATION = "ibmcloud.registry/pull-probe-image"
POD_NAME_PREFIX = "registry-pull-probe-"
CONTAINER_NAME = "probe"
# Pod Security "restricted" wants a numeric non-root user when the image may not set one.
PROBE_USER = 65534
# Seconds a pod may outlive its run's timeout before it counts as a leftover.
DEADLINE_SLACK = 30

PULLED = "pulled"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
TLS = "tls"
TIMEOUT = "timeout"
OTHER = "other"
# The probe could not run at all: admission refused the pod, or an API request failed.
REFUSED = "refused"
ERROR = "error"
# Check mode: what would be probed, nothing created.
SKIPPED = "skipped"
PULL_FAILURES = (UNAUTHORIZED, NOT_FOUND, TLS, TIMEOUT, OTHER)
PROBE_ERRORS = (REFUSED, ERROR)
OUTCOMES = (PULLED,) + PULL_FAILURES + PROBE_ERRORS + (SKIPPED,)

# Waiting reasons the kubelet sets once the image is on the node: creating or starting the
# container failed afterwards, which is not the probe's business.
_AFTER_PULL = frozenset([
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "StartError",
    "CrashLoopBackOff", "PostStartHookError", "ContainerCannotRun", "PreStartHookError",
])
_PULL_ERRORS = frozenset([
    "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
    "RegistryUnavailable", "ErrImageInspect", "SignatureValidationFailed",
])

# The kubelet passes containerd's error text through; these are its 2.x wordings (and
# 1.x's and CRI-O's, which say the same things differently). Order matters: a registry
# that refuses an anonymous pull of a missing tag answers 401, and says so first.
_RULES = (
    (TLS, ("x509:", "tls: failed to verify", "certificate signed by unknown authority",
           "certificate is not valid", "tls: handshake failure", "first record does not look like a tls")),
    (UNAUTHORIZED, ("401 unauthorized", "403 forbidden", "authorization failed", "no basic auth credentials",
                    "unexpected status from head request", "pull access denied", "access denied",
                    "denied: ", "authentication required", "unauthorized", "insufficient_scope")),
    (NOT_FOUND, ("manifest unknown", ": not found", "name unknown", "not found: manifest",
                 "repository does not exist", "404 not found")),
    (TIMEOUT, ("i/o timeout", "context deadline exceeded", "tls handshake timeout", "timeout awaiting")),
)
_STATUS_CODE = re.compile(r"\b(401|403)\b")

# A Docker/OCI image reference: [registry[:port]/]path[:tag][@digest], loosely (the
# kubelet is the judge; this catches typos such as spaces or an empty value early).
_IMAGE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,})?$"
)


def image_error(image):
    """Why ``image`` is not an image reference, or None."""
    if not isinstance(image, str) or not image.strip():
        return "image must be a non-empty image reference such as registry.example.com/team/app:1.0"
    if len(image) > 4096 or not _IMAGE.match(image):
        return "image %r is not an image reference ([registry[:port]/]repository[:tag][@digest])" % image
    return None


def pod_name(run_id):
    return POD_NAME_PREFIX + run_id


def probe_labels(run_id):
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, PROBE_LABEL: run_id}


def leftover_selector():
    """The label selector that finds every probe pod of any run."""
    return "%s=%s,%s" % (MANAGED_BY_LABEL, MANAGED_BY_VALUE, PROBE_LABEL)


def probe_pod(namespace, image, service_account, run_id, deadline, timeout, host_network=False, command=None):
    """The probe pod's manifest.

    It passes Pod Security ``restricted`` (non-root numeric user, RuntimeDefault seccomp,
    every capability dropped, no privilege escalation, read-only root) unless
    ``host_network`` is set, which only ``privileged`` allows. Small requests and limits, no
    service account token, no restarts; activeDeadlineSeconds ends it on its own should
    the run that made it die before deleting it.
    """
    container = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "Always",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"},
        },
    }
    if command:
        container["command"] = list(command)
    spec = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "activeDeadlineSeconds": int(timeout) + DEADLINE_SLACK,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PROBE_USER,
            "runAsGroup": PROBE_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if host_network:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(run_id),
            "namespace": namespace,
            "labels": probe_labels(run_id),
            "annotations": {DEADLINE_ANNOTATION: str(int(deadline)), IMAGE_ANNOTATION: image},
        },
        "spec": spec,
    }


def classify_message(message):
    """The outcome a kubelet's pull error message stands for."""
    text = (message or "").lower()
    for outcome, needles in _RULES:
        if any(needle in text for needle in needles):
            return outcome
    if _STATUS_CODE.search(text):
        return UNAUTHORIZED
    return OTHER


def _events_by_time(events):
    def key(event):
        return (event.get("lastTimestamp") or event.get("eventTime") or
                (event.get("metadata") or {}).get("creationTimestamp") or "")

    return sorted(events or [], key=key)


def classify(pod, events=None):
    """(outcome, message) once the pod's status or events decide the pull, else None.

    ``pod`` and ``events`` are API objects as dicts (events of this pod only).
    """
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if container.get("imageID") or state.get("running") or state.get("terminated"):
            return PULLED, "pulled %s" % (container.get("imageID") or container.get("image") or "")
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason")
        if reason in _AFTER_PULL:
            return PULLED, "pulled (then %s: %s)" % (reason, waiting.get("message") or "")
        if reason in _PULL_ERRORS and waiting.get("message"):
            message = waiting["message"]
            # The back-off repeats the first error after its own prefix; an event may
            # hold the whole text when the status has only the prefix.
            failed = _failed_pull_event(events)
            if reason == "ImagePullBackOff" and failed and classify_message(message) == OTHER:
                message = failed
            return classify_message(message), "%s: %s" % (reason, message)
        if reason == "InvalidImageName":
            return OTHER, "InvalidImageName"
    for event in reversed(_events_by_time(events)):
        reason, message = event.get("reason"), event.get("message") or ""
        if reason == "Pulled":
            return PULLED, message
        if reason == "Failed" and message.startswith("Failed to pull image"):
            return classify_message(message), message
        if reason == "FailedCreatePodSandBox":
            # No pull happens without a sandbox: the node's network (CNI) or runtime failed.
            return OTHER, "the pod sandbox could not be created, so the image was not pulled: %s" % message
    if status.get("phase") == "Failed":
        return OTHER, "the pod failed before the pull: %s %s" % (status.get("reason") or "",
                                                                 status.get("message") or "")
    return None


def _failed_pull_event(events):
    for event in reversed(_events_by_time(events)):
        if event.get("reason") == "Failed" and (event.get("message") or "").startswith("Failed to pull image"):
            return event["message"]
    return None


def pending_detail(pod, events=None):
    """What the pod was waiting for when the timeout ran out, for the timeout's message."""
    status = pod.get("status") or {}
    parts = []
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            parts.append(": ".join(text for text in (waiting["reason"], waiting.get("message")) if text))
    recent = _events_by_time(events)
    if recent:
        parts.append("last event %s: %s" % (recent[-1].get("reason"), recent[-1].get("message")))
    if not parts:
        for condition in status.get("conditions") or []:
            if condition.get("status") == "False" and condition.get("message"):
                parts.append("%s: %s" % (condition.get("reason"), condition["message"]))
    return "; ".join(parts) or "phase %s" % (status.get("phase") or "Pending")


def timed_out(timeout, pod=None, events=None):
    return TIMEOUT, "no pull result within %s s (%s)" % (timeout, pending_detail(pod or {}, events))


def admission_refusal(namespace, status, message):
    """(outcome, message) for a pod create that the API server refused."""
    text = message or ""
    if "podsecurity" in text.lower().replace(" ", ""):
        # The pod meets "restricted" by itself; only hostNetwork needs "privileged".
        hint = (" (host_network needs the privileged level; leave it false where pods have a network)"
                if "hostnetwork" in text.lower() else "")
        return REFUSED, "namespace %s: Pod Security admission refused the probe pod%s: %s" % (namespace, hint, text)
    if status in (403, 422):
        return REFUSED, "namespace %s: the API server refused the probe pod: %s" % (namespace, text)
    return ERROR, "namespace %s: %s" % (namespace, text)


def is_leftover(pod, now):
    """A probe pod whose run is over: past its deadline annotation (or without one)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        return float(annotations.get(DEADLINE_ANNOTATION)) < now
    except (TypeError, ValueError):
        return True


def failure_message(image, items, fail_on_pull_error=True):
    """Why the task fails, or None: probe errors always, pull failures when asked."""
    bad = [entry for entry in items if entry["outcome"] in PROBE_ERRORS
           or (fail_on_pull_error and entry["outcome"] in PULL_FAILURES)]
    if not bad:
        return None
    shown = "; ".join("%s: %s: %s" % (entry["namespace"], entry["outcome"], entry.get("message"))
                      for entry in bad[:10])
    more = " and %d more" % (len(bad) - 10) if len(bad) > 10 else ""
    return "%s was not pulled in %d of %d namespaces (%s%s)" % (image, len(bad), len(items), shown, more)
