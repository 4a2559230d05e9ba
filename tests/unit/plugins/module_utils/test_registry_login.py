# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry login of validate_credentials: WWW-Authenticate parsing, token answers,
error bodies, and the whole Basic and Bearer flows against a small HTTP registry on
127.0.0.1 that records what it was sent."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.redaction import REDACTED
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import registry_login as rl

PASSWORD = "s3cret-Key-value-0123456789"


# --- challenge parsing -------------------------------------------------------------------


@pytest.mark.parametrize("header, expected", [
    ('Bearer realm="https://us.icr.io/oauth/token",service="registry"',
     ("bearer", {"realm": "https://us.icr.io/oauth/token", "service": "registry"})),
    # Commas inside a quoted scope do not split it.
    ('Bearer realm="https://auth.example/token",service="reg",scope="repository:ns/app:pull,push"',
     ("bearer", {"realm": "https://auth.example/token", "service": "reg",
                 "scope": "repository:ns/app:pull,push"})),
    # Spaces around '=' and ',', scheme and parameter names in any case.
    ('BEARER Realm = "https://a/t" ,  Service="s"', ("bearer", {"realm": "https://a/t", "service": "s"})),
    # Unquoted token values.
    ("Bearer realm=https://a/t,service=reg", ("bearer", {"realm": "https://a/t", "service": "reg"})),
    # Escaped quotes in a quoted value.
    ('Bearer realm="https://a/t",error="say \\"no\\""', ("bearer", {"realm": "https://a/t", "error": 'say "no"'})),
    ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
    ("Basic", ("basic", {})),
    ("", (None, {})),
    (None, (None, {})),
])
def test_parse_challenge(header, expected):
    assert rl.parse_challenge(header) == expected


def test_bearer_is_chosen_among_several_challenges():
    header = 'Basic realm="basic-realm", Bearer realm="https://a/token",service="reg"'
    assert rl.parse_challenges(header) == [("basic", {"realm": "basic-realm"}),
                                           ("bearer", {"realm": "https://a/token", "service": "reg"})]
    assert rl.parse_challenge(header) == ("bearer", {"realm": "https://a/token", "service": "reg"})


def test_a_bearer_challenge_without_realm_is_not_preferred():
    assert rl.parse_challenge('Bearer service="x", Basic realm="r"') == ("bearer", {"service": "x"})


def test_token_url_sends_service_scope_and_account():
    url = rl.token_url({"realm": "https://a/token", "service": "us.icr.io", "scope": "repository:n/i:pull"},
                       "iamapikey")
    split = urlsplit(url)
    assert split.scheme + "://" + split.netloc + split.path == "https://a/token"
    assert parse_qs(split.query) == {"service": ["us.icr.io"], "scope": ["repository:n/i:pull"],
                                     "account": ["iamapikey"]}
    # A realm that already has a query keeps it.
    assert rl.token_url({"realm": "https://a/token?x=1"}, "cp") == "https://a/token?x=1&account=cp"


# --- token answers and error bodies ---------------------------------------------------------


@pytest.mark.parametrize("body, token", [
    ({"token": "t1"}, "t1"),
    ({"access_token": "a1", "expires_in": 300}, "a1"),
    ({"token": "t1", "access_token": "a1"}, "t1"),
    ({"token": "", "access_token": "a1"}, "a1"),
])
def test_token_shapes(body, token):
    assert rl.token_from_response(json.dumps(body).encode()) == token


@pytest.mark.parametrize("body", [b"{}", b'{"token": null}', b'{"token": 5}', b"[]", b"not json", b""])
def test_an_answer_without_a_token_is_an_error(body):
    with pytest.raises(rl.LoginError, match="without"):
        rl.token_from_response(body)


@pytest.mark.parametrize("body, summary", [
    (b'{"errors":[{"code":"DENIED","message":"no policy","detail":{"x":1}}]}', "DENIED: no policy"),
    (b'{"errors":[{"code":"UNAUTHORIZED","message":"a"},{"code":"DENIED","message":"b"}]}',
     "UNAUTHORIZED: a; DENIED: b"),
    (b'{"error":"invalid_grant","error_description":"bad key"}', "invalid_grant: bad key"),
    (b'{"errorCode":"BXNIM0415E","errorMessage":"Provided API key could not be found."}',
     "BXNIM0415E: Provided API key could not be found."),
    (b'{"errors":[]}', None),
    (b"<html>503</html>", None),
    (b"", None),
])
def test_error_summary(body, summary):
    assert rl.error_summary(body) == summary


