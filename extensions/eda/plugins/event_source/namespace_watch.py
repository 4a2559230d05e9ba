"""namespace_watch: an event source for ansible-rulebook that reports namespaces needing an image pull secret.

It lists the namespaces that match ``label_selector``, then watches them from the list's
resourceVersion. A namespace that is new, or whose labels changed, is reported; a burst of
them (for example 100 namespaces created by one script) is gathered for ``debounce``
seconds and sent as one event, because every playbook run pays Ansible's start-up.

- A watch that ends (server timeout, dropped connection) resumes from the last
  resourceVersion seen; ``410 Gone`` (that version is no longer kept) lists again.
- Every ``resync_period`` seconds, and at start-up, the namespaces are listed again, so
  that namespaces created while the source was not running are caught. At start-up every
  matching namespace is reported (nothing is known about the time it was down); later
  resyncs report only namespaces the watch missed.

Event: ``{"namespaces": [names, sorted], "reason": "startup" | "watch" | "resync"}``.

Arguments (all optional):
  label_selector: Kubernetes label selector, such as ``registry.ibm.com/pull-secret=true``.
  exclude_namespaces: names never reported (default: kube-system, kube-public, kube-node-lease).
  debounce: seconds to gather a burst into one event (default 1.0).
  max_batch_wait: longest a name waits while a burst goes on (default 5.0 seconds).
  resync_period: seconds between full lists (default 300; 0 turns periodic resync off).
  watch_timeout: seconds the API server keeps one watch open (default 240).
  kubeconfig, context, host, api_key, validate_certs, ca_cert: the connection, with the
  K8S_AUTH_KUBECONFIG, K8S_AUTH_CONTEXT, K8S_AUTH_HOST, K8S_AUTH_API_KEY,
  K8S_AUTH_VERIFY_SSL and K8S_AUTH_SSL_CA_CERT environment variables as fallbacks, as the
  kubernetes.core collection reads them; else in-cluster service account, else ~/.kube/config.

Example rulebook source::

  sources:
    - ibmcloud.registry.namespace_watch:
        label_selector: registry.ibm.com/pull-secret=true
        debounce: 1
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

# ansible-rulebook loads sources with runpy: __name__ is no name to log under.
LOG = logging.getLogger("ibmcloud.registry.namespace_watch")

DEFAULT_EXCLUDE = ("kube-system", "kube-public", "kube-node-lease")

ARG_DEFAULTS = {
    "label_selector": "",
    "exclude_namespaces": list(DEFAULT_EXCLUDE),
    "debounce": 1.0,
    "max_batch_wait": 5.0,
    "resync_period": 300.0,
    "watch_timeout": 240,
}

ENV_NAMES = {
    "kubeconfig": "K8S_AUTH_KUBECONFIG",
    "context": "K8S_AUTH_CONTEXT",
    "host": "K8S_AUTH_HOST",
    "api_key": "K8S_AUTH_API_KEY",
    "validate_certs": "K8S_AUTH_VERIFY_SSL",
    "ca_cert": "K8S_AUTH_SSL_CA_CERT",
}


def parse_args(args: dict, environ: dict | None = None) -> dict:
    """The source's settings: arguments, then K8S_AUTH_* variables, then defaults.
    Raises ValueError naming every bad argument at once."""
    environ = os.environ if environ is None else environ
    args = dict(args or {})
    known = set(ARG_DEFAULTS) | set(ENV_NAMES)
    errors = ["unknown argument %r" % key for key in sorted(set(args) - known)]
    settings = {key: args.get(key, default) for key, default in ARG_DEFAULTS.items()}
    for key in ("debounce", "max_batch_wait", "resync_period", "watch_timeout"):
        try:
            settings[key] = float(settings[key])
        except (TypeError, ValueError):
            errors.append("%s must be a number, got %r" % (key, settings[key]))
            continue
        if settings[key] < 0:
            errors.append("%s must not be negative, got %r" % (key, settings[key]))
    if not isinstance(settings["label_selector"], str):
        errors.append("label_selector must be a string such as 'team=a,env in (dev)'")
    exclude = settings["exclude_namespaces"]
    if isinstance(exclude, str) or not isinstance(exclude, (list, tuple)):
        errors.append("exclude_namespaces must be a list of names")
    for key, env in ENV_NAMES.items():
        value = args.get(key, environ.get(env))
        if key == "validate_certs" and isinstance(value, str):
            if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                errors.append("validate_certs (or %s) must be a boolean, got %r" % (env, value))
            value = value.lower() in ("true", "yes", "1")
        settings[key] = value
    if errors:
        raise ValueError("namespace_watch: " + "; ".join(errors))
    settings["exclude_namespaces"] = set(exclude)
    settings["watch_timeout"] = int(settings["watch_timeout"])
    return settings


def _meta(namespace: Any) -> tuple:
    """(name, labels, phase, resourceVersion) of a namespace given as a dict or a client object."""
    if isinstance(namespace, dict):
        meta = namespace.get("metadata") or {}
        status = namespace.get("status") or {}
        return (meta.get("name"), dict(meta.get("labels") or {}), status.get("phase"),
                meta.get("resourceVersion"))
    meta, status = namespace.metadata, namespace.status
    return (meta.name, dict(meta.labels or {}), getattr(status, "phase", None), meta.resource_version)


class Tracker:
    """What the source has reported: namespace name -> its labels then. Pure (no I/O)."""

    def __init__(self, exclude=()):
        self.known: dict = {}
        self.exclude = set(exclude)

    def _wanted(self, name, phase) -> bool:
        return bool(name) and name not in self.exclude and phase != "Terminating"

    def observe(self, event_type: str, namespace: Any) -> str | None:
        """One watch event. Returns the name to report, or None."""
        name, labels, phase, _rv = _meta(namespace)
        if event_type == "DELETED" or (name and phase == "Terminating"):
            self.known.pop(name, None)
            return None
        if not self._wanted(name, phase) or self.known.get(name) == labels:
            return None
        self.known[name] = labels
        return name

    def resync(self, namespaces: list, report_all: bool = False) -> list:
        """A full list. Forgets namespaces that are gone (or no longer match); returns the
        names to report: new or relabelled ones, or every wanted one with report_all."""
        seen, report = {}, []
        for namespace in namespaces:
            name, labels, phase, _rv = _meta(namespace)
            if not self._wanted(name, phase):
                continue
            seen[name] = labels
            if report_all or self.known.get(name) != labels:
                report.append(name)
        self.known = seen
        return sorted(report)


class Batcher:
    """Debounce: names gathered until `debounce` seconds pass without a new one, or the
    oldest has waited `max_wait`. Pure: the caller passes the clock."""

    def __init__(self, debounce: float, max_wait: float):
        self.debounce = debounce
        self.max_wait = max(max_wait, debounce)
        self.names: dict = {}  # name -> reason that first added it
        self.first = self.last = None

    def add(self, names, reason: str, now: float) -> None:
        for name in names:
            self.names.setdefault(name, reason)
        if names:
            self.first = now if self.first is None else self.first
            self.last = now

    def due(self, now: float) -> float | None:
        """Seconds until the batch should go (0: now); None when empty."""
        if not self.names:
            return None
        return max(0.0, min(self.last + self.debounce, self.first + self.max_wait) - now)

    def take(self) -> dict:
        reasons = set(self.names.values())
        reason = next((r for r in ("startup", "resync", "watch") if r in reasons), "watch")
        event = {"namespaces": sorted(self.names), "reason": reason}
        self.names, self.first, self.last = {}, None, None
        return event


def is_gone(exc_or_event: Any) -> bool:
    """A 410 Gone, as an ApiException or as a watch ERROR event's Status object."""
    status = getattr(exc_or_event, "status", None)
    if status == 410:
        return True
    if isinstance(exc_or_event, dict) and exc_or_event.get("type") == "ERROR":
        obj = exc_or_event.get("raw_object") or exc_or_event.get("object") or {}
        code = obj.get("code") if isinstance(obj, dict) else getattr(obj, "code", None)
        return code == 410
    return False


