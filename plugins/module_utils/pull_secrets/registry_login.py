# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Log in to a registry with the Docker Registry HTTP API v2, to check credentials.

``GET /v2/`` answers 401 with a ``WWW-Authenticate`` challenge. ``Basic`` means the
same request again with basic auth. ``Bearer realm=...,service=...`` (IBM Cloud
Container Registry, ``cp.icr.io`` and most registries) is the Docker token flow: ask
the realm for a token with basic auth (``service``, the challenge's ``scope`` and
``account``, as ``docker login`` does), then ``GET /v2/`` again with that token. A 200
at the end means the registry accepted the credentials; a 401/403 (or 400, which IBM
Cloud Container Registry gives for a bad API key) means it rejected them, and the
message carries the code and message of the registry's or token service's error body
(``{"errors": [{"code": ..., "message": ...}]}``), which say why: an unknown or
deleted API key, no access policy, no access in that region. Messages never contain
the password.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import re
import socket

from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlencode

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.redaction import REDACTED

REJECTED = (400, 401, 403)
# Enough of an error body for a message; registries answer in a few hundred bytes.
_MAX_BODY = 65536
_MAX_DETAIL = 300
# auth-param = token "=" ( token / quoted-string ), RFC 7235; quoted strings may hold commas.
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|$)')
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9_.-]*)(?:\s+|$)")


class LoginError(Exception):
    """The registry rejected the credentials, or could not be asked."""


def parse_challenges(header):
    """[(scheme, {param: value})] from a WWW-Authenticate header, schemes lower-case.

    One header may carry several challenges (``Basic realm="x", Bearer realm="y"``);
    quoted values may contain commas (``scope="repository:a:pull,push"``) and escaped
    quotes. Parameter names are lower-cased, values kept as sent.
    """
    challenges = []
    text = (header or "").strip()
    pos = 0
    while pos < len(text):
        match = _SCHEME.match(text, pos)
        if not match:
            break
        scheme, pos = match.group(1).lower(), match.end()
        params = {}
        while pos < len(text):
            param = _PARAM.match(text, pos)
            # A bare word followed by a space or the end is the next challenge's scheme.
            if not param:
                break
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[param.group(1).lower()] = value
            pos = param.end()
        challenges.append((scheme, params))
        while pos < len(text) and text[pos] in ", ":
            pos += 1
    return challenges


def parse_challenge(header):
    """('bearer'|'basic'|..., {param: value}) of the challenge to answer; (None, {}) if none.

    A Bearer challenge with a realm is preferred over Basic, as docker does.
    """
    challenges = parse_challenges(header)
    for scheme, params in challenges:
        if scheme == "bearer" and params.get("realm"):
            return scheme, params
    if challenges:
        return challenges[0]
    return None, {}


def token_from_response(body):
    """The bearer token of a token service's JSON answer (``token`` or ``access_token``).

    Docker's token spec names it ``token``; OAuth2-style services (``POST``) answer
    ``access_token``; many send both. Raises LoginError when there is none.
    """
    try:
        document = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise LoginError("the token service answered 200 without a JSON document")
    if not isinstance(document, dict):
        raise LoginError("the token service answered 200 without a JSON object")
    for key in ("token", "access_token"):
        value = document.get(key)
        if isinstance(value, str) and value:
            return value
    raise LoginError("the token service answered 200 without a token "
                     "(neither token nor access_token)")


def error_summary(body, secret=None):
    """'CODE: message' from a registry or token service error body, or None.

    Shapes: the Docker Registry API's ``{"errors": [{"code", "message", "detail"}]}``,
    OAuth2's ``{"error", "error_description"}``, IAM's ``{"errorCode", "errorMessage"}``.
    The secret is replaced with REDACTED should a server ever echo it.
    """
    if not body:
        return None
    try:
        document = json.loads(body.decode("utf-8", "replace") if isinstance(body, bytes) else body)
    except ValueError:
        return None
    parts = []
    if isinstance(document, dict):
        errors = document.get("errors")
        if isinstance(errors, list):
            for entry in errors:
                if isinstance(entry, dict):
                    parts.append(_join(entry.get("code"), entry.get("message")))
        elif document.get("error") or document.get("error_description"):
            parts.append(_join(document.get("error"), document.get("error_description")))
        elif document.get("errorCode") or document.get("errorMessage"):
            parts.append(_join(document.get("errorCode"), document.get("errorMessage")))
    text = "; ".join(p for p in parts if p)
    if not text:
        return None
    if secret:
        text = text.replace(secret, REDACTED)
    return text[:_MAX_DETAIL]


