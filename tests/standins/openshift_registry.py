"""LOCAL STAND-IN for the authentication and authorization of OpenShift's integrated image
registry, for tests only. This is NOT OpenShift's registry (openshift/image-registry).

What it copies from openshift/image-registry (``pkg/dockerregistry/server/token.go`` and
``auth.go``):

* The token endpoint ``/openshift/token`` takes basic auth with any username and an
  OpenShift (here: Kubernetes service account) token as the password, as the
  ``<sa>-dockercfg-*`` secrets hold it (``<token>:`` + the token). The real one checks
  the token with ``GET users/~``; the stand-in asks the real API server's TokenReview.
  A token the API server does not accept (garbage, expired, its bound Secret deleted):
  401 with an empty body and no challenge, as ``writeUnauthorized``. No credentials: the
  anonymous user (``system:anonymous``), as the real ``anonymous`` token.
* Each repository must be ``<project>/<name>``; otherwise 401 ``{"details": "repository
  namespace required"}`` (``writeError``), before any token is looked at.
* Access per repository, as ``verifyImageStreamAccess``: a real SubjectAccessReview for
  the token's user (name, uid, groups, extra from the TokenReview) with verb ``get`` (pull)
  or ``update`` (push) on resource ``imagestreams/layers`` of group
  ``image.openshift.io``, name ``<name>``, in namespace ``<project>``. So a RoleBinding
  to ClusterRole ``system:image-puller`` (tests/standins/openshift_flavour.py) is what
  lets another project's service accounts pull, judged by the real RBAC authorizer.

How: Debian's ``docker-registry`` (distribution 2.8) serves the repositories with token
auth, and the token service stand-in (tests/standins/token_service.py, kind
``authorizer``) signs a token that lists only the access the reviews allowed. A pull the
reviews denied therefore gets the registry's own 401 ``UNAUTHORIZED`` "authentication
required" with the access records as detail, which is the body the real registry sends
for a denied pull (its access controller answers ``ErrOpenShiftAccessDenied`` with a
challenge, not 403). The real registry returns the OpenShift token itself as the bearer
token; here it is a signed JWT, because distribution checks JWTs.

The registry answers for ``image-registry.openshift-image-registry.svc:5000`` on a
loopback address (port 443); a node reaches it by that name through a ``hosts.toml``
mirror (:meth:`InternalRegistry.node_hosts`). Not copied: image streams (a push does not
create one), prune and signature access, cross-repository mounts.
"""

from __future__ import annotations

import os
import sys
import threading

from kubernetes import client
from kubernetes.client.rest import ApiException

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import token_registry  # noqa: E402  pylint: disable=wrong-import-position
import token_service  # noqa: E402  pylint: disable=wrong-import-position

HOST = "image-registry.openshift-image-registry.svc"
SERVER = HOST + ":5000"
TOKEN_PATH = "/openshift/token"
IMAGE_GROUP = "image.openshift.io"
LAYERS = "imagestreams/layers"
# Registry actions -> the verb the real registry reviews on imagestreams/layers.
ACTION_VERBS = {"pull": "get", "push": "update"}
ANONYMOUS = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}

# OpenShift's bootstrap ClusterRole for pushing (openshift-apiserver bootstrap policy).
IMAGE_BUILDER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
    "metadata": {"name": "system:image-builder",
                 "annotations": {"openshift.io/description": "Grants the right to build, push and pull images "
                                                             "from within a project."}},
    "rules": [{"apiGroups": ["", IMAGE_GROUP], "resources": [LAYERS], "verbs": ["get", "update"]},
              {"apiGroups": ["", IMAGE_GROUP], "resources": ["imagestreams"], "verbs": ["create"]}],
}