def api_client(settings: dict):
    """One kubernetes ApiClient from the settings (kubernetes.core's order: host/api_key,
    kubeconfig, in-cluster, default kubeconfig)."""
    from kubernetes import client, config  # pylint: disable=import-outside-toplevel

    if settings.get("host"):
        configuration = client.Configuration()
        configuration.host = settings["host"]
        if settings.get("api_key"):
            configuration.api_key = {"authorization": "Bearer " + settings["api_key"]}
        if settings.get("ca_cert"):
            configuration.ssl_ca_cert = settings["ca_cert"]
        if settings.get("validate_certs") is not None:
            configuration.verify_ssl = bool(settings["validate_certs"])
        return client.ApiClient(configuration)
    kubeconfig = settings.get("kubeconfig")
    if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        return client.ApiClient()
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, context=settings.get("context"),
                            client_configuration=configuration)
    if settings.get("ca_cert"):
        configuration.ssl_ca_cert = settings["ca_cert"]
    if settings.get("validate_certs") is not None:
        configuration.verify_ssl = bool(settings["validate_certs"])
    return client.ApiClient(configuration)


class Watcher(threading.Thread):
    """The blocking list/watch loop (the kubernetes client is synchronous), in a thread.
    Calls emit(names, reason) for names to report."""

    def __init__(self, settings: dict, emit, core=None):
        super().__init__(name="namespace_watch", daemon=True)
        self.settings = settings
        self.emit = emit
        self.core = core
        self.stopping = threading.Event()
        self.tracker = Tracker(settings["exclude_namespaces"])
        self.error = None

    def stop(self):
        self.stopping.set()

    def _list(self, reason: str) -> str:
        listing = self.core.list_namespace(label_selector=self.settings["label_selector"] or None)
        names = self.tracker.resync(listing.items, report_all=(reason == "startup"))
        if names:
            self.emit(names, reason)
        return listing.metadata.resource_version

    def run(self):  # noqa: C901 - one loop; its branches are the watch's cases
        from kubernetes import client, watch  # pylint: disable=import-outside-toplevel
        from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

        if self.core is None:
            self.core = client.CoreV1Api(api_client(self.settings))
        period = self.settings["resync_period"]
        reason, backoff, version = "startup", 1.0, None
        next_resync = 0.0
        while not self.stopping.is_set():
            try:
                if version is None:
                    version = self._list(reason)
                    next_resync = time.monotonic() + period if period else float("inf")
                    backoff = 1.0
                remaining = next_resync - time.monotonic()
                if remaining <= 0:
                    reason, version = "resync", None
                    continue
                stream = watch.Watch()
                timeout = max(1, int(min(self.settings["watch_timeout"], remaining)))
                for event in stream.stream(self.core.list_namespace, resource_version=version,
                                           label_selector=self.settings["label_selector"] or None,
                                           timeout_seconds=timeout, allow_watch_bookmarks=True):
                    if self.stopping.is_set():
                        stream.stop()
                        break
                    if is_gone(event):
                        raise ApiException(status=410, reason="Gone")
                    if event["type"] == "ERROR":
                        raise RuntimeError("watch error: %s" % (event.get("raw_object"),))
                    version = _meta(event["object"])[3] or version
                    if event["type"] == "BOOKMARK":
                        continue
                    name = self.tracker.observe(event["type"], event["object"])
                    if name:
                        self.emit([name], "watch")
            except ApiException as exc:
                if is_gone(exc):
                    # The version is older than the server keeps: list again (and report
                    # what changed meanwhile).
                    reason, version = "resync", None
                    continue
                self._back_off(exc, backoff)
                backoff = min(backoff * 2, 30.0)
                reason, version = "resync", None
            except Exception as exc:  # pylint: disable=broad-except  # connection errors: retry
                self._back_off(exc, backoff)
                backoff = min(backoff * 2, 30.0)
                reason, version = "resync", None

    def _back_off(self, exc, delay):
        self.error = exc
        self.stopping.wait(delay)


