"""A fault-injecting HTTPS reverse proxy on loopback, between a client and kube-apiserver.

The proxy terminates TLS with the local cluster's own serving certificate (its SANs
cover 127.0.0.1), so a kubeconfig that points at the proxy keeps verifying the server
against the cluster's CA; the bearer token passes through, so the API server's audit
log still attributes every forwarded request to the client's identity.

Rules decide what happens to matching requests (method, and a regular expression
searched in the path with its query string), each for its next ``count`` matches:

* ``status``: answer with that status (429 with ``Retry-After``, 500, 503, ...) and a
  Kubernetes ``Status`` body, without forwarding: the API server never sees it.
* ``drop``: close the connection without an answer (a dropped connection).
* ``after``: forward, then call ``hook(entry)`` before the client gets the answer, so a
  test can act "between the client's read and its write" deterministically.

Every request is logged (time, method, path, status, what the proxy did); never a
header or body.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))
sys.path.insert(0, os.path.join(REPO, "tests", "standins"))

import localcluster  # noqa: E402  pylint: disable=wrong-import-position
from serving import BackgroundServer  # noqa: E402  pylint: disable=wrong-import-position

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
              "upgrade", "content-length"}
REASONS = {429: "TooManyRequests", 500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable",
           504: "Timeout"}


class Rule:
    def __init__(self, method, path, action, count, status=None, retry_after=None, hook=None):
        self.method = method.upper() if method else None
        self.path = re.compile(path)
        self.action = action
        self.count = count
        self.status = status
        self.retry_after = retry_after
        self.hook = hook

    def matches(self, method, target):
        return self.count > 0 and (self.method in (None, method)) and bool(self.path.search(target))


class FaultProxy(BackgroundServer):
    """``FaultProxy(upstream_url, ca, cert, key).start()``; ``stop()`` when done."""

    def __init__(self, upstream: str, ca: str, cert: str, key: str):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port or 443)
        self.lock = threading.Lock()
        self.rules: list[Rule] = []
        self.log: list[dict] = []
        self.upstream_context = ssl.create_default_context(cafile=ca)

        class Handler(_Handler):
            pass

        Handler.proxy = self
        super().__init__(Handler, "fault-proxy", cert=cert, key=key, server_class=_QuietServer)

    # --- rules and log ------------------------------------------------------------------

    def fail(self, method, path, status, count=1, retry_after=None) -> Rule:
        return self._add(Rule(method, path, "status", count, status=status, retry_after=retry_after))

    def drop(self, method, path, count=1) -> Rule:
        return self._add(Rule(method, path, "drop", count))

    def after(self, method, path, hook, count=1) -> Rule:
        return self._add(Rule(method, path, "after", count, hook=hook))

    def _add(self, rule: Rule) -> Rule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules = []

    def entries(self, method=None, path=None) -> list:
        pattern = re.compile(path) if path else None
        with self.lock:
            return [dict(e) for e in self.log
                    if (method is None or e["method"] == method) and (pattern is None or pattern.search(e["path"]))]

    def _take(self, method, target):
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, target):
                    rule.count -= 1
                    return rule
        return None

    def _record(self, entry):
        with self.lock:
            self.log.append(entry)

    def kubeconfig(self, path: str, token: str, ca: str) -> str:
        """A kubeconfig for this proxy with ``token``; the CA is the cluster's."""
        write_kubeconfig(path, self.url, ca, token)
        return path


def write_kubeconfig(path: str, server: str, ca: str, token: str, user: str = "client") -> str:
    return localcluster.write_kubeconfig(path, server, ca, user, token)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # dropped connections and clients that hang up are what this server is for


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy = None
    protocol_version = "HTTP/1.1"
    server_version = "FaultProxy/1.0"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def _serve(self):
        proxy = self.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        entry = {"time": time.monotonic(), "method": self.command, "path": self.path, "status": None,
                 "fault": None}
        rule = proxy._take(self.command, self.path)  # pylint: disable=protected-access
        proxy._record(entry)  # pylint: disable=protected-access
        if rule is not None and rule.action == "drop":
            entry["fault"] = "drop"
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if rule is not None and rule.action == "status":
            entry.update(fault="status", status=rule.status)
            document = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "injected by the test's fault proxy: HTTP %d" % rule.status,
                        "reason": REASONS.get(rule.status, "InternalError"), "code": rule.status}
            headers = {"Content-Type": "application/json"}
            if rule.retry_after is not None:
                headers["Retry-After"] = str(rule.retry_after)
            self._answer(rule.status, headers, json.dumps(document).encode())
            return
        try:
            status, headers, data = self._forward(body)
        except OSError:
            entry["fault"] = "upstream unreachable"
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        entry["status"] = status
        if rule is not None and rule.action == "after":
            entry["fault"] = "after"
            rule.hook(dict(entry))
        self._answer(status, headers, data)

    def _forward(self, body):
        host, port = self.proxy.upstream
        connection = http.client.HTTPSConnection(host, port, context=self.proxy.upstream_context, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if body is not None:
                headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, [(k, v) for k, v in response.getheaders()
                                     if k.lower() not in HOP_BY_HOP], data
        finally:
            connection.close()

    def _answer(self, status, headers, data):
        self.send_response(status)
        items = headers.items() if isinstance(headers, dict) else headers
        for name, value in items:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
