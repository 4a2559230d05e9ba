# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one client layer: Kubernetes connection options in, API clients out.

Connection options, aliases and ``K8S_AUTH_*`` environment variables are
kubernetes.core's own (its ``AUTH_ARG_SPEC`` and ``get_api_client``), so a
``module_defaults`` group set once serves both collections. Every API call of this
collection goes through :meth:`KubeClient.call`, which retries 429, 5xx and dropped
connections with bounded backoff and turns the rest into :class:`KubeError` with a
message that names the resource and namespace.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import collections
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import ArgumentSpec
from ansible_collections.ibmcloud.registry.plugins.module_utils.common.retry_delay import retry_delay
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.openshift_login import login_with_password
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import (
    AUTH_ARG_SPEC,
)

try:
    # kubernetes.core's own option handling (options, aliases, K8S_AUTH_* variables,
    # kubeconfig/context/in-cluster order), without its eager discovery requests.
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import (
        _create_auth_spec,
        _create_configuration,
        _create_headers,
        _set_header,
    )
    from kubernetes import client as k8s_models
    from kubernetes.dynamic.exceptions import ResourceNotFoundError
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
    from kubernetes.dynamic import DynamicClient
except ImportError as exc:  # pragma: no cover - reported by require_kubernetes()
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

    class ApiException(Exception):  # placeholders so the except clauses still parse
        pass

    class Urllib3Error(Exception):
        pass

    class ResourceNotFoundError(Exception):
        pass

RETRYABLE_STATUS = frozenset([429, 500, 502, 503, 504])
# Most objects per LIST page. A LIST body is decoded one item at a time (_ListBody), so
# the page size costs the module no memory; the bound keeps one response of the API
# server (which builds and sends it whole) well inside its request timeout.
LIST_PAGE_SIZE = 10000
# Calls waiting per thread of map_bounded: enough to keep every thread busy.
QUEUED_PER_THREAD = 4
# The smallest page of a LIST for a few namespaces' objects (see named_page_size).
MIN_NAMED_PAGE = 500
# Same-name objects outside any target set that a cluster always has: the ``default``
# ServiceAccount of its system namespaces (4 on Kubernetes, about 80 on OpenShift).
NAMED_PAGE_SLACK = 200
# Bytes of a LIST response read at a time.
LIST_CHUNK = 64 * 1024
WRITE_VERBS = frozenset(["create", "update", "patch", "delete"])
# Objects the collection creates carry this label; only they are deleted without force.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "ibmcloud.registry"
# Writes guarded by metadata.resourceVersion: how many fresh reads after a 409.
CONFLICT_RETRIES = 5
# RFC 7386 merge patch: maps merge, lists are replaced whole, and the
# metadata.resourceVersion it carries makes the write conditional (409 if stale).
MERGE_PATCH = "application/merge-patch+json"


def kube_argument_spec():
    """kubernetes.core's connection options plus api_retries and parallelism.

    Doc fragments: kubernetes.core.k8s_auth_options and ibmcloud.registry.kube.
    """
    return ArgumentSpec(AUTH_ARG_SPEC).add(
        api_retries=dict(type="int", default=5),
        parallelism=dict(type="int", default=8),
    )


class KubeError(Exception):
    """An API call that failed for good. ``status`` is the HTTP status or None."""

    def __init__(self, message, status=None, reason=None):
        super(KubeError, self).__init__(message)
        self.status = status
        self.reason = reason


def require_kubernetes(module):
    """Fail the module early when the kubernetes client is missing."""
    if not HAS_KUBERNETES:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(
            msg=missing_required_lib("kubernetes"),
            exception=str(KUBERNETES_IMPORT_ERROR),
        )


def validate_kube_params(params):
    """Errors for the shared options, before any request."""
    errors = []
    if params.get("api_retries") is not None and not 0 <= params["api_retries"] <= 20:
        errors.append("api_retries must be between 0 and 20, got %s" % params["api_retries"])
    if params.get("parallelism") is not None and not 1 <= params["parallelism"] <= 64:
        errors.append("parallelism must be between 1 and 64, got %s" % params["parallelism"])
    return errors


def describe_target(verb, kind, namespace=None, name=None):
    """'create Secret all-icr-io in namespace dev' style text for messages."""
    text = "%s %s" % (verb, kind)
    if name:
        text += " %s" % name
    if namespace:
        text += " in namespace %s" % namespace
    elif verb == "list":
        text += " in all namespaces"
    return text