async def main(queue: asyncio.Queue, args: dict):
    """ansible-rulebook's entry point: put batched events on queue until cancelled."""
    settings = parse_args(args)
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue = asyncio.Queue()

    def emit(names, reason):
        loop.call_soon_threadsafe(inbox.put_nowait, (list(names), reason))

    watcher = Watcher(settings, emit)
    watcher.start()
    batcher = Batcher(settings["debounce"], settings["max_batch_wait"])
    try:
        while True:
            wait = batcher.due(loop.time())
            if wait == 0:
                age = loop.time() - batcher.first
                event = batcher.take()
                # -v shows when each batch left (what make sync-bench splits its latency by).
                LOG.info("event: %d namespaces (%s), first seen %.3f s before: %s", len(event["namespaces"]),
                         event["reason"], age, " ".join(event["namespaces"]))
                await queue.put(event)
                continue
            try:
                names, reason = await asyncio.wait_for(inbox.get(), timeout=wait)
            except asyncio.TimeoutError:
                continue
            batcher.add(names, reason, loop.time())
    finally:
        watcher.stop()


if __name__ == "__main__":
    # Run on its own: print the events (ansible-rulebook is not needed for a look).
    class _Printer:  # pylint: disable=too-few-public-methods
        async def put(self, event):
            print(event, flush=True)

    asyncio.run(main(_Printer(), {}))
