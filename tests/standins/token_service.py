"""LOCAL STAND-IN for the token service of IBM Cloud Container Registry, for tests only.
This is NOT IBM's service.

``icr.io`` registries and the entitled registry ``cp.icr.io`` authenticate with the
Docker token flow: the registry answers 401 with ``Bearer realm=...,service=...,
scope=...``, the client asks the realm for a token with basic auth, and the registry
accepts requests that carry a token whose access covers them. Debian's
``docker-registry`` does the registry part for real (``auth.token``: realm, service,
issuer, rootcertbundle); this stand-in is the realm. It signs RS256 tokens with a key
whose certificate (signed by the CA in the registry's ``rootcertbundle``) travels in
the ``x5c`` header, as distribution verifies them.

Who gets a token, per ``service`` (one per registry it serves):

* ``iam`` services (``us.icr.io``, ...): username ``iamapikey`` and an API key that
  the IAM stand-in (tests/standins/iam_server.py) knows, asked over IAM's own HTTP
  API as a real token service would ask IAM: ``POST /identity/token`` with the key
  (unknown, deleted or disabled: 401), ``GET /v1/apikeys/details`` (whose key), and
  ``GET /v2/policies`` for its Container Registry policies, with the stand-in's own
  IAM key. Pull needs ``Reader``, ``Writer`` or ``Manager``, push ``Writer`` or
  ``Manager``, on a policy that applies to the registry's region (no ``region``
  attribute: every region) and to the image's registry namespace (the first path
  segment; no ``resourceType=namespace``: every namespace). A login without a scope
  (``docker login``) needs a key with at least one policy for that region. A locked
  key works, as in IAM (a lock only stops changes and deletion).
* ``entitled`` services (``cp.icr.io``): username ``cp`` and an entitlement key the
  stand-in was given (:meth:`TokenServiceStandIn.add_entitlement_key`); pull only, of
  images under ``cp/``.
* Publishers (:meth:`TokenServiceStandIn.add_publisher`): how test content gets into
  the registries; push and pull anywhere. Never a path the collection uses.
* ``authorizer`` services: a callable ``authorize(username, password, scopes)`` returning
  (subject, access) or raising :class:`TokenError` decides alone, also for requests
  without credentials (tests/standins/openshift_registry.py: OpenShift's integrated
  registry, whose realm is ``path="/openshift/token"``). A :class:`TokenError` may carry
  its own ``body`` and no challenge, for realms whose refusals look different.

Refusals use the registry API's error body ``{"errors": [{"code": "UNAUTHORIZED" |
"DENIED" | ..., "message": ..., "detail": ...}]}``: 401 ``UNAUTHORIZED`` (no or wrong
username, unknown or deleted key; with the ``Bearer realm=...,service=...,scope=...``
challenge) or 403 ``DENIED`` (no policy, wrong region, wrong namespace, role too
small). Each message starts with "token service stand-in". containerd reports only
the status line of a failed token request, so the stand-in also puts the code and
message in the HTTP reason phrase, which is how a pod's events say why.

``GET /oauth/token`` (Docker token spec: basic auth, ``service``, ``scope`` repeated,
``account``; answers ``token`` and ``access_token``) and ``POST /oauth/token`` (OAuth2
password grant, as containerd sends it; answers ``access_token``). The request log
(:meth:`TokenServiceStandIn.requests`) has service, username, scopes, status, code,
message and, for an API key IAM knows, its ``key_id`` (which key a pull used: the rotation
drill), never a key value.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import json
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

NAME = "token service stand-in"
ISSUER = "ibmreg-token-service-standin"
TOKEN_TTL = 300
GRANT_TYPE_APIKEY = "urn:ibm:params:oauth:grant-type:apikey"
ROLE_PREFIX = "crn:v1:bluemix:public:container-registry::::serviceRole:"
# What each Container Registry service role allows (IBM Cloud docs, "Managing IAM access
# for Container Registry": Reader pulls, Writer also pushes, Manager also deletes).
ROLE_ACTIONS = {"Reader": {"pull"}, "Writer": {"pull", "push"}, "Manager": {"pull", "push", "delete", "*"}}
ENTITLED_PREFIX = "cp/"
# Registry domain -> IAM region (facts: IBM Cloud Container Registry domains).
DOMAIN_REGIONS = {
    "icr.io": "global", "au.icr.io": "au-syd", "br.icr.io": "br-sao", "ca2.icr.io": "ca-mon",
    "ca.icr.io": "ca-tor", "de.icr.io": "eu-de", "es.icr.io": "eu-es", "uk.icr.io": "eu-gb",
    "in.icr.io": "in-che", "in2.icr.io": "in-mum", "jp2.icr.io": "jp-osa", "jp.icr.io": "jp-tok",
    "us.icr.io": "us-south",
}
KNOWN_POLICY_KEYS = {"accountId", "serviceName", "region", "resourceType", "resource"}


class TokenError(Exception):
    """A refusal; ``body`` (a document, or b"" for none) replaces the registry API's error
    body, and ``challenge=False`` leaves out the WWW-Authenticate header of a 401."""

    def __init__(self, status: int, code: str, message: str, body=None, challenge: bool = True):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = "%s: %s" % (NAME, message)
        self.body = body
        self.challenge = challenge


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_scope(text: str) -> dict:
    """``repository:ns/app:pull,push`` -> {type, name, actions}; the name may not hold ':'."""
    kind, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and kind and name):
        raise TokenError(400, "UNSUPPORTED", "malformed scope %r" % text[:200])
    return {"type": kind, "name": name, "actions": sorted(a for a in actions.split(",") if a)}


def _matches(attribute: dict, value) -> bool:
    operator = attribute.get("operator", "stringEquals")
    if operator == "stringEquals":
        return value is not None and attribute.get("value") == value
    if operator == "stringMatch":
        return value is not None and fnmatch.fnmatchcase(value, str(attribute.get("value")))
    if operator == "stringExists":
        return (value is not None) == bool(attribute.get("value"))
    return False


def policy_roles(policy: dict) -> set:
    roles = set()
    for role in ((policy.get("control") or {}).get("grant") or {}).get("roles") or []:
        role_id = role.get("role_id") or ""
        if role_id.startswith(ROLE_PREFIX):
            roles.add(role_id[len(ROLE_PREFIX):])
    return roles


def policy_applies(policy: dict, account_id: str, region: str, namespace: str | None) -> bool:
    """Whether a Container Registry policy covers ``region`` and ``namespace`` (None: any).

    Policies with conditions (rule, pattern) or attributes this stand-in does not
    evaluate never apply: refusing is the safe side of a stand-in.
    """
    if policy.get("state", "active") != "active" or policy.get("rule") or policy.get("pattern"):
        return False
    attributes = {a.get("key"): a for a in (policy.get("resource") or {}).get("attributes") or []}
    if set(attributes) - KNOWN_POLICY_KEYS:
        return False
    if not _matches(attributes.get("accountId", {}), account_id):
        return False
    if not _matches(attributes.get("serviceName", {}), "container-registry"):
        return False
    if "region" in attributes and not _matches(attributes["region"], region):
        return False
    if "resourceType" in attributes:
        if not _matches(attributes["resourceType"], "namespace"):
            return False
        if namespace is not None and not _matches(attributes.get("resource", {}), namespace):
            return False
    return True


def _describe(policies: list) -> str:
    parts = []
    for policy in policies:
        values = {a.get("key"): a.get("value") for a in (policy.get("resource") or {}).get("attributes") or []}
        roles = "/".join(sorted(policy_roles(policy))) or "no role"
        parts.append("%s (region %s, namespace %s)" % (roles, values.get("region", "any"), values.get("resource", "any")))
    return "; ".join(parts[:5]) or "none"


def iam_decision(policies: list, iam_id: str, account_id: str, domain: str, scopes: list) -> list:
    """The access list a key's Container Registry policies give for ``scopes``, or TokenError."""
    region = DOMAIN_REGIONS[domain]
    registry = [p for p in policies if policy_roles(p)]
    if not registry:
        raise TokenError(403, "DENIED", "%s has no IBM Cloud Container Registry access policy "
                         "(service role Reader, Writer or Manager)" % iam_id)
    in_region = [p for p in registry if policy_applies(p, account_id, region, None)]
    if not in_region:
        raise TokenError(403, "DENIED", "no Container Registry policy of %s applies to region %s (%s); "
                         "its policies: %s" % (iam_id, region, domain, _describe(registry)))
    access = []
    for scope in scopes:
        if scope["type"] != "repository":
            raise TokenError(403, "DENIED", "scope type %s is not granted by IAM policies" % scope["type"])
        namespace, slash, _image = scope["name"].partition("/")
        if not slash:
            raise TokenError(403, "DENIED", "repository %s has no registry namespace" % scope["name"])
        covering = [p for p in in_region if policy_applies(p, account_id, region, namespace)]
        if not covering:
            raise TokenError(403, "DENIED", "no Container Registry policy of %s covers namespace %s in region %s; "
                             "its policies: %s" % (iam_id, namespace, region, _describe(in_region)))
        allowed = set()
        for policy in covering:
            for role in policy_roles(policy):
                allowed |= ROLE_ACTIONS.get(role, set())
        missing = [a for a in scope["actions"] if a not in allowed]
        if missing:
            roles = sorted(set().union(*(policy_roles(p) for p in covering)))
            raise TokenError(403, "DENIED", "role %s of %s on namespace %s does not allow %s"
                             % ("/".join(roles), iam_id, namespace, ",".join(missing)))
        access.append({"type": "repository", "name": scope["name"], "actions": scope["actions"]})
    return access


