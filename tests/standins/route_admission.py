"""LOCAL STAND-IN for openshift-apiserver's Route admission, for tests only. This is NOT OpenShift.

On OpenShift, Routes are served by openshift-apiserver; here they are a CRD (the one
openshift/api publishes, with its CEL rules, on a 1.25+ control plane; else
tests/cluster/crds/route.openshift.io.yaml), which knows nothing of two rules that
OpenShift's route strategy enforces before a Route is stored:

* **Custom host permission.** Creating a Route with ``spec.host`` or any TLS certificate
  field (certificate, key, caCertificate, destinationCACertificate) needs ``create`` on
  ``routes/custom-host``; changing the host (or a certificate) of an existing Route needs
  ``update`` on it. OpenShift asks the API server with a SubjectAccessReview for the
  requesting user; so does this stand-in, with the user, groups and extra the API server
  reports in the AdmissionReview, and refuses the request as OpenShift does
  (``spec.host: Forbidden: you do not have permission to set the host field of the route``).
* **Host names.** A lowercase DNS-1123 subdomain: each label at most 63 characters, no
  trailing dot, at most 253 in all (``spec.host: Invalid value``).

It is a real validating admission webhook of the local kube-apiserver: an HTTPS server on
127.0.0.1 (a self-signed certificate made with openssl for this run) and a
ValidatingWebhookConfiguration of its own name, deleted again by :meth:`stop`. The
configuration uses ``failurePolicy: Ignore`` so that a test process killed before
``stop`` leaves no webhook that blocks every later Route write on a shared cluster.
The SubjectAccessReviews are made with the kubeconfig it is given (the ``fixture``
user), so they never count as requests of the client under test.

Usage: ``with RouteAdmissionStandIn(kubeconfig): ...``.
"""

from __future__ import annotations

import re

from kubernetes import client

from serving import AdmissionWebhook

GROUP = "route.openshift.io"
CERT_FIELDS = ("certificate", "key", "caCertificate", "destinationCACertificate")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a valid Route host, as OpenShift's validation says it, or None."""
    if host.endswith("."):
        return "must not end with a dot"
    if len(host) > 253:
        return "must be no more than 253 characters"
    for label in host.split("."):
        if len(label) > 63:
            return "each label must be no more than 63 characters (%r has %d)" % (label, len(label))
        if not _LABEL.match(label):
            return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric character")
    return None


def _certificates(route: dict | None) -> dict:
    tls = ((route or {}).get("spec") or {}).get("tls") or {}
    return {field: tls.get(field) for field in CERT_FIELDS if tls.get(field)}


def custom_host_verb(operation: str, route: dict, old: dict | None) -> str | None:
    """The verb on routes/custom-host this request needs, or None."""
    host = (route.get("spec") or {}).get("host") or ""
    if operation == "CREATE":
        return "create" if host or _certificates(route) else None
    old_host = ((old or {}).get("spec") or {}).get("host") or ""
    if old_host and host != old_host:
        return "update"
    if _certificates(route) != _certificates(old):
        return "update"
    return None


class RouteAdmissionStandIn(AdmissionWebhook):
    """Validating webhook for Routes (AdmissionWebhook's KIND). LOCAL STAND-IN for openshift-apiserver's
    route admission."""

    LABEL = "route-admission-standin"
    TITLE = "route admission stand-in"

    def __init__(self, kubeconfig: str):
        super().__init__(kubeconfig)
        self._authz = client.AuthorizationV1Api(self._api_client)
        self.decisions: list = []   # (operation, namespace, name, allowed, reason)

    # --- decisions -----------------------------------------------------------------------

    def allowed(self, user: dict, namespace: str, name: str, verb: str) -> bool:
        review = self._authz.create_subject_access_review({"spec": {
            "user": user.get("username"), "uid": user.get("uid"), "groups": user.get("groups") or [],
            "extra": user.get("extra") or {},
            "resourceAttributes": {"namespace": namespace, "verb": verb, "group": GROUP, "resource": "routes",
                                   "subresource": "custom-host", "name": name}}})
        return bool(review.status.allowed)

    def review(self, request: dict) -> dict:
        """The AdmissionReview response for one request."""
        operation = request.get("operation")
        route = request.get("object") or {}
        old = request.get("oldObject")
        namespace = request.get("namespace") or ""
        name = request.get("name") or (route.get("metadata") or {}).get("name") or ""
        response = {"uid": request.get("uid"), "allowed": True}
        host = (route.get("spec") or {}).get("host") or ""
        problem = host_problem(host) if host else None
        if problem:
            response.update(allowed=False, status={
                "code": 422, "reason": "Invalid",
                "message": 'Route.route.openshift.io "%s" is invalid: spec.host: Invalid value: "%s": %s'
                           % (name, host, problem)})
        else:
            verb = custom_host_verb(operation, route, old) if operation in ("CREATE", "UPDATE") else None
            if verb and not self.allowed(request.get("userInfo") or {}, namespace, name, verb):
                what = "set" if verb == "create" else "update"
                response.update(allowed=False, status={
                    "code": 422, "reason": "Invalid",
                    "message": 'Route.route.openshift.io "%s" is invalid: spec.host: Forbidden: you do not have '
                               "permission to %s the host field of the route" % (name, what)})
        self.decisions.append((operation, namespace, name, response["allowed"],
                               (response.get("status") or {}).get("message")))
        return response

    # --- the webhook configuration ------------------------------------------------------

    def webhooks(self, url: str, ca_bundle: str) -> list:
        return [{
            "name": "routes.route-admission-standin.ibmreg.test",
            "clientConfig": {"url": url + "/validate", "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [GROUP], "apiVersions": ["v1"],
                       "resources": ["routes"], "scope": "Namespaced"}],
            "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5}]

    def probe(self) -> tuple:
        """A Route with an invalid host: upper case, which the real Route CRD's host pattern
        allows, so the request reaches the webhook (a trailing dot would be refused by the
        schema first)."""
        return GROUP, "routes", {
            "apiVersion": GROUP + "/v1", "kind": "Route", "metadata": {"name": "admission-probe"},
            "spec": {"host": "Probe.example.com", "to": {"kind": "Service", "name": "probe"}}}, \
            "lowercase RFC 1123 subdomain"