def _server_message(exc):
    """The API server's own message from an ApiException body, if any."""
    try:
        body = json.loads(exc.body)
        return body.get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return getattr(exc, "reason", None) or str(exc)


def _retry_after(exc, attempt):
    """Seconds to wait before the next try of an API request."""
    return retry_delay(getattr(exc, "headers", None), attempt, base=0.2, cap=5.0, retry_after_cap=30.0)


def translate_api_exception(exc, what):
    """KubeError with a message that says what failed and what to check."""
    status = getattr(exc, "status", None)
    detail = _server_message(exc)
    if status == 401:
        message = ("Unauthorized (401) to %s: the API server rejected the credentials; "
                   "check api_key, kubeconfig or context" % what)
    elif status == 403:
        message = "Forbidden (403) to %s: %s" % (what, detail)
    elif status == 404:
        message = "Not found (404) to %s: %s" % (what, detail)
    elif status == 409:
        message = "Conflict (409) to %s: %s" % (what, detail)
    elif status == 422:
        message = "Invalid (422) to %s: %s" % (what, detail)
    else:
        message = "Failed (%s) to %s: %s" % (status, what, detail)
    return KubeError(message, status=status, reason=getattr(exc, "reason", None))


_WHITESPACE = re.compile(r"[ \t\n\r]*")


class MalformedBody(ValueError):
    """A response body that is not the JSON object a LIST returns."""


class _ListBody:
    """The items of a LIST response body, decoded one at a time as its chunks arrive.

    The top-level keys may come in any order. Each element of ``items`` is decoded on
    its own with JSONDecoder.raw_decode over a rolling buffer, so the memory of a LIST
    is one item plus a chunk whatever the page size; every other key (``metadata``,
    which holds the continue token, ``kind``, ``apiVersion``) is decoded whole into
    ``fields``. Errors are MalformedBody, json's JSONDecodeError or UnicodeDecodeError,
    all ValueErrors.
    """

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._decoder = json.JSONDecoder()
        self._buf, self._pos, self._eof = "", 0, False
        self.fields = {}

    def _fill(self, wanted):
        """Read until ``wanted`` characters are unread or the body ends."""
        parts = [self._buf[self._pos:]]
        size = len(parts[0])
        while size < wanted and not self._eof:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._eof = True
                text = self._utf8.decode(b"", True)
            else:
                text = self._utf8.decode(chunk)
            parts.append(text)
            size += len(text)
        self._buf, self._pos = "".join(parts), 0

    def _peek(self):
        """The next character after whitespace, "" at the end of the body."""
        while True:
            self._pos = _WHITESPACE.match(self._buf, self._pos).end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if self._eof:
                return ""
            self._fill(1)

    def _take(self, allowed):
        char = self._peek()
        if not char or char not in allowed:
            raise MalformedBody("expected %s at %s" % (" or ".join(repr(c) for c in allowed),
                                                       "the end of the body" if not char else repr(char)))
        self._pos += 1
        return char

    def _value(self):
        """The next JSON value, read on until it is complete."""
        self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except ValueError:
                if self._eof:
                    raise
                end = None
            # A value that ends with the buffer may go on in the next chunk (a number).
            if end is not None and (end < len(self._buf) or self._eof):
                self._pos = end
                return value
            # At least double what is unread, so that an item of many chunks is
            # re-parsed a few times, not once per chunk.
            self._fill(2 * (len(self._buf) - self._pos) + 1)

    def items(self):
        """Yield each element of ``items``, then check that the body ends there."""
        self._take("{")
        if self._peek() == "}":
            self._pos += 1
        else:
            while True:
                key = self._value()
                if not isinstance(key, str):
                    raise MalformedBody("expected a key, got %r" % (key,))
                self._take(":")
                if key == "items" and self._peek() == "[":
                    self._pos += 1
                    if self._peek() == "]":
                        self._pos += 1
                    else:
                        while True:
                            yield self._value()
                            if self._take(",]") == "]":
                                break
                elif key == "items":
                    if self._value() is not None:
                        raise MalformedBody("items is not a list")
                else:
                    self.fields[key] = self._value()
                if self._take(",}") == "}":
                    break
        # Reading to the end also hands the connection back to the pool.
        if self._peek():
            raise MalformedBody("data after the end of the object")

    def continue_token(self):
        metadata = self.fields.get("metadata")
        return metadata.get("continue") if isinstance(metadata, dict) else None