class _Iam:
    """The IAM stand-in, over its HTTP API; never through a proxy."""

    def __init__(self, url: str, apikey: str):
        self.url = url.rstrip("/")
        self.apikey = apikey
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.lock = threading.Lock()
        self.own_token = None
        self.own_expiry = 0

    def _call(self, method, path, headers, body=None):
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=15) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                document = json.loads(exc.read() or b"null")
            except ValueError:
                document = None
            return exc.code, document
        except (urllib.error.URLError, OSError) as exc:
            raise TokenError(503, "UNAVAILABLE", "IAM could not be asked: %s" % getattr(exc, "reason", exc)) from None

    def token_for(self, apikey: str):
        body = urllib.parse.urlencode({"grant_type": GRANT_TYPE_APIKEY, "apikey": apikey,
                                       "response_type": "cloud_iam"}).encode()
        status, document = self._call("POST", "/identity/token",
                                      {"Content-Type": "application/x-www-form-urlencoded",
                                       "Accept": "application/json"}, body)
        if status == 200 and document and document.get("access_token"):
            return document["access_token"], int(document.get("expiration") or 0)
        if status in (400, 401, 404):
            return None, 0
        raise TokenError(503, "UNAVAILABLE", "IAM answered HTTP %s to the API key" % status)

    def _own(self):
        with self.lock:
            if not self.own_token or self.own_expiry < time.time() + 60:
                token, expiry = self.token_for(self.apikey)
                if token is None:
                    raise TokenError(503, "UNAVAILABLE", "IAM refused the stand-in's own API key")
                self.own_token, self.own_expiry = token, expiry
            return self.own_token

    def key_details(self, apikey: str, user_token: str):
        status, document = self._call("GET", "/v1/apikeys/details",
                                      {"IAM-ApiKey": apikey, "Authorization": "Bearer " + user_token,
                                       "Accept": "application/json"})
        if status == 200:
            return document
        if status == 404:
            return None
        raise TokenError(503, "UNAVAILABLE", "IAM answered HTTP %s to the API key details" % status)

    def registry_policies(self, account_id: str, iam_id: str) -> list:
        policies, start = [], None
        while True:
            query = {"account_id": account_id, "iam_id": iam_id, "service_name": "container-registry",
                     "type": "access"}
            if start:
                query["start"] = start
            status, document = self._call("GET", "/v2/policies?" + urllib.parse.urlencode(query),
                                          {"Authorization": "Bearer " + self._own(), "Accept": "application/json"})
            if status != 200:
                raise TokenError(503, "UNAVAILABLE", "IAM answered HTTP %s to the policy list" % status)
            policies += document.get("policies") or []
            start = (document.get("next") or {}).get("start")
            if not start:
                return policies


