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

import base64
import http.server
import json
import logging
import os
import re
import secrets
import ssl
import subprocess
import tempfile
import threading
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException

GROUP = "route.openshift.io"
CERT_FIELDS = ("certificate", "key", "caCertificate", "destinationCACertificate")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

log = logging.getLogger("route-admission-standin")


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


class RouteAdmissionStandIn:
    """Validating webhook for Routes. LOCAL STAND-IN for openshift-apiserver's route admission."""

    def __init__(self, kubeconfig: str):
        api_client = config.new_client_from_config(config_file=kubeconfig)
        self._authz = client.AuthorizationV1Api(api_client)
        self._admission = client.AdmissionregistrationV1Api(api_client)
        self.name = "route-admission-standin-%d-%s" % (os.getpid(), secrets.token_hex(3))
        self._dir = tempfile.mkdtemp(prefix="route-admission-")
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
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

    # --- the HTTPS server and the webhook configuration ----------------------------------

    def _certificate(self) -> tuple:
        cert, key = os.path.join(self._dir, "tls.crt"), os.path.join(self._dir, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=route-admission-standin", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        return cert, key

    def start(self) -> "RouteAdmissionStandIn":
        cert, key = self._certificate()
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                try:
                    response = standin.review(body.get("request") or {})
                except Exception as exc:  # answer, so the API server does not wait for its timeout
                    log.warning("route admission stand-in failed: %r", exc)
                    response = {"uid": (body.get("request") or {}).get("uid"), "allowed": False,
                                "status": {"code": 500, "message": "route admission stand-in: %r" % exc}}
                data = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": response}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        with open(cert, "rb") as handle:
            bundle = base64.b64encode(handle.read()).decode()
        self._admission.create_validating_webhook_configuration({
            "metadata": {"name": self.name, "labels": {"app.kubernetes.io/part-of": "ibmreg-tests"}},
            "webhooks": [{
                "name": "routes.route-admission-standin.ibmreg.test",
                "clientConfig": {"url": "https://127.0.0.1:%d/validate" % self._server.server_address[1],
                                 "caBundle": bundle},
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [GROUP], "apiVersions": ["v1"],
                           "resources": ["routes"], "scope": "Namespaced"}],
                "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5}]})
        self._wait_until_called()
        return self

    def _wait_until_called(self, timeout: float = 30) -> None:
        """The API server picks up a new webhook configuration a moment later: wait for it
        by asking for a dry-run Route with an invalid host until the webhook refuses it."""
        api = client.CustomObjectsApi(self._authz.api_client)
        # Upper case: the real Route CRD's host pattern allows it, so the request reaches
        # the webhook (a trailing dot would be refused by the schema first).
        probe = {"apiVersion": GROUP + "/v1", "kind": "Route", "metadata": {"name": "admission-probe"},
                 "spec": {"host": "Probe.example.com", "to": {"kind": "Service", "name": "probe"}}}
        deadline = time.monotonic() + timeout
        while True:
            try:
                api.create_namespaced_custom_object(GROUP, "v1", "default", "routes", probe, dry_run="All")
            except ApiException as exc:
                if exc.status == 422 and "lowercase RFC 1123 subdomain" in (exc.body or ""):
                    return
                if exc.status not in (404, 409, 422):
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError("the API server did not call the route admission stand-in within %ss" % timeout)
            time.sleep(0.2)

    def stop(self) -> None:
        try:
            self._admission.delete_validating_webhook_configuration(self.name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "RouteAdmissionStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
