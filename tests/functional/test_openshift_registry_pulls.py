"""A pod in project B pulls an image of project A from the internal registry through the
``system:image-puller`` RoleBinding of ``ocp_image_puller`` alone (issue 19, item 3).

Real: the default 1.37 cluster with its node (kubelet, containerd 2.x, runc),
kube-apiserver's TokenRequest, TokenReview, SubjectAccessReview and RBAC authorizer,
Debian's ``docker-registry``, skopeo, ``ocp_image_puller`` through ansible-playbook.
Stand-ins: the OpenShift objects (tests/standins/openshift_flavour.py: ClusterRole
``system:image-puller``, 4.16 ``<sa>-dockercfg-*`` secrets holding real bound tokens,
linked in ``imagePullSecrets``) and the internal registry's authentication and
authorization (tests/standins/openshift_registry.py, LOCAL STAND-IN, on the token
service stand-in of tests/standins/token_service.py).

The pods name no secret and run as their project's ``default`` service account; the
ServiceAccount admission plugin gives them that account's dockercfg secret, whose bound
token the registry's reviews judge. Pulls are ``Always``, so the node's image cache
hides nothing. The node reaches ``image-registry.openshift-image-registry.svc:5000``
through a hosts.toml mirror on loopback; strace on containerd and the kubelet shows no
connect() off 127.0.0.0/8.
"""

from __future__ import annotations

import base64
import json
import os
import sys

import pytest
from kubernetes import client

from node_pods import create_pod, wait_for, wait_running
from playbook import REPO
from test_token_registry import (  # the icr.io token flow's registry client and trace
    ConnectTrace,
    _https,
    token_get,
    wait_pull_refused,
)

sys.path.insert(0, os.path.join(REPO, "tests", "standins"))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))

import localnode  # noqa: E402  pylint: disable=wrong-import-position
import openshift_flavour as flavour  # noqa: E402  pylint: disable=wrong-import-position
import openshift_registry  # noqa: E402  pylint: disable=wrong-import-position
import token_registry  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

SERVER = openshift_registry.SERVER
# What a dockercfg secret's entry holds as username (4.16: "<token>"); the registry ignores it.
ANY_USERNAME = "<token>"
MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"
# containerd 2.x on the registry's 401 for a token without the access (error="insufficient_scope").
DENIED_PULL = "server message: insufficient_scope: authorization failed"


@pytest.fixture(scope="module")
def openshift(cluster, kube_fixture_client):
    """The default node cluster with the OpenShift stand-in objects, as test_openshift.py installs them."""
    flavour.install(cluster.fixture_kubeconfig, kube_fixture_client)
    return cluster


@pytest.fixture(scope="module")
def internal_registry(openshift, kube_fixture_client, tmp_path_factory):
    registry = openshift_registry.InternalRegistry(str(tmp_path_factory.mktemp("internal-registry")),
                                                   kube_fixture_client).start()
    try:
        with registry.node_hosts(os.path.join(localnode.node_dir(openshift.state_dir), "certs.d")):
            yield registry
    finally:
        registry.stop()


@pytest.fixture
def projects(unique_ns, kube_fixture_client, internal_registry):
    """project(suffix) -> (namespace, {account: (dockercfg secret, bound token)}), set up as
    OpenShift 4.16 sets up a project: dockercfg secrets for default and builder, the
    project's own image-pullers and image-builders bindings."""

    def make(suffix):
        namespace = unique_ns(suffix)
        made = flavour.project(kube_fixture_client, namespace, "bound")
        openshift_registry.default_role_bindings(kube_fixture_client, namespace)
        return namespace, made

    return make


def push_app(registry, project, tokens):
    """The test image into ``<project>/app``, pushed by the project's builder with its dockercfg token."""
    pushed = registry.push(localnode.app_layout(), "1", SERVER, project + "/app", ANY_USERNAME, tokens["builder"][1])
    assert pushed.returncode == 0, pushed.stderr
    return registry.image(project, "app")