class TokenServiceStandIn:
    """The realm of one or more registries; ``services``: {name: {"kind": "iam"|"entitled"}} or
    {name: {"kind": "authorizer", "authorize": callable}}; ``path``: the realm's path."""

    def __init__(self, *, cert: str, key: str, signing_cert: str, signing_key: str, services: dict,
                 iam_url: str | None = None, iam_apikey: str | None = None, host: str = "127.0.0.1",
                 port: int = 0, issuer: str = ISSUER, path: str = "/oauth/token"):
        self.services = {}
        for name, spec in services.items():
            if spec["kind"] == "iam" and name not in DOMAIN_REGIONS:
                raise ValueError("%s: %s is not an IBM Cloud Container Registry domain" % (NAME, name))
            if spec["kind"] == "iam" and not iam_url:
                raise ValueError("%s: service %s asks IAM, and no iam_url was given" % (NAME, name))
            if spec["kind"] == "authorizer" and not callable(spec.get("authorize")):
                raise ValueError("%s: service %s has no authorize callable" % (NAME, name))
            if spec["kind"] not in ("iam", "entitled", "authorizer"):
                raise ValueError("%s: unknown service kind %s" % (NAME, spec["kind"]))
            self.services[name] = dict(spec)
        self.issuer = issuer
        self.path = path
        self.iam = _Iam(iam_url, iam_apikey) if iam_url else None
        self.entitlement_keys = set()
        self.publishers = {}
        self.log = []
        self.lock = threading.Lock()
        with open(signing_key, "rb") as src:
            self._signer = serialization.load_pem_private_key(src.read(), password=None)
        with open(signing_cert, "rb") as src:
            leaf = x509.load_pem_x509_certificate(src.read())
        self._x5c = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode("ascii")]
        service = self

        class Handler(_Handler):
            pass

        Handler.service = service
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        # Handshake in the request thread: a client that never speaks TLS blocks only itself.
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        address, bound_port = self.httpd.server_address[:2]
        self.realm = "https://%s:%d%s" % (address, bound_port, path)
        self._thread = None

    # lifecycle and test controls
    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="token-service-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_entitlement_key(self, value: str) -> None:
        with self.lock:
            self.entitlement_keys.add(value)

    def remove_entitlement_key(self, value: str) -> None:
        with self.lock:
            self.entitlement_keys.discard(value)

    def add_publisher(self, username: str, password: str) -> None:
        with self.lock:
            self.publishers[username] = password

    def requests(self, since: int = 0) -> list:
        with self.lock:
            return [dict(e) for e in self.log[since:]]

    def mark(self) -> int:
        with self.lock:
            return len(self.log)

    # the decision
    def decide(self, service: str, username: str | None, password: str | None, scopes: list,
               note: dict | None = None) -> tuple:
        """(subject, access) for a token, or TokenError; ``note`` gets the ``key_id`` of an
        IAM API key that IAM knows (an ID, never the value)."""
        spec = self.services.get(service)
        if spec is None:
            raise TokenError(400, "UNSUPPORTED", "unknown service %r (this realm serves %s)"
                             % ((service or "")[:100], ", ".join(sorted(self.services))))
        if spec["kind"] == "authorizer":
            return spec["authorize"](username, password, scopes)
        if not username or password is None:
            raise TokenError(401, "UNAUTHORIZED", "authentication required: basic credentials for %s" % service)
        with self.lock:
            publisher = self.publishers.get(username)
        if publisher is not None:
            if not secrets.compare_digest(publisher, password):
                raise TokenError(401, "UNAUTHORIZED", "wrong password for publisher %s" % username)
            return username, [dict(s) for s in scopes]
        if spec["kind"] == "entitled":
            return self._entitled(service, username, password, scopes)
        return self._iam(service, username, password, scopes, {} if note is None else note)

    def _entitled(self, service, username, password, scopes):
        if username != "cp":
            raise TokenError(401, "UNAUTHORIZED", "%s takes username cp with an entitlement key, not %r"
                             % (service, username[:64]))
        with self.lock:
            known = any(secrets.compare_digest(k, password) for k in self.entitlement_keys)
        if not known:
            raise TokenError(401, "UNAUTHORIZED", "the entitlement key is not valid for %s" % service)
        for scope in scopes:
            if scope["type"] != "repository" or not scope["name"].startswith(ENTITLED_PREFIX):
                raise TokenError(403, "DENIED", "an entitlement key pulls only images under %s, not %s"
                                 % (ENTITLED_PREFIX, scope["name"]))
            if set(scope["actions"]) - {"pull"}:
                raise TokenError(403, "DENIED", "an entitlement key only pulls, it cannot %s %s"
                                 % (",".join(a for a in scope["actions"] if a != "pull"), scope["name"]))
        return "cp", [dict(s) for s in scopes]

    def _iam(self, service, username, password, scopes, note):
        if username != "iamapikey":
            raise TokenError(401, "UNAUTHORIZED", "%s takes username iamapikey with an IAM API key, not %r"
                             % (service, username[:64]))
        user_token, _expiry = self.iam.token_for(password)
        details = self.iam.key_details(password, user_token) if user_token else None
        if not user_token or not details:
            raise TokenError(401, "UNAUTHORIZED", "IAM does not know this API key (deleted, disabled or "
                             "never created)")
        note["key_id"] = details.get("id")
        if details.get("disabled"):
            raise TokenError(401, "UNAUTHORIZED", "the API key %s is disabled" % details.get("id"))
        iam_id, account_id = details["iam_id"], details["account_id"]
        policies = self.iam.registry_policies(account_id, iam_id)
        return iam_id, iam_decision(policies, iam_id, account_id, service, scopes)

    def sign(self, service: str, subject: str, access: list) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        claims = {"iss": self.issuer, "sub": subject, "aud": service, "exp": now + TOKEN_TTL, "nbf": now - 5,
                  "iat": now, "jti": secrets.token_hex(16), "access": access}
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        signature = self._signer.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)