def _join(code, message):
    code = code if isinstance(code, str) else ""
    message = message if isinstance(message, str) else ""
    return ": ".join(p for p in (code, message) if p)


def registry_base(server):
    """https://host[:port] for a server given as host[:port][/path] or a URL."""
    if "://" not in server:
        server = "https://" + server
    scheme, _sep, rest = server.partition("://")
    return "%s://%s" % (scheme, rest.split("/", 1)[0])


def _basic(username, password):
    raw = ("%s:%s" % (username, password)).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _read(handle):
    try:
        return handle.read(_MAX_BODY) or b""
    except Exception:  # pylint: disable=broad-except  # a body is only for the message
        return b""


def _get(url, headers, ca_path, timeout):
    """(status, headers, body) of a GET; HTTP errors are answers, not exceptions."""
    # Imported here: ansible.module_utils.urls loads cryptography (about 7% of a module's
    # start), and only runs that check a login need it. AnsiballZ still bundles it.
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel

    try:
        response = open_url(url, method="GET", headers=headers, ca_path=ca_path,
                            timeout=timeout, validate_certs=True, follow_redirects="safe")
        return response.getcode(), response.headers, _read(response)
    except HTTPError as exc:
        return exc.code, exc.headers, _read(exc)
    except (URLError, OSError, ValueError, http_client.HTTPException) as exc:
        # Refused, reset, timed out, TLS or a non-HTTP answer: one line naming the address.
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, socket.timeout):
            text = "no answer within %s s (timed out)" % timeout
        elif isinstance(reason, http_client.HTTPException):
            text = "not an HTTP answer (%s: %s)" % (reason.__class__.__name__, reason)
        else:
            text = str(reason) or reason.__class__.__name__
        raise LoginError("could not reach %s: %s" % (url.split("?")[0], text))


def _rejected(base, username, who, status, body, password):
    detail = error_summary(body, password)
    return LoginError("%s rejected the credentials of user %s (%sHTTP %s%s)" % (
        base, username, who, status, ": " + detail if detail else ""))


def token_url(params, username):
    """The realm URL with the query ``docker login`` sends: service, scope, account."""
    query = [(key, params[key]) for key in ("service", "scope") if params.get(key)]
    query.append(("account", username))
    realm = params["realm"]
    return realm + ("&" if "?" in realm else "?") + urlencode(query)


def check_login(server, username, password, ca_path=None, timeout=15):
    """Raise LoginError unless the registry accepts ``username``/``password``."""
    base = registry_base(server)
    status, headers, _body = _get(base + "/v2/", {}, ca_path, timeout)
    if status == 200:
        # An open registry: nothing to check against, and nothing was rejected.
        return
    scheme, params = parse_challenge(headers.get("WWW-Authenticate") if headers else None)
    auth = {"Authorization": _basic(username, password)}
    if scheme == "bearer" and params.get("realm"):
        realm = params["realm"].split("?")[0]
        status, _headers, body = _get(token_url(params, username), auth, ca_path, timeout)
        if status in REJECTED:
            raise _rejected(base, username, "token service %s: " % realm, status, body, password)
        if status != 200:
            raise LoginError("the token service %s of %s answered HTTP %s to the login check"
                             % (realm, base, status))
        auth = {"Authorization": "Bearer " + token_from_response(body)}
    status, _headers, body = _get(base + "/v2/", auth, ca_path, timeout)
    if status in REJECTED:
        raise _rejected(base, username, "", status, body, password)
    if status != 200:
        raise LoginError("%s answered HTTP %s to the login check" % (base, status))