def granted(answer):
    """The access list of the token the realm issued."""
    status, _headers, body, _reason = answer
    assert status == 200, (status, body)
    return json.loads(base64.urlsafe_b64decode(body["token"].split(".")[1] + "=="))["access"]


def manifest(registry, project, token):
    url = "https://%s/v2/%s/app/manifests/1" % (registry.addresses[SERVER], project)
    return _https(registry, url, {"Authorization": "Bearer " + token, "Accept": MANIFEST_ACCEPT})


def reviews(registry, mark, user, project, allowed):
    """The registry's SubjectAccessReviews since mark for user's access to project, by answer."""
    return [r for r in registry.authorizer.since(mark) if r["review"] == "SubjectAccessReview"
            and r["user"] == user and r["namespace"] == project and r["allowed"] is allowed]


def test_the_registry_standin_reviews_each_token_and_repository(internal_registry, projects, kube_fixture_client):
    regs = internal_registry
    a, a_tokens = projects("a")
    b, b_tokens = projects("b")
    mark = regs.authorizer.mark()
    push_app(regs, a, a_tokens)
    # A's builder pushed: the review asked `update` on imagestreams/layers in A, as the real registry does.
    assert ("app", "update") in [(r["name"], r["verb"]) for r in
                                 reviews(regs, mark, "system:serviceaccount:%s:builder" % a, a, True)]

    pull, pull_push = "repository:%s/app:pull" % a, "repository:%s/app:pull,push" % a
    # A's own service accounts pull (system:image-pullers) but do not push; any username goes.
    assert granted(token_get(regs, SERVER, "anything", a_tokens["default"][1], pull_push)) == [
        {"type": "repository", "name": a + "/app", "actions": ["pull"]}]
    own = token_get(regs, SERVER, ANY_USERNAME, a_tokens["default"][1], pull)[2]["token"]
    assert manifest(regs, a, own)[0] == 200

    # B's account is authenticated but not allowed: a token without the access, and the
    # registry's own refusal, as the real registry's body for a denied pull.
    mark = regs.authorizer.mark()
    answer = token_get(regs, SERVER, ANY_USERNAME, b_tokens["default"][1], pull)
    assert granted(answer) == []
    assert reviews(regs, mark, "system:serviceaccount:%s:default" % b, a, False)
    status, _headers, body, _reason = manifest(regs, a, answer[2]["token"])
    assert status == 401, body
    assert body["errors"][0]["code"] == "UNAUTHORIZED" and body["errors"][0]["message"] == "authentication required"
    assert body["errors"][0]["detail"][0]["Name"] == a + "/app", body

    # No credentials: the anonymous user, who may pull nothing here.
    mark = regs.authorizer.mark()
    assert granted(token_get(regs, SERVER, None, None, pull)) == []
    assert reviews(regs, mark, "system:anonymous", a, False)

    # Refusals as the real token endpoint: 401, empty body, no challenge.
    for username, password in (("x", "not-a-token"), ("x", "")):
        status, headers, body, reason = token_get(regs, SERVER, username, password, pull)
        assert (status, body) == (401, None) and "WWW-Authenticate" not in headers, (status, body)
        assert reason.startswith("Unauthorized"), reason
    status, _headers, body, _reason = token_get(regs, SERVER, ANY_USERNAME, a_tokens["default"][1],
                                                "repository:app:pull")
    assert (status, body) == (401, {"details": "repository namespace required"})

    # The bound token dies with its Secret (OpenShift recreates the secret; the old token is gone at once).
    core = client.CoreV1Api(kube_fixture_client)
    core.delete_namespaced_secret(b_tokens["default"][0], b)
    wait_for("the deleted Secret's bound token refused",
             lambda: token_get(regs, SERVER, ANY_USERNAME, b_tokens["default"][1], "")[0] == 401, timeout=30)
    status, _headers, body, reason = token_get(regs, SERVER, ANY_USERNAME, b_tokens["default"][1], pull)
    assert (status, body) == (401, None) and "TokenReview" in reason, reason


