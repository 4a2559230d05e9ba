"""What the stand-ins' servers share: an HTTP(S) server on its own thread, a self-signed
certificate, an admission webhook of the local kube-apiserver, a polling controller.

Each stand-in keeps its own rules; only the plumbing is here. LOCAL STAND-IN support, for
tests only.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import secrets
import ssl
import subprocess
import tempfile
import threading
import time


class BackgroundServer:
    """``server_class((host, port), handler)`` served on a daemon thread, with TLS when a
    certificate is given; ``url`` is where it listens. start()/stop() or a with block."""

    def __init__(self, handler, name, host="127.0.0.1", port=0, cert=None, key=None,
                 server_class=http.server.ThreadingHTTPServer, handshake_on_connect=True):
        self.httpd = server_class((host, port), handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True,
                                                    do_handshake_on_connect=handshake_on_connect)
            scheme = "https"
        self.url = "%s://%s:%d" % ((scheme,) + tuple(self.httpd.server_address[:2]))
        self._name = name
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def self_signed_certificate(directory, common_name):
    """(cert, key) files for 127.0.0.1, made with openssl for this run, valid one day."""
    cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=" + common_name, "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class AdmissionWebhook:
    """An admission webhook of the local kube-apiserver: an HTTPS server on 127.0.0.1 and a
    webhook configuration of its own name, deleted again by :meth:`stop`.

    A subclass gives ``KIND`` (``"mutating"`` or ``"validating"``), ``LABEL`` (the
    stand-in's name in its configuration, certificate and logger), ``TITLE`` (in errors), ``review(request)`` (the
    AdmissionReview response), ``webhooks(url, ca_bundle)`` (the configuration's
    webhooks) and ``probe()``: a dry-run create that only a running webhook refuses, as
    ``(group, plural, body, words the refusal says)``.
    """

    KIND = "validating"
    LABEL = "admission-standin"
    TITLE = "admission stand-in"

    def __init__(self, kubeconfig: str):
        from kubernetes import client, config  # pylint: disable=import-outside-toplevel

        self._api_client = config.new_client_from_config(config_file=kubeconfig)
        self._admission = client.AdmissionregistrationV1Api(self._api_client)
        self.name = "%s-%d-%s" % (self.LABEL, os.getpid(), secrets.token_hex(3))
        self._dir = tempfile.mkdtemp(prefix=self.LABEL + "-")
        self._server: BackgroundServer | None = None

    def review(self, request: dict) -> dict:
        raise NotImplementedError

    def webhooks(self, url: str, ca_bundle: str) -> list:
        raise NotImplementedError

    def probe(self) -> tuple:
        raise NotImplementedError

    def _answer(self, body: dict) -> dict:
        try:
            response = self.review(body.get("request") or {})
        except Exception as exc:  # pylint: disable=broad-except  # answer, so the API server does not wait
            logging.getLogger(self.LABEL).warning("%s failed: %r", self.TITLE, exc)
            response = {"uid": (body.get("request") or {}).get("uid"), "allowed": False,
                        "status": {"code": 500, "message": "%s: %r" % (self.TITLE, exc)}}
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}

    def start(self):
        cert, key = self_signed_certificate(self._dir, self.LABEL)
        webhook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                data = json.dumps(webhook._answer(body)).encode()  # pylint: disable=protected-access
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        self._server = BackgroundServer(Handler, self.name, cert=cert, key=key).start()
        with open(cert, "rb") as handle:
            bundle = base64.b64encode(handle.read()).decode()
        create = getattr(self._admission, "create_%s_webhook_configuration" % self.KIND)
        create({"metadata": {"name": self.name, "labels": {"app.kubernetes.io/part-of": "ibmreg-tests"}},
                "webhooks": self.webhooks(self._server.url, bundle)})
        self._wait_until_called()
        return self

    def _wait_until_called(self, timeout: float = 30) -> None:
        """The API server picks up a new webhook configuration a moment later: dry-run
        the probe until the webhook refuses it."""
        from kubernetes import client  # pylint: disable=import-outside-toplevel
        from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

        api = client.CustomObjectsApi(self._api_client)
        group, plural, body, words = self.probe()
        deadline = time.monotonic() + timeout
        while True:
            try:
                api.create_namespaced_custom_object(group, "v1", "default", plural, body, dry_run="All")
            except ApiException as exc:
                if exc.status == 422 and words in (exc.body or ""):
                    return
                if exc.status not in (404, 409, 422):
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError("the API server did not call the %s within %ss" % (self.TITLE, timeout))
            time.sleep(0.2)

    def stop(self) -> None:
        from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

        try:
            getattr(self._admission, "delete_%s_webhook_configuration" % self.KIND)(self.name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class PollingController:
    """A controller stand-in (``LABEL``: its thread and logger; ``TITLE``: in logs): ``sync()`` every ``interval`` seconds on a daemon thread until
    :meth:`stop`; a failed pass is logged and kept in ``errors``, the next one runs anyway."""

    LABEL = "controller-standin"
    TITLE = "controller stand-in"

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.errors: list = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> int:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # pylint: disable=broad-except  # keep going; tests inspect self.errors
                self.errors.append(repr(exc))
                logging.getLogger(self.LABEL).warning("%s pass failed: %r", self.TITLE, exc)
            self._stop.wait(self.interval)

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.LABEL, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def merge_patch_custom_object(api, group, version, plural, meta, body, status=False) -> int:
    """Merge-patch ``body`` into a namespaced custom object at the resourceVersion of
    ``meta``: 1 when written, 0 when it is gone or changed since it was read (next pass)."""
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    body = dict(body, metadata={"resourceVersion": meta["resourceVersion"]})
    method = api.patch_namespaced_custom_object_status if status else api.patch_namespaced_custom_object
    try:
        method(group, version, meta["namespace"], plural, meta["name"], body,
               _content_type="application/merge-patch+json")
        return 1
    except ApiException as exc:
        if exc.status in (404, 409):
            return 0
        raise