def _body_chunks(response):
    """The body of a response in chunks (urllib3's stream), or whole when it is preloaded."""
    stream = getattr(response, "stream", None)
    if stream is None:
        return [response.data or b""]
    return stream(LIST_CHUNK)


def _close(response):
    """Drop a connection whose body may be half read; nothing left to do after a full read."""
    for name in ("close", "release_conn"):
        method = getattr(response, name, None)
        if method is not None:
            method()


class KubeClient:
    """Typed CoreV1 access, a dynamic client for other groups, one retry policy."""

    def __init__(self, api_client, retries=5, sleep=time.sleep, warn=None):
        self.api_client = api_client
        self._warn = warn
        self.core = k8s_models.CoreV1Api(api_client)
        self._dynamic = None
        self.retries = retries
        self._sleep = sleep

    def warn(self, message):
        """A warning in the task's result (the module's warn), if there is a module."""
        if self._warn is not None:
            self._warn(message)

    @property
    def dynamic(self):
        """The dynamic client, built on first use: discovery costs requests (cached on disk)."""
        if self._dynamic is None:
            self._dynamic = self.call("discover the API", DynamicClient, self.api_client)
        return self._dynamic

    def call(self, what, func, *args, **kwargs):
        """Run one API call with bounded retries; raise KubeError when it fails.

        ``what`` is a describe_target() text used in error messages.
        """
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except ApiException as exc:
                if exc.status in RETRYABLE_STATUS and attempt < self.retries:
                    self._sleep(_retry_after(exc, attempt))
                    attempt += 1
                    continue
                raise translate_api_exception(exc, what)
            except Urllib3Error as exc:
                if attempt < self.retries:
                    self._sleep(_retry_after(None, attempt))
                    attempt += 1
                    continue
                raise KubeError("Could not reach the API server to %s after %d attempts: %s"
                                % (what, attempt + 1, exc.__class__.__name__))

    def call_json(self, what, func, *args, **kwargs):
        """Like call(), but the response body as plain JSON data (dicts and lists).

        Skips the client's model objects, which cost several times the memory and CPU
        of the JSON for a LIST of thousands of objects. The body is read inside call(),
        so a connection dropped half-way through it is retried like any other.
        """
        def request():
            data = func(*args, _preload_content=False, **kwargs).data or b"{}"
            try:
                return json.loads(data)
            except ValueError as exc:
                raise KubeError("Malformed response to %s: %s" % (what, exc))

        return self.call(what, request)

    def list_json(self, what, func, page_size=LIST_PAGE_SIZE, keep=None, **kwargs):
        """Every item of a LIST as JSON data, read in pages of ``page_size`` objects.

        Each item is decoded on its own as the body arrives and handed to ``keep``
        (item -> value), so that only what the caller needs stays in memory however
        many objects a page or the cluster holds; items it maps to None are dropped.
        A page whose connection drops half-way is read again from its start, so
        ``keep`` may see some items twice and must not count them.
        """
        items, token = [], None
        while True:
            page = dict(kwargs, limit=page_size, **({"_continue": token} if token else {}))
            kept, token = self.call(what, self._read_page, what, func, page, keep)
            items.extend(kept)
            if not token:
                return items

    @staticmethod
    def _read_page(what, func, page, keep):
        """(kept values, continue token) of one LIST request, its body streamed."""
        response = func(_preload_content=False, **page)
        body = _ListBody(_body_chunks(response))
        decoded, kept = body.items(), []
        try:
            while True:
                try:
                    item = next(decoded)
                except StopIteration:
                    return kept, body.continue_token()
                except ValueError as exc:
                    raise KubeError("Malformed response to %s: %s" % (what, exc))
                value = item if keep is None else keep(item)
                if value is not None:
                    kept.append(value)
                del item, value
        finally:
            _close(response)

    def resource(self, api_version, kind):
        """A dynamic-client resource for API groups the typed client lacks.

        KubeError with status 404 when the cluster does not serve that kind.
        """
        what = "discover %s %s" % (api_version, kind)
        try:
            return self.call(what, self.dynamic.resources.get, api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise KubeError("The cluster does not serve %s %s" % (api_version, kind), status=404)

    def api_groups(self):
        """Names of the API groups the server serves (one discovery request)."""
        apis = self.call("discover API groups", k8s_models.ApisApi(self.api_client).get_api_versions)
        return set(group.name for group in apis.groups or [])


def get_kube_client(module):
    """Build the KubeClient for a module whose argument spec includes kube_argument_spec().

    Makes no request: core resources need no discovery, and the dynamic client for
    other API groups is built when first used.
    """
    require_kubernetes(module)
    params = dict((key, module.params.get(key)) for key in AUTH_ARG_SPEC)
    try:
        auth = _create_auth_spec(**params)
        configuration = _create_configuration(auth)
    except Exception as exc:  # kubernetes.config raises many types for bad kubeconfigs
        module.fail_json(msg="Could not build a Kubernetes client from the connection options: %s"
                         % exc)
    # username/password: a bearer token from OpenShift's OAuth server (openshift_login.py).
    configuration = login_with_password(module, auth, configuration)
    try:
        api_client = k8s_models.ApiClient(configuration)
        for header, value in _create_headers(**params).items():
            _set_header(api_client, header, value)
    except Exception as exc:  # kubernetes.config raises many types for bad kubeconfigs
        module.fail_json(msg="Could not build a Kubernetes client from the connection options: %s"
                         % exc)
    return KubeClient(api_client, retries=module.params.get("api_retries", 5), warn=getattr(module, "warn", None))


def read_or_none(client, what, func, *args, **kwargs):
    """client.call_json(), but None when the object does not exist (404)."""
    try:
        return client.call_json(what, func, *args, **kwargs)
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


# Per resource kind: the cluster-wide LIST and the namespaced GET of the typed client.
_FINDERS = {
    "Secret": ("list_secret_for_all_namespaces", "read_namespaced_secret"),
    "ServiceAccount": ("list_service_account_for_all_namespaces", "read_namespaced_service_account"),
}


def _slim(obj):
    """A listed item without metadata.managedFields (often most of a small object)."""
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


def named_page_size(wanted, largest=LIST_PAGE_SIZE):
    """Objects per page of a cluster-wide LIST for ``wanted`` namespaces.

    The target set plus NAMED_PAGE_SLACK (at least MIN_NAMED_PAGE, at most ``largest``):
    one page then holds the targets' objects and those of the system namespaces, so a
    no-op run reads each kind in one request, and the page is not filled exactly (a
    full page brings a continue token and one more, empty, request). Memory does not
    depend on it: items are decoded one at a time.
    """
    return max(MIN_NAMED_PAGE, min(largest, wanted + NAMED_PAGE_SLACK))


def find_named(client, kind, name, namespaces, parallelism=8, keep=_slim):
    """{namespace: keep(object as a dict)} for the objects of ``kind`` called ``name``.

    One cluster-wide LIST with a field selector serves any number of namespaces; each
    object is filtered to the target namespaces and reduced with ``keep`` as it is
    decoded, so memory follows the target set, not what the cluster holds. When RBAC forbids
    cluster-wide reads (namespaced Roles), fall back to one GET per namespace, in
    bounded parallel. Namespaces without the object are absent from the result.
    """
    list_method, read_method = _FINDERS[kind]
    wanted = set(namespaces)
    if len(wanted) > 1:
        found = {}

        def collect(obj):
            namespace = obj["metadata"]["namespace"]
            if namespace in wanted:
                found[namespace] = keep(obj)

        try:
            client.list_json(describe_target("list", kind), getattr(client.core, list_method),
                             page_size=named_page_size(len(wanted)), keep=collect,
                             field_selector="metadata.name=%s" % name)
            return found
        except KubeError as exc:
            if exc.status != 403:
                raise

    def read(namespace):
        obj = read_or_none(client, describe_target("get", kind, namespace, name),
                           getattr(client.core, read_method), name, namespace)
        return None if obj is None else keep(obj)

    found = {}
    for namespace, obj in zip(namespaces, map_bounded(read, namespaces, parallelism)):
        if obj is not None:
            found[namespace] = obj
    return found


def map_bounded(func, items, parallelism):
    """func over items with at most ``parallelism`` threads; results in input order.

    At most a few calls per thread are queued at a time: thousands of namespaces do not
    become thousands of pending futures at once. When a call raises, the queued ones that
    have not started are cancelled and the exception propagates.
    """
    items = list(items)
    if len(items) <= 1 or parallelism <= 1:
        return [func(item) for item in items]
    results, queued = [], collections.deque()
    with ThreadPoolExecutor(max_workers=min(parallelism, len(items))) as pool:
        try:
            for item in items:
                if len(queued) >= QUEUED_PER_THREAD * parallelism:
                    results.append(queued.popleft().result())
                queued.append(pool.submit(func, item))
            while queued:
                results.append(queued.popleft().result())
        except BaseException:
            for future in queued:
                future.cancel()
            raise
    return results
