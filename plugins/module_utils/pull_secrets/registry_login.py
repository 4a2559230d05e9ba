# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Log in to a registry with the Docker Registry HTTP API v2, to check credentials.

``GET /v2/`` answers 401 with a ``WWW-Authenticate`` challenge: ``Basic`` means the
same request again with basic auth; ``Bearer realm=...,service=...`` means asking the
realm for a token with basic auth. Either way a 200 means the registry accepted the
credentials, a 401/403 (or 400, which IBM Cloud Container Registry gives for a bad
API key) means it rejected them. Messages never contain the password.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlencode
from ansible.module_utils.urls import open_url

REJECTED = (400, 401, 403)


class LoginError(Exception):
    """The registry rejected the credentials, or could not be asked."""


def parse_challenge(header):
    """('bearer'|'basic', {param: value}) from a WWW-Authenticate header."""
    if not header:
        return None, {}
    scheme, _sep, rest = header.strip().partition(" ")
    params = dict((k.lower(), v) for k, v in re.findall(r'([A-Za-z_]+)="([^"]*)"', rest))
    return scheme.lower(), params


def registry_base(server):
    """https://host[:port] for a server given as host[:port][/path] or a URL."""
    if "://" not in server:
        server = "https://" + server
    scheme, _sep, rest = server.partition("://")
    return "%s://%s" % (scheme, rest.split("/", 1)[0])


def _basic(username, password):
    raw = ("%s:%s" % (username, password)).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _get(url, headers, ca_path, timeout):
    """(status, headers) of a GET; HTTP errors are answers, not exceptions."""
    try:
        response = open_url(url, method="GET", headers=headers, ca_path=ca_path,
                            timeout=timeout, validate_certs=True, follow_redirects="safe")
        return response.getcode(), response.headers
    except HTTPError as exc:
        return exc.code, exc.headers
    except (URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LoginError("could not reach %s: %s" % (url.split("?")[0], reason))


def check_login(server, username, password, ca_path=None, timeout=15):
    """Raise LoginError unless the registry accepts ``username``/``password``."""
    base = registry_base(server)
    status, headers = _get(base + "/v2/", {}, ca_path, timeout)
    if status == 200:
        # An open registry: nothing to check against, and nothing was rejected.
        return
    scheme, params = parse_challenge(headers.get("WWW-Authenticate") if headers else None)
    auth = {"Authorization": _basic(username, password)}
    if scheme == "bearer" and params.get("realm"):
        query = dict((k, v) for k, v in params.items() if k in ("service", "scope"))
        url = params["realm"] + ("?" + urlencode(query) if query else "")
        status, _headers = _get(url, auth, ca_path, timeout)
    else:
        status, _headers = _get(base + "/v2/", auth, ca_path, timeout)
    if status in REJECTED:
        raise LoginError("%s rejected the credentials of user %s (HTTP %s)" % (base, username, status))
    if status != 200:
        raise LoginError("%s answered HTTP %s to the login check" % (base, status))