def test_error_summary_never_carries_the_secret():
    body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "key %s unknown" % PASSWORD}]})
    assert rl.error_summary(body.encode(), PASSWORD) == "UNAUTHORIZED: key %s unknown" % REDACTED


# --- the flows against a recording registry -------------------------------------------------


class Registry(object):
    """A registry on 127.0.0.1: mode 'bearer' (token realm on the same server), 'basic',
    'open'. ``token_status``/``token_body`` shape the realm's answer."""

    def __init__(self, mode="bearer", token_body=None, token_status=200, token_error=None, scope=None):
        self.mode = mode
        self.token_body = token_body if token_body is not None else {"token": "tok-1"}
        self.token_status = token_status
        self.token_error = token_error
        self.scope = scope
        self.requests = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
                registry.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, handler):
        split = urlsplit(handler.path)
        auth = handler.headers.get("Authorization")
        self.requests.append({"path": split.path, "query": parse_qs(split.query), "auth": auth})
        if split.path == "/token":
            expected = "Basic " + base64.b64encode(("iamapikey:" + PASSWORD).encode()).decode()
            if self.token_status != 200:
                return self.send(handler, self.token_status, self.token_error or {})
            if auth != expected:
                return self.send(handler, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            return self.send(handler, 200, self.token_body)
        if split.path != "/v2/":
            return self.send(handler, 404, {})
        if self.mode == "open":
            return self.send(handler, 200, {})
        if self.mode == "basic":
            if auth == "Basic " + base64.b64encode(("iamapikey:" + PASSWORD).encode()).decode():
                return self.send(handler, 200, {})
            return self.send(handler, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                             {"WWW-Authenticate": 'Basic realm="local"'})
        good = auth == "Bearer " + (self.token_body.get("token") or self.token_body.get("access_token") or "")
        if good:
            return self.send(handler, 200, {})
        challenge = 'Bearer realm="%s/token",service="local.test"' % self.url
        if self.scope:
            challenge += ',scope="%s"' % self.scope
        return self.send(handler, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                         {"WWW-Authenticate": challenge})

    @staticmethod
    def send(handler, status, document, headers=None):
        body = json.dumps(document).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def registry():
    made = []

    def make(**kwargs):
        made.append(Registry(**kwargs))
        return made[-1]

    yield make
    for reg in made:
        reg.close()


@pytest.mark.parametrize("token_body", [{"token": "tok-1"}, {"access_token": "acc-1"},
                                        {"token": "tok-1", "access_token": "tok-1"}])
def test_bearer_flow_accepts_both_token_shapes(registry, token_body):
    reg = registry(token_body=token_body)
    rl.check_login(reg.url, "iamapikey", PASSWORD)
    paths = [r["path"] for r in reg.requests]
    assert paths == ["/v2/", "/token", "/v2/"]
    token_request = reg.requests[1]
    assert token_request["query"] == {"service": ["local.test"], "account": ["iamapikey"]}
    assert token_request["auth"].startswith("Basic ")
    # The second /v2/ carries the token, not the password.
    assert reg.requests[2]["auth"].startswith("Bearer ")


def test_bearer_flow_passes_the_challenge_scope(registry):
    reg = registry(scope="repository:ns/app:pull")
    rl.check_login(reg.url, "iamapikey", PASSWORD)
    assert reg.requests[1]["query"]["scope"] == ["repository:ns/app:pull"]


@pytest.mark.parametrize("status, body, words", [
    (401, {"errors": [{"code": "UNAUTHORIZED", "message": "API key unknown (deleted or never created)"}]},
     ["HTTP 401", "UNAUTHORIZED: API key unknown (deleted or never created)"]),
    (403, {"errors": [{"code": "DENIED", "message": "no Container Registry policy"}]},
     ["HTTP 403", "DENIED: no Container Registry policy"]),
    (400, {"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found."},
     ["HTTP 400", "BXNIM0415E"]),
    (403, {}, ["HTTP 403"]),
])
def test_token_service_refusal_says_why(registry, status, body, words):
    reg = registry(token_status=status, token_error=body)
    with pytest.raises(rl.LoginError) as err:
        rl.check_login(reg.url, "iamapikey", PASSWORD)
    message = str(err.value)
    assert "token service %s/token" % reg.url in message
    assert "user iamapikey" in message
    for word in words:
        assert word in message
    assert PASSWORD not in message
    # Nothing after a refused token.
    assert [r["path"] for r in reg.requests] == ["/v2/", "/token"]


def test_an_echoed_password_is_redacted(registry):
    reg = registry(token_status=401, token_error={"errors": [{"code": "UNAUTHORIZED",
                                                              "message": "unknown key " + PASSWORD}]})
    with pytest.raises(rl.LoginError) as err:
        rl.check_login(reg.url, "iamapikey", PASSWORD)
    assert PASSWORD not in str(err.value) and REDACTED in str(err.value)


def test_a_token_answer_without_a_token_fails(registry):
    reg = registry(token_body={"expires_in": 60})
    with pytest.raises(rl.LoginError, match="without a token"):
        rl.check_login(reg.url, "iamapikey", PASSWORD)


def test_a_token_the_registry_refuses_fails(registry):
    reg = registry()
    reg.token_body = {"token": "tok-1"}
    # The registry accepts only tok-1; the realm hands out another one.
    original = reg.handle

    def handle(handler):
        if handler.path.startswith("/token"):
            reg.requests.append({"path": "/token", "query": {}, "auth": None})
            return reg.send(handler, 200, {"token": "other"})
        return original(handler)

    reg.handle = handle
    with pytest.raises(rl.LoginError, match=r"rejected the credentials of user iamapikey \(HTTP 401: UNAUTHORIZED"):
        rl.check_login(reg.url, "iamapikey", PASSWORD)


def test_unexpected_token_status_fails(registry):
    reg = registry(token_status=500, token_error={"errors": [{"code": "UNKNOWN", "message": "boom"}]})
    with pytest.raises(rl.LoginError, match="answered HTTP 500"):
        rl.check_login(reg.url, "iamapikey", PASSWORD)


def test_basic_flow(registry):
    reg = registry(mode="basic")
    rl.check_login(reg.url, "iamapikey", PASSWORD)
    with pytest.raises(rl.LoginError, match=r"HTTP 401: UNAUTHORIZED: authentication required"):
        rl.check_login(reg.url, "iamapikey", "wrong")


def test_open_registry_accepts(registry):
    reg = registry(mode="open")
    rl.check_login(reg.url, "iamapikey", PASSWORD)
    assert len(reg.requests) == 1


def test_unreachable_registry():
    with pytest.raises(rl.LoginError, match="could not reach http://127.0.0.1:1/v2/"):
        rl.check_login("http://127.0.0.1:1", "iamapikey", PASSWORD, timeout=2)


def test_a_registry_that_accepts_but_never_answers_times_out_with_the_address():
    # A frozen process: the kernel accepts the connection, nothing answers it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = "https://127.0.0.1:%d" % listener.getsockname()[1]
        with pytest.raises(rl.LoginError) as err:
            rl.check_login(url, "iamapikey", PASSWORD, timeout=1)
    assert str(err.value) == "could not reach %s/v2/: no answer within 1 s (timed out)" % url


def test_an_answer_that_is_not_http_is_a_login_error():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = "http://127.0.0.1:%d" % listener.getsockname()[1]

        def answer():
            conn, _addr = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"SSH-2.0-not-a-registry\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with pytest.raises(rl.LoginError) as err:
            rl.check_login(url, "iamapikey", PASSWORD, timeout=5)
        thread.join(5)
    assert str(err.value).startswith("could not reach %s/v2/: not an HTTP answer (BadStatusLine: " % url)


@pytest.mark.parametrize("server, base", [
    ("us.icr.io", "https://us.icr.io"),
    ("us.icr.io/ns/app", "https://us.icr.io"),
    ("registry.example:5000", "https://registry.example:5000"),
    ("http://127.0.0.1:5000/x", "http://127.0.0.1:5000"),
])
def test_registry_base(server, base):
    assert rl.registry_base(server) == base