def default_role_bindings(api_client, namespace: str) -> None:
    """The bindings every OpenShift project gets (``project_policy.go``): its service
    accounts pull its images (``system:image-pullers``), its ``builder`` pushes them
    (``system:image-builders``)."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    try:
        rbac.create_cluster_role(IMAGE_BUILDER_ROLE)
    except ApiException as exc:
        if exc.status != 409:
            raise
    for name, role, subject in (
            ("system:image-pullers", "system:image-puller",
             {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:serviceaccounts:" + namespace}),
            ("system:image-builders", "system:image-builder",
             {"kind": "ServiceAccount", "name": "builder", "namespace": namespace})):
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": name, "annotations": {"openshift.io/description": "stand-in of the project default"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [subject]})


def _unauthorized(message: str) -> token_service.TokenError:
    # writeUnauthorized: 401, no body, no challenge; the reason phrase says why (containerd shows it).
    return token_service.TokenError(401, "UNAUTHORIZED", message, body=b"", challenge=False)


def _split_repository(name: str):
    project, slash, stream = name.partition("/")
    if not (slash and project and stream) or "/" in stream:
        raise token_service.TokenError(401, "UNAUTHORIZED", "repository namespace required: %r" % name[:100],
                                       body={"details": "repository namespace required"}, challenge=False)
    return project, stream


class RegistryAuthorizer:
    """The decision of OpenShift's registry: TokenReview, then a SubjectAccessReview per action.

    ``reviews`` records every review (user, namespace, name, verb, allowed, reason), never
    a token."""

    def __init__(self, api_client):
        self.authn = client.AuthenticationV1Api(api_client)
        self.authz = client.AuthorizationV1Api(api_client)
        self.lock = threading.Lock()
        self.reviews = []

    def mark(self) -> int:
        with self.lock:
            return len(self.reviews)

    def since(self, mark: int = 0) -> list:
        with self.lock:
            return [dict(r) for r in self.reviews[mark:]]

    def _record(self, entry: dict) -> None:
        with self.lock:
            self.reviews.append(entry)

    def user(self, password: str | None) -> dict:
        """The token's user as the API server knows it, or a 401."""
        if password is None:
            return dict(ANONYMOUS)
        if not password:
            raise _unauthorized("no token in the password of the basic credentials")
        try:
            review = self.authn.create_token_review({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                                     "spec": {"token": password}})
        except ApiException as exc:
            raise token_service.TokenError(401, "UNAUTHORIZED", "TokenReview failed: HTTP %s" % exc.status,
                                           body={"details": "unable to validate token"}, challenge=False) from None
        status = review.status
        self._record({"review": "TokenReview", "authenticated": bool(status.authenticated),
                      "user": status.user.username if status.authenticated else None, "error": status.error})
        if not status.authenticated:
            raise _unauthorized("the API server does not accept the token (TokenReview: %s)"
                                % (status.error or "not authenticated"))
        user = status.user
        return {"username": user.username, "uid": user.uid, "groups": user.groups or [], "extra": user.extra or {}}

    def allowed(self, user: dict, project: str, stream: str, verb: str) -> bool:
        spec = {"user": user["username"], "groups": user["groups"],
                "resourceAttributes": {"namespace": project, "verb": verb, "group": IMAGE_GROUP,
                                       "resource": LAYERS, "name": stream}}
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = user["extra"]
        try:
            answer = self.authz.create_subject_access_review({"apiVersion": "authorization.k8s.io/v1",
                                                              "kind": "SubjectAccessReview", "spec": spec})
        except ApiException as exc:
            # Not a refusal: the real registry answers an error it cannot decide with a 5xx, no challenge.
            raise token_service.TokenError(503, "UNAVAILABLE", "SubjectAccessReview failed: HTTP %s" % exc.status,
                                           challenge=False) from None
        self._record({"review": "SubjectAccessReview", "user": user["username"], "namespace": project,
                      "name": stream, "verb": verb, "allowed": bool(answer.status.allowed),
                      "reason": answer.status.reason or ""})
        return bool(answer.status.allowed)

    def __call__(self, _username, password, scopes):
        repositories = [(scope, _split_repository(scope["name"])) for scope in scopes
                        if scope["type"] in ("repository", "signature")]
        user = self.user(password)
        access = []
        for scope, (project, stream) in repositories:
            if scope["type"] != "repository":
                continue  # signatures are not stood in for
            actions = [a for a in scope["actions"]
                       if a in ACTION_VERBS and self.allowed(user, project, stream, ACTION_VERBS[a])]
            if actions:
                access.append({"type": "repository", "name": scope["name"], "actions": actions})
        return user["username"], access


class InternalRegistry(token_registry.TokenRegistries):
    """docker-registry as ``image-registry.openshift-image-registry.svc:5000`` with token auth,
    its realm the token service stand-in deciding with :class:`RegistryAuthorizer`."""

    DOMAINS = (SERVER,)

    def __init__(self, state_dir: str, api_client):
        super().__init__(state_dir, iam_url=None, iam_apikey=None)
        self.authorizer = RegistryAuthorizer(api_client)

    def start(self) -> "InternalRegistry":
        os.makedirs(self.state_dir, exist_ok=True)
        registry_addr, _unused, token_addr = token_registry.pick_addresses()
        self.addresses = {SERVER: registry_addr, "token": token_addr}
        self.pki = token_registry.make_pki(os.path.join(self.state_dir, "pki"), [HOST], [registry_addr, token_addr])
        self.token = token_service.TokenServiceStandIn(
            cert=self.pki["cert"], key=self.pki["key"], signing_cert=self.pki["signing_cert"],
            signing_key=self.pki["signing_key"], host=token_addr, port=443, path=TOKEN_PATH,
            services={SERVER: {"kind": "authorizer", "authorize": self.authorizer}}).start()
        try:
            self._start_registry(SERVER)
        except Exception:
            self.stop()
            raise
        return self

    def image(self, project: str, stream: str, tag: str = "1") -> str:
        """The name a pod uses, as OpenShift's image streams publish it."""
        return "%s/%s/%s:%s" % (SERVER, project, stream, tag)
