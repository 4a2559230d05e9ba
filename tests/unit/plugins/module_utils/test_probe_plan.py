# -*- coding: utf-8 -*-
"""registry_pull_probe's pure functions: the probe pod, and the kubelet's words sorted into outcomes.

The messages are the kubelet's and containerd's, as the node cluster (Kubernetes 1.37,
containerd 2.4) reports them for the local registry (tests/functional/test_pull_probe.py
produces each of them again on the node).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results
from ansible_collections.ibmcloud.registry.plugins.module_utils.probe import plan

IMAGE = "registry.ibmreg.test:50173/ibmreg/busybox:1"

# Captured from the node cluster (kubelet 1.37.2, containerd 2.4.2, docker-registry with
# htpasswd and TLS): the kubelet's "Failed" events, whose text the container status repeats
# after "ErrImagePull: ". tests/functional/test_pull_probe.py produces each again.
NO_CREDENTIALS = (
    'Failed to pull image "%s": failed to pull and unpack image "%s": failed to resolve image: pull access '
    'denied, repository does not exist or may require authorization: authorization failed: no basic auth '
    'credentials' % (IMAGE, IMAGE))
WRONG_TAG = (
    'Failed to pull image "registry.ibmreg.test:50173/ibmreg/busybox:no-such-tag": rpc error: code = NotFound '
    'desc = failed to pull and unpack image "registry.ibmreg.test:50173/ibmreg/busybox:no-such-tag": failed to '
    'resolve image: registry.ibmreg.test:50173/ibmreg/busybox:no-such-tag: not found')
UNTRUSTED = (
    'Failed to pull image "registry.ibmreg.test:46243/ibmreg/busybox:1": failed to pull and unpack image '
    '"registry.ibmreg.test:46243/ibmreg/busybox:1": failed to resolve image: failed to do request: Head '
    '"https://registry.ibmreg.test:46243/v2/ibmreg/busybox/manifests/1": tls: failed to verify certificate: '
    'x509: certificate signed by unknown authority')
NO_SANDBOX = (
    'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox '
    '"8595c029aaac": failed to find network info for sandbox "8595c029aaac"')
PULLED = ('Successfully pulled image "%s" in 245ms (245ms including waiting). Image size: 1031977 bytes.' % IMAGE)
PULLING = 'Pulling image "127.0.0.1:37601/ibmreg/busybox:1"'
# Other runtimes' and registries' wordings of the same answers (not captured here).
FORBIDDEN = "Error response from daemon: 403 Forbidden"
STATUS_401 = "unexpected status code 401"
MANIFEST_UNKNOWN = "manifest unknown: manifest unknown"
REFUSED_PORT = (
    'failed to pull and unpack image "r.example:1/x:1": failed to resolve image: failed to do request: '
    'Head "https://r.example:1/v2/x/manifests/1": dial tcp 127.0.0.1:1: connect: connection refused')
DIAL_TIMEOUT = 'failed to do request: Head "https://r.example:5000/v2/": dial tcp 10.0.0.1:5000: i/o timeout'
# The API server's answer, as the client layer words it (captured on the node cluster).
PSA = ('Forbidden (403) to create Pod registry-pull-probe-11949de3 in namespace locked: pods '
       '"registry-pull-probe-11949de3" is forbidden: violates PodSecurity "restricted:latest": host namespaces '
       '(hostNetwork=true)')


def pod(waiting=None, running=False, image_id="", phase="Pending", reason=None):
    status = {"phase": phase}
    if reason:
        status["reason"] = reason
    if waiting or running or image_id:
        state = {"running": {"startedAt": "now"}} if running else {"waiting": waiting or {}}
        status["containerStatuses"] = [{"name": "probe", "image": IMAGE, "imageID": image_id, "state": state}]
    return {"metadata": {"name": "registry-pull-probe-1", "uid": "u1"}, "status": status}


def event(reason, message, when="2026-12-02T19:00:00Z"):
    return {"reason": reason, "message": message, "lastTimestamp": when, "involvedObject": {"uid": "u1"}}


@pytest.mark.parametrize("message,outcome", [
    (NO_CREDENTIALS, plan.UNAUTHORIZED),
    (FORBIDDEN, plan.UNAUTHORIZED),
    (STATUS_401, plan.UNAUTHORIZED),
    (WRONG_TAG, plan.NOT_FOUND),
    (MANIFEST_UNKNOWN, plan.NOT_FOUND),
    (UNTRUSTED, plan.TLS),
    (DIAL_TIMEOUT, plan.TIMEOUT),
    (REFUSED_PORT, plan.OTHER),
    ("", plan.OTHER),
    (None, plan.OTHER),
])
def test_kubelet_messages_are_sorted(message, outcome):
    assert plan.classify_message(message) == outcome


def test_a_401_for_a_missing_tag_is_unauthorized_not_not_found():
    """Without credentials a registry answers 401 before it looks for the tag."""
    assert plan.classify_message(NO_CREDENTIALS.replace(":1", ":nope")) == plan.UNAUTHORIZED


def test_the_pod_passes_pod_security_restricted():
    manifest = plan.probe_pod("team-a", IMAGE, "default", "abcd1234", deadline=1000.4, timeout=60)
    spec = manifest["spec"]
    container = spec["containers"][0]
    assert manifest["metadata"]["name"] == "registry-pull-probe-abcd1234"
    assert manifest["metadata"]["namespace"] == "team-a"
    assert manifest["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "ibmcloud.registry",
                                              "ibmcloud.registry/pull-probe": "abcd1234"}
    assert manifest["metadata"]["annotations"][plan.DEADLINE_ANNOTATION] == "1000"
    assert spec["serviceAccountName"] == "default"
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["activeDeadlineSeconds"] == 60 + plan.DEADLINE_SLACK
    assert "hostNetwork" not in spec and "imagePullSecrets" not in spec
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["image"] == IMAGE and container["imagePullPolicy"] == "Always"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"] == {"cpu": "100m", "memory": "64Mi"}
    assert "command" not in container


def test_host_network_and_command_are_options():
    spec = plan.probe_pod("a", IMAGE, "builder", "1", deadline=0, timeout=5, host_network=True,
                          command=["true"])["spec"]
    assert spec["hostNetwork"] is True
    assert spec["containers"][0]["command"] == ["true"]
    assert spec["serviceAccountName"] == "builder"


def test_pulled_from_the_status():
    assert plan.classify(pod(running=True))[0] == plan.PULLED
    assert plan.classify(pod(image_id="registry.ibmreg.test:50173/ibmreg/busybox@sha256:ab"))[0] == plan.PULLED
    # runAsNonRoot is checked against the image's user after the pull.
    outcome, message = plan.classify(pod(waiting={"reason": "CreateContainerConfigError",
                                                  "message": "container has runAsNonRoot and image will run as root"}))
    assert outcome == plan.PULLED and "CreateContainerConfigError" in message
    assert plan.classify(pod(waiting={"reason": "RunContainerError", "message": "exec: not found"}))[0] == plan.PULLED


def test_pull_errors_from_the_status():
    status_text = NO_CREDENTIALS.split(": ", 1)[1]
    outcome, message = plan.classify(pod(waiting={"reason": "ErrImagePull", "message": status_text}))
    assert outcome == plan.UNAUTHORIZED and message == "ErrImagePull: " + status_text
    back_off = "Back-off pulling image \"%s\": ErrImagePull: %s" % (IMAGE, WRONG_TAG)
    assert plan.classify(pod(waiting={"reason": "ImagePullBackOff", "message": back_off}))[0] == plan.NOT_FOUND


def test_a_back_off_without_the_reason_takes_it_from_the_event():
    back_off = 'Back-off pulling image "%s"' % IMAGE
    events = [event("Failed", UNTRUSTED)]
    assert plan.classify(pod(waiting={"reason": "ImagePullBackOff", "message": back_off}), events)[0] == plan.TLS


def test_still_pulling_is_undecided():
    assert plan.classify(pod()) is None
    assert plan.classify(pod(waiting={"reason": "ContainerCreating"})) is None
    assert plan.classify(pod(), [event("Scheduled", "Successfully assigned a/p to localhost"),
                                 event("Pulling", PULLING)]) is None


def test_events_decide_when_the_status_does_not():
    events = [event("Pulling", PULLING, "2026-12-02T19:00:00Z"),
              event("Pulled", PULLED, "2026-12-02T19:00:01Z")]
    assert plan.classify(pod(), events) == (plan.PULLED, PULLED)
    failed = [event("Pulling", PULLING, "2026-12-02T19:00:00Z"), event("Failed", NO_CREDENTIALS, "2026-12-02T19:00:01Z")]
    assert plan.classify(pod(), failed) == (plan.UNAUTHORIZED, NO_CREDENTIALS)
    sandbox = [event("FailedCreatePodSandBox", NO_SANDBOX)]
    outcome, message = plan.classify(pod(), sandbox)
    assert outcome == plan.OTHER and "sandbox could not be created" in message


def test_a_pod_that_failed_before_the_pull_is_other():
    assert plan.classify(pod(phase="Failed", reason="DeadlineExceeded"))[0] == plan.OTHER


def test_timeout_says_what_the_pod_waited_for():
    outcome, message = plan.timed_out(5, {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/0 nodes are available"}]}})
    assert outcome == plan.TIMEOUT
    assert message == "no pull result within 5 s (Unschedulable: 0/0 nodes are available)"
    assert "phase Pending" in plan.timed_out(5)[1]
    pulling = plan.timed_out(8, pod(waiting={"reason": "ContainerCreating"}), [event("Pulling", PULLING)])[1]
    assert pulling == "no pull result within 8 s (ContainerCreating; last event Pulling: %s)" % PULLING


def test_admission_refusals_name_the_namespace_and_the_message():
    outcome, message = plan.admission_refusal("locked", 403, PSA)
    assert outcome == plan.REFUSED
    assert message.startswith("namespace locked: Pod Security admission refused the probe pod (host_network needs "
                              "the privileged level")
    assert 'violates PodSecurity "restricted:latest"' in message
    forbidden = "Forbidden (403) to create Pod p in namespace a: User \"x\" cannot create resource \"pods\""
    expected = "namespace a: the API server refused the probe pod: " + forbidden
    assert plan.admission_refusal("a", 403, forbidden) == (plan.REFUSED, expected)
    assert plan.admission_refusal("a", 500, "boom")[0] == plan.ERROR


def test_leftovers_are_pods_past_their_deadline():
    def probe_pod(annotations):
        return {"metadata": {"annotations": annotations}}
    assert plan.is_leftover(probe_pod({plan.DEADLINE_ANNOTATION: "100"}), now=101)
    assert not plan.is_leftover(probe_pod({plan.DEADLINE_ANNOTATION: "100"}), now=99)
    assert plan.is_leftover(probe_pod({}), now=0)
    assert plan.is_leftover(probe_pod({plan.DEADLINE_ANNOTATION: "soon"}), now=0)
    assert plan.leftover_selector() == "app.kubernetes.io/managed-by=ibmcloud.registry,ibmcloud.registry/pull-probe"


@pytest.mark.parametrize("image", [IMAGE, "busybox", "us.icr.io/team/app:1.4", "127.0.0.1:5000/a/b",
                                   "cp.icr.io/cp/x@sha256:" + "a" * 64, "a/b_c__d-e:tag.1"])
def test_image_references(image):
    assert plan.image_error(image) is None


@pytest.mark.parametrize("image", ["", " ", None, "has space:1", "Upper/Case", "a:b:c", "x:" + "t" * 200])
def test_bad_image_references(image):
    assert plan.image_error(image)


def test_counts_and_failure_message():
    items = [{"namespace": "a", "outcome": plan.PULLED, "message": "ok"},
             {"namespace": "b", "outcome": plan.UNAUTHORIZED, "message": "401"},
             {"namespace": "c", "outcome": plan.REFUSED, "message": "namespace c: PSA"}]
    counts = results.count(items, "outcome", plan.OUTCOMES)
    assert counts[plan.PULLED] == 1 and counts[plan.UNAUTHORIZED] == 1 and counts[plan.REFUSED] == 1
    assert set(counts) == set(plan.OUTCOMES)
    assert plan.failure_message(IMAGE, items) == (
        "%s was not pulled in 2 of 3 namespaces (b: unauthorized: 401; c: refused: namespace c: PSA)" % IMAGE)
    # Pull failures are collected by the caller; a probe that could not run still fails.
    assert plan.failure_message(IMAGE, items, fail_on_pull_error=False) == (
        "%s was not pulled in 1 of 3 namespaces (c: refused: namespace c: PSA)" % IMAGE)
    assert plan.failure_message(IMAGE, items[:1]) is None