class _Handler(BaseHTTPRequestHandler):
    service: TokenServiceStandIn = None
    protocol_version = "HTTP/1.1"
    server_version = "IbmregTokenServiceStandIn/1.0"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # the decisions are in service.log, without keys

    def _send(self, status, document, reason=None, headers=None):
        body = document if isinstance(document, bytes) else json.dumps(document).encode("utf-8")
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _basic(self):
        header = self.headers.get("Authorization") or ""
        if not header.lower().startswith("basic "):
            return None, None
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise TokenError(401, "UNAUTHORIZED", "malformed basic credentials") from None
        username, sep, password = raw.partition(":")
        return (username, password) if sep else (None, None)

    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        split = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        self._token(split.path, lambda: (query.get("service", [None])[0], query.get("scope", []), self._basic()),
                    "GET")

    def do_POST(self):  # noqa: N802  pylint: disable=invalid-name
        split = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""

        def form():
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != "application/x-www-form-urlencoded":
                raise TokenError(400, "UNSUPPORTED", "Content-Type must be application/x-www-form-urlencoded")
            fields = urllib.parse.parse_qs(body, keep_blank_values=True)
            grant = fields.get("grant_type", [""])[0]
            if grant != "password":
                # No refresh tokens are handed out, so only the password grant can be valid.
                raise TokenError(401, "UNAUTHORIZED", "unsupported grant_type %r" % grant[:40])
            scopes = " ".join(fields.get("scope", [])).split()
            return (fields.get("service", [None])[0], scopes,
                    (fields.get("username", [None])[0], fields.get("password", [None])[0]))

        self._token(split.path, form, "POST")

    def _token(self, path, read, method):
        service = self.service
        entry = {"time": time.time(), "method": method, "service": None, "username": None, "scopes": [],
                 "status": None, "code": None, "message": None, "key_id": None}
        scope_text = ""
        try:
            if path != service.path:
                raise TokenError(404, "NOT_FOUND", "no such endpoint %s %s" % (method, path[:100]))
            name, raw_scopes, (username, password) = read()
            scope_text = " ".join(raw_scopes)
            entry.update(service=name, username=username, scopes=list(raw_scopes))
            scopes = [parse_scope(s) for s in raw_scopes]
            subject, access = service.decide(name, username, password, scopes, entry)
            token = service.sign(name, subject, access)
            issued = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            document = {"access_token": token, "expires_in": TOKEN_TTL, "issued_at": issued}
            if method == "GET":
                document["token"] = token
            else:
                document["scope"] = scope_text
            entry.update(status=200)
            self._send(200, document)
        except TokenError as exc:
            entry.update(status=exc.status, code=exc.code, message=exc.message)
            headers = {}
            if exc.status == 401 and exc.challenge:
                challenge = 'Bearer realm="%s",service="%s"' % (service.realm, entry["service"] or "")
                if scope_text:
                    challenge += ',scope="%s"' % scope_text.replace('"', "")
                headers["WWW-Authenticate"] = challenge
            reason = "%s (%s: %s)" % ({400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                                       404: "Not Found"}.get(exc.status, "Error"), exc.code, exc.message)
            document = exc.body
            if document is None:
                document = {"errors": [{"code": exc.code, "message": exc.message,
                                        "detail": {"service": entry["service"], "scope": scope_text}}]}
            self._send(exc.status, document, reason=reason.replace("\r", " ").replace("\n", " ")[:400],
                       headers=headers)
        finally:
            with service.lock:
                service.log.append(entry)
