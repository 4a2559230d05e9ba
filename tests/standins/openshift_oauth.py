"""LOCAL STAND-IN for OpenShift's OAuth server, for tests only. This is NOT OpenShift's server.

The local control plane is a plain kube-apiserver: it has no OAuth server, so nothing
exchanges a user name and password for a token as ``oc login -u <user> -p <password>``
does on OpenShift (and, with the user name ``apikey`` and an IBM Cloud API key, on Red Hat
OpenShift on IBM Cloud). This stand-in is a TLS proxy on 127.0.0.1 in front of the real
API server that serves the parts of the OAuth server that a password login uses, with the
shapes of the real one (openshift/oauth-server, osin):

* ``GET /.well-known/oauth-authorization-server`` - the OAuth 2.0 server metadata
  (``issuer``, ``authorization_endpoint``, ``token_endpoint``, supported grants, PKCE).
* ``GET /oauth/authorize`` for the client ``openshift-challenging-client`` with
  ``response_type=code``, an ``X-CSRF-Token`` header and basic credentials: a 302 to
  ``/oauth/token/implicit?code=...&state=...``. Missing or wrong credentials: 401 with
  ``WWW-Authenticate: Basic realm="openshift"``, as the real challenge. Other clients,
  response types or a missing CSRF header: 400.
* ``POST /oauth/token`` (form, client basic auth ``openshift-challenging-client:``,
  ``grant_type=authorization_code``): the code for an access token. Codes are single-use
  and expire after ``code_ttl`` seconds (400 ``invalid_grant`` otherwise).
* every other path is forwarded, with its headers and body, to the real API server.

Credentials it accepts: ``users`` maps ``(username, password)`` to a ServiceAccount
``(namespace, name)``; with ``iam`` (an :class:`iam_server.IamStandIn`) the user ``apikey``
with any API key that stand-in knows maps to ``iam_service_account``. The access tokens
are not the stand-in's own: it mints them with the TokenRequest API for the mapped
ServiceAccount (as the identity of the kubeconfig it is given, the ``fixture`` user), so the
real API server authenticates and authorizes every request made with them.

:attr:`OAuthStandIn.log` records each OAuth request (path, user name, outcome), never a
password, code or token.

Usage: ``with OAuthStandIn(cluster.server, cluster.ca, cert, key, fixture_kubeconfig,
users={("apikey", key): ("ns", "sa")}) as oauth: oauth.url``.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlencode, urlsplit

from kubernetes import client, config

from serving import BackgroundServer

CHALLENGING_CLIENT = "openshift-challenging-client"
REALM = "openshift"
# Headers that belong to one hop, never forwarded (RFC 9110 section 7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}


class OAuthStandIn(BackgroundServer):
    """The TLS proxy and its OAuth endpoints; start()/stop() or a with block."""

    def __init__(self, api_server, ca, cert, key, kubeconfig, users=None, iam=None,
                 iam_service_account=None, code_ttl=60, token_ttl=3600):
        self.api = urlsplit(api_server)
        self.ca = ca
        self.users = dict(users or {})
        self.iam = iam
        self.iam_service_account = iam_service_account
        self.code_ttl = code_ttl
        self.token_ttl = max(600, int(token_ttl))  # TokenRequest's minimum
        self.codes = {}  # code -> (service account, expiry)
        self.log = []
        self.lock = threading.Lock()
        self._kube = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))

        class Handler(_Handler):
            pass

        Handler.standin = self
        super().__init__(Handler, "oauth-standin", cert=cert, key=key)

    # --- what the handler asks ----------------------------------------------------------

    def metadata(self):
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/oauth/authorize",
            "token_endpoint": self.url + "/oauth/token",
            "scopes_supported": ["user:check-access", "user:full", "user:info", "user:list-projects",
                                 "user:list-scoped-projects"],
            "response_types_supported": ["code", "token"],
            "grant_types_supported": ["authorization_code", "implicit"],
            "code_challenge_methods_supported": ["plain", "S256"],
        }

    def service_account_for(self, username, password):
        """The (namespace, name) that a user name and password log in as, or None."""
        for (user, known), account in self.users.items():
            if user == username and secrets.compare_digest(known.encode(), password.encode()):
                return account
        if username == "apikey" and self.iam is not None and self._iam_knows(password):
            return self.iam_service_account
        return None

    def _iam_knows(self, key):
        state = self.iam.state
        with state.lock:
            if key in state.admin_keys:
                return True
            return any(secrets.compare_digest(record["_value"], key) and not record["disabled"]
                       for record in state.api_keys.values())

    def issue_code(self, account):
        code = secrets.token_urlsafe(32)
        with self.lock:
            self.codes[code] = (account, time.monotonic() + self.code_ttl)
        return code

    def redeem_code(self, code):
        """The service account of a code, once; None when unknown, used or expired."""
        with self.lock:
            account, expires = self.codes.pop(code, (None, 0))
        if account is None or time.monotonic() > expires:
            return None
        return account

    def mint_token(self, account):
        namespace, name = account
        response = self._kube.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": self.token_ttl}})
        return response.status.token

    def record(self, path, username, outcome):
        with self.lock:
            self.log.append({"path": path, "user": username, "outcome": outcome})


def _basic(header):
    """(user, password) of an Authorization: Basic header, or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class _Handler(BaseHTTPRequestHandler):
    standin: OAuthStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def _send(self, status, body=b"", content_type="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self):
        path = urlsplit(self.path).path
        if path == "/.well-known/oauth-authorization-server" and self.command == "GET":
            return self._send(200, self.standin.metadata())
        if path == "/oauth/authorize" and self.command == "GET":
            return self._authorize()
        if path == "/oauth/token" and self.command == "POST":
            return self._token()
        if path == "/oauth/token/implicit" and self.command == "GET":
            return self._send(200, b"Authorization code issued; exchange it at /oauth/token.", "text/plain")
        return self._forward()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _route

    def _authorize(self):
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if query.get("client_id") != CHALLENGING_CLIENT or query.get("response_type") != "code":
            self.standin.record("/oauth/authorize", None, "invalid_request")
            return self._send(400, {"error": "invalid_request",
                                    "error_description": "client_id %s with response_type code only"
                                    % CHALLENGING_CLIENT})
        if not self.headers.get("X-CSRF-Token"):
            self.standin.record("/oauth/authorize", None, "csrf")
            return self._send(400, b"CSRF token required", "text/plain")
        credentials = _basic(self.headers.get("Authorization"))
        account = self.standin.service_account_for(*credentials) if credentials else None
        if account is None:
            self.standin.record("/oauth/authorize", credentials[0] if credentials else None, "unauthorized")
            return self._send(401, b"Unauthorized", "text/plain",
                              {"WWW-Authenticate": 'Basic realm="%s"' % REALM})
        code = self.standin.issue_code(account)
        # The client's state comes back with the code, as in any OAuth 2.0 redirect.
        redirect = {"code": code}
        if "state" in query:
            redirect["state"] = query["state"]
        location = "%s/oauth/token/implicit?%s" % (self.standin.url, urlencode(redirect))
        self.standin.record("/oauth/authorize", credentials[0], "code")
        return self._send(302, headers={"Location": location})

    def _token(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8")).items()}
        client_auth = _basic(self.headers.get("Authorization"))
        if client_auth is None:
            client_auth = (form.get("client_id"), form.get("client_secret", ""))
        if client_auth != (CHALLENGING_CLIENT, ""):
            self.standin.record("/oauth/token", None, "invalid_client")
            return self._send(401, {"error": "unauthorized_client"})
        if form.get("grant_type") != "authorization_code" or not form.get("code"):
            self.standin.record("/oauth/token", None, "invalid_request")
            return self._send(400, {"error": "unsupported_grant_type"})
        account = self.standin.redeem_code(form["code"])
        if account is None:
            self.standin.record("/oauth/token", None, "invalid_grant")
            return self._send(400, {"error": "invalid_grant",
                                    "error_description": "The authorization code is unknown, used or expired."})
        token = self.standin.mint_token(account)
        self.standin.record("/oauth/token", None, "token for system:serviceaccount:%s:%s" % account)
        return self._send(200, {"access_token": token, "token_type": "Bearer",
                                "expires_in": self.standin.token_ttl, "scope": "user:full"})

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        context = ssl.create_default_context(cafile=self.standin.ca)
        upstream = http.client.HTTPSConnection(self.standin.api.hostname, self.standin.api.port,
                                               context=context, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            passed = {name: value for name, value in response.getheaders() if name.lower() not in HOP_BY_HOP}
        finally:
            upstream.close()
        self.send_response(response.status)
        for name, value in passed.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