def test_a_pod_in_b_pulls_from_a_through_the_image_puller_binding_alone(
        openshift, internal_registry, projects, runner, audit, kube_fixture_client, tmp_path):
    regs = internal_registry
    core = client.CoreV1Api(kube_fixture_client)
    rbac = client.RbacAuthorizationV1Api(kube_fixture_client)
    a, a_tokens = projects("a")
    b, b_tokens = projects("b")
    c, _c_tokens = projects("c")
    image = push_app(regs, a, a_tokens)
    b_user, c_user = "system:serviceaccount:%s:default" % b, "system:serviceaccount:%s:default" % c

    def image_puller(state):
        mark = audit.mark()
        played = runner.run([{"name": "t", "ibmcloud.registry.ocp_image_puller": {
            "image_namespaces": [a], "namespaces": [b], "state": state, "kubeconfig": openshift.kubeconfig}}])
        assert played.rc == 0, played.stdout[-3000:] + played.stderr[-2000:]
        assert played["t"]["changed"] is True, played["t"]
        # Only the binding in A: nothing is written into B (no secret copied, no account linked).
        assert audit.writes(mark, namespace_prefix=b) == []
        return [(w["verb"], w["resource"], w["name"]) for w in audit.writes(mark, namespace_prefix=a)]

    def secrets_of(namespace):
        return {s.metadata.name: s.metadata.resource_version for s in core.list_namespaced_secret(namespace).items}

    trace = ConnectTrace(openshift, str(tmp_path / "containerd.trace"))
    try:
        # Before: B's own dockercfg secret authenticates, the reviews deny, the pull fails.
        mark = regs.authorizer.mark()
        create_pod(core, b, image, name="before")
        create_pod(core, c, image, name="before")
        for namespace, user in ((b, b_user), (c, c_user)):
            refused = wait_pull_refused(core, namespace, name="before")
            assert DENIED_PULL in refused, refused
            assert reviews(regs, mark, user, a, False), regs.authorizer.since(mark)
        b_secrets = secrets_of(b)

        binding = "ibmcloud-registry-image-puller-" + b
        assert image_puller("present") == [("create", "rolebindings", binding)]
        assert rbac.read_namespaced_role_binding(binding, a).role_ref.name == "system:image-puller"
        # Nothing was copied into B: its secrets are the ones it had, unchanged.
        assert secrets_of(b) == b_secrets

        mark = regs.authorizer.mark()
        create_pod(core, b, image, name="after")
        create_pod(core, c, image, name="after")
        wait_running(core, b, name="after")
        # Through B's own dockercfg secret, which the ServiceAccount admission plugin put in the pod.
        running = core.read_namespaced_pod("after", b)
        assert running.spec.service_account_name == "default"
        assert [ref.name for ref in running.spec.image_pull_secrets] == [b_tokens["default"][0]]
        assert ("app", "get") in [(r["name"], r["verb"]) for r in reviews(regs, mark, b_user, a, True)]
        assert not reviews(regs, mark, b_user, a, False)
        assert DENIED_PULL in wait_pull_refused(core, c, name="after")  # C was not granted
        assert reviews(regs, mark, c_user, a, False)

        # state=absent takes the grant back: a fresh pull in B fails again.
        assert image_puller("absent") == [("delete", "rolebindings", binding)]
        mark = regs.authorizer.mark()
        create_pod(core, b, image, name="again")
        refused = wait_pull_refused(core, b, name="again")
        assert DENIED_PULL in refused, refused
        assert reviews(regs, mark, b_user, a, False)
    finally:
        targets = trace.stop()
    assert regs.addresses[SERVER] in targets and regs.addresses["token"] in targets, targets
    assert token_registry.off_loopback(targets) == [], targets
