# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``username`` and ``password`` to a bearer token at OpenShift's OAuth server.

Kubernetes API servers no longer accept basic authentication, so kubernetes.core's
``username`` / ``password`` options only work where an OAuth server exchanges them for a
token, as ``oc login -u <user> -p <password>`` does on OpenShift. On Red Hat OpenShift on
IBM Cloud the user name ``apikey`` with an IBM Cloud API key as the password is that
login. The exchange itself (discovery at ``/.well-known/oauth-authorization-server``, the
``openshift-challenging-client`` authorize request with basic credentials, the code for a
token) is the openshift package's ``OCPLoginConfiguration``; this file decides when to use
it, passes it the connection's host, CA, certificate checking and proxy, and turns its
failures into messages that name the options (never the password).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import os

from ansible.module_utils.six.moves.urllib.parse import quote

try:
    from openshift.helper.userpassauth import OCPLoginConfiguration, OCPLoginRequestException
    from requests.exceptions import RequestException

    HAS_OPENSHIFT = True
    OPENSHIFT_IMPORT_ERROR = None
except ImportError as exc:  # reported by login_with_password() only when it is needed
    HAS_OPENSHIFT = False
    OPENSHIFT_IMPORT_ERROR = exc

    class OCPLoginRequestException(Exception):  # placeholders so the except clauses still parse
        pass

    class RequestException(Exception):
        pass

NO_OAUTH_SERVER = ("username/password need an OpenShift OAuth server; use api_key (a bearer token), "
                   "kubeconfig or context for other clusters")
HINT = ("check username and password (on Red Hat OpenShift on IBM Cloud: username apikey, "
        "password an IBM Cloud API key)")
# Proxy variables that requests reads; set only while the login runs.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


class LoginError(Exception):
    """The login failed; the message names the options and never holds the password."""


def wants_login(auth):
    """True for kubernetes.core's auth settings with username and password and no api_key."""
    return bool(auth.get("username") and auth.get("password") and not auth.get("api_key"))


def proxy_environment(proxy, no_proxy=None, proxy_headers=None):
    """The proxy variables for requests, from kubernetes.core's proxy options.

    ``proxy_headers`` is the header dict kubernetes.core builds; its Proxy-Authorization
    basic credentials become the user part of the proxy URL, which is how requests sends
    them.
    """
    if not proxy:
        return {}
    url = proxy
    authorization = (proxy_headers or {}).get("proxy-authorization") or ""
    if authorization.lower().startswith("basic ") and "@" not in proxy.split("://", 1)[-1]:
        user, _sep, password = base64.b64decode(authorization[6:].strip()).decode("utf-8").partition(":")
        scheme, _sep, rest = proxy.rpartition("://")
        url = "%s://%s:%s@%s" % (scheme or "http", quote(user, safe=""), quote(password, safe=""), rest)
    env = {"HTTPS_PROXY": url, "https_proxy": url, "HTTP_PROXY": url, "http_proxy": url,
           "NO_PROXY": no_proxy or "", "no_proxy": no_proxy or ""}
    return env


@contextlib.contextmanager
def _environment(values):
    """os.environ with ``values`` for the duration (a module runs in its own process)."""
    saved = dict((name, os.environ.get(name)) for name in values)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def describe_failure(exc, host, username):
    """The message for an OCPLoginRequestException (its text never holds credentials)."""
    info = getattr(exc, "req_info", {}) or {}
    status = info.get("req_status_code")
    step = getattr(exc, "msg", "") or ""
    if step.startswith("Couldn't find"):
        return ("%s: %s/.well-known/oauth-authorization-server answered %s"
                % (NO_OAUTH_SERVER, host, status))
    if step.startswith("Authorization failed"):
        if status == 401:
            return ("The OpenShift OAuth server of %s refused the login of user %s (401 Unauthorized): %s"
                    % (host, username, HINT))
        return ("The OpenShift OAuth server of %s did not authorize user %s (status %s, expected a "
                "302 redirect with a code): %s" % (host, username, status, HINT))
    return ("The OpenShift OAuth server of %s did not issue a token for user %s (status %s)"
            % (host, username, status))


def bearer_token(host, username, password, verify_ssl=True, ca_cert=None, proxy_env=None):
    """Log in at the OAuth server of ``host``; the access token. LoginError when it fails."""
    login = OCPLoginConfiguration(host=host, ocp_username=username, ocp_password=password)
    login.verify_ssl = verify_ssl
    login.ssl_ca_cert = ca_cert
    try:
        with _environment(proxy_env or {}):
            login.get_token()
    except OCPLoginRequestException as exc:
        raise LoginError(describe_failure(exc, host, username))
    except (ValueError, KeyError, TypeError):
        # Discovery answered 200 without the OAuth metadata document.
        raise LoginError("%s: %s/.well-known/oauth-authorization-server is not OAuth server metadata"
                         % (NO_OAUTH_SERVER, host))
    except RequestException as exc:
        raise LoginError("Could not reach the OpenShift OAuth server of %s for the username/password "
                         "login (check host, ca_cert, validate_certs and proxy): %s"
                         % (host, exc.__class__.__name__))
    return login.token["access_token"]


def login_with_password(module, auth, configuration):
    """The Kubernetes configuration, logged in with a bearer token when username/password ask for it.

    ``auth`` is kubernetes.core's auth settings (options and K8S_AUTH_* variables);
    ``configuration`` the client configuration built from them (host, CA, proxy, or a
    kubeconfig's). Fails the module with a clear message when the login fails.
    """
    if not wants_login(auth):
        return configuration
    if not HAS_OPENSHIFT:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib(
            "openshift", reason="the username/password login at the OpenShift OAuth server"),
            exception=str(OPENSHIFT_IMPORT_ERROR))
    host = (configuration.host or "").rstrip("/")
    try:
        token = bearer_token(host, auth["username"], auth["password"],
                             verify_ssl=configuration.verify_ssl, ca_cert=configuration.ssl_ca_cert,
                             proxy_env=proxy_environment(configuration.proxy,
                                                         getattr(configuration, "no_proxy", None),
                                                         configuration.proxy_headers))
    except LoginError as exc:
        module.fail_json(msg=str(exc))
    # The token is a credential like the password: never in any output.
    module.no_log_values.add(token)
    configuration.api_key = {"authorization": "Bearer " + token}
    configuration.username = None
    configuration.password = None
    return configuration
