# -*- coding: utf-8 -*-
"""LIST bodies decoded one item at a time as their chunks arrive (KubeClient.list_json)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client as k8s_models
from urllib3.exceptions import ProtocolError

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import client as kube

# Strings that a naive scanner for brackets and quotes would get wrong, and multi-byte
# UTF-8 (2, 3 and 4 bytes) that chunk boundaries can split.
TRICKY = [
    {"metadata": {"name": "s", "namespace": "a", "annotations": {"q": 'say "]}," then \\"[{"'}}},
    {"metadata": {"name": "s", "namespace": "b", "annotations": {"u": u"caf\u00e9 \u65e5\u672c \U0001F642",
                                                                 "esc": "\\u005d\\n\t\\\\"}}},
    {"metadata": {"name": "s", "namespace": "c"}, "data": {"n": [1, 2.5, -3e2, True, None, []]}},
]


class Chunked:
    """A response whose body arrives in the given chunks (the stream() of urllib3's response)."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.closed = self.released = False

    def stream(self, amt):
        return iter(self.chunks)

    def close(self):
        self.closed = True

    def release_conn(self):
        self.released = True


class Endpoint:
    """A LIST function answering each call with the next response of ``responses``."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.calls = []

    def __call__(self, _preload_content=True, **kwargs):
        assert _preload_content is False
        self.calls.append(kwargs)
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


def new_client(retries=2):
    client = kube.KubeClient.__new__(kube.KubeClient)
    client.retries, client._sleep = retries, lambda _seconds: None
    return client


def body_of(items, metadata=None, items_first=True, indent=None):
    # A top-level number (no such key in Kubernetes) that a chunk boundary can cut short.
    pairs = [("items", items), ("kind", "SecretList"), ("apiVersion", "v1"), ("count", 12345),
             ("metadata", metadata or {})]
    if not items_first:
        pairs.reverse()
    text = "{" + ",".join("%s:%s" % (json.dumps(k), json.dumps(v, indent=indent, ensure_ascii=False))
                          for k, v in pairs) + "}"
    return text.encode("utf-8")


def read(chunks, keep=None):
    return new_client().list_json("list Secret", Endpoint(Chunked(chunks)), keep=keep)


@pytest.mark.parametrize("items_first", [True, False])
def test_items_split_at_every_position(items_first):
    body = body_of(TRICKY, items_first=items_first)
    for cut in range(len(body) + 1):
        assert read([body[:cut], body[cut:]]) == TRICKY, cut
    # Every byte its own chunk: every multi-byte character is split.
    assert read([body[i:i + 1] for i in range(len(body))]) == TRICKY


def test_pretty_printed_body_and_any_key_order():
    body = json.dumps({"metadata": {"resourceVersion": "5"}, "items": TRICKY, "kind": "List"}, indent=3).encode()
    assert read([body[i:i + 7] for i in range(0, len(body), 7)]) == TRICKY
    assert read([b'\n { "items" : [ ] , "metadata" : { } } \n']) == []


@pytest.mark.parametrize("body", [b'{"items": [], "metadata": {}}', b'{"items": null}', b'{"metadata": {}}',
                                  b"{}", b' { } '])
def test_no_items(body):
    assert read([body]) == []


def test_keep_sees_each_item_and_none_drops_it():
    seen = []
    names = read([body_of(TRICKY)], keep=lambda obj: seen.append(obj) or (
        None if obj["metadata"]["namespace"] == "b" else obj["metadata"]["namespace"]))
    assert names == ["a", "c"] and seen == TRICKY


def test_continue_tokens_are_followed_with_the_same_arguments():
    endpoint = Endpoint(Chunked([body_of(TRICKY[:2], {"continue": "tok-1"})]),
                        Chunked([body_of([], {"continue": "tok-2"}, items_first=False)]),
                        Chunked([body_of(TRICKY[2:], {"resourceVersion": "9"})]))
    items = new_client().list_json("list Secret", endpoint, page_size=2, field_selector="metadata.name=s")
    assert items == TRICKY
    assert endpoint.calls == [{"limit": 2, "field_selector": "metadata.name=s"},
                              {"limit": 2, "field_selector": "metadata.name=s", "_continue": "tok-1"},
                              {"limit": 2, "field_selector": "metadata.name=s", "_continue": "tok-2"}]


def test_every_truncation_is_a_kube_error_and_the_connection_is_dropped():
    body = body_of(TRICKY)
    for cut in range(len(body)):
        response = Chunked([body[:cut]])
        with pytest.raises(kube.KubeError) as err:
            new_client().list_json("list Secret", Endpoint(response))
        assert "Malformed response to list Secret" in str(err.value), cut
        assert response.closed and response.released


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'"items"', b'{"items": {}}', b'{"items": 7}', b'{"items": [{"a": 1} {"b": 2}]}',
    b'{"items": [{"a": 1},]}', b'{"items": [] "metadata": {}}', b'{7: []}', b'{"items" []}', b'{"items": []} {}',
    b'{"items": []}]', b'{"items": [{"a": "\xff"}]}', b'{"items": [{"a": tru}]}',
])
def test_garbage_is_a_kube_error(body):
    with pytest.raises(kube.KubeError) as err:
        read([body[:5], body[5:]])
    assert "Malformed response to list Secret" in str(err.value) and err.value.status is None


def test_errors_of_keep_are_not_taken_for_a_malformed_body():
    def keep(_obj):
        raise ValueError("the caller's own error")

    with pytest.raises(ValueError, match="the caller's own error"):
        read([body_of(TRICKY)], keep=keep)


def test_a_connection_dropped_mid_body_rereads_the_page_without_duplicates():
    body = body_of(TRICKY)

    class Dropped(Chunked):
        def stream(self, amt):
            yield body[:len(body) // 2]
            raise ProtocolError("Connection broken")

    dropped = Dropped([])
    seen = []
    endpoint = Endpoint(dropped, Chunked([body]))
    items = new_client().list_json("list Secret", endpoint, keep=lambda obj: seen.append(obj) or obj)
    assert items == TRICKY and len(endpoint.calls) == 2 and dropped.closed
    assert len(seen) > len(TRICKY)  # keep saw the first page's items twice: its results did not double


def test_memory_of_a_list_is_one_item_plus_a_chunk():
    item = {"metadata": {"name": "s", "namespace": "ns-%05d"}, "data": {".dockerconfigjson": "QUJD" * 1000}}
    count = 5000  # about 20 MB of body, produced chunk by chunk

    def chunks():
        yield b'{"kind": "SecretList", "items": ['
        for i in range(count):
            text = json.dumps(item).replace("%05d", "%05d" % i)
            yield (text + ("," if i < count - 1 else "")).encode()
        yield b'], "metadata": {"resourceVersion": "1"}}'

    class Generated(Chunked):
        def stream(self, amt):
            return chunks()

    tracemalloc.start()
    try:
        names = new_client().list_json("list Secret", Endpoint(Generated([])),
                                       keep=lambda obj: obj["metadata"]["namespace"])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(names) == count and names[-1] == "ns-%05d" % (count - 1)
    assert peak < 2 * 1024 * 1024, peak  # json.loads of the whole body would hold over 20 MB


def test_page_size_is_the_target_set_plus_slack_within_bounds():
    assert kube.named_page_size(2) == kube.MIN_NAMED_PAGE
    # A no-op rerun at N=1000 or 5000 reads each kind in one LIST: the page holds the
    # targets and the system namespaces' objects and is not filled exactly.
    assert kube.named_page_size(1000) == 1000 + kube.NAMED_PAGE_SLACK
    assert kube.named_page_size(5004) > 5004 + 4
    assert kube.named_page_size(50000) == kube.LIST_PAGE_SIZE


# A local API server for the real kubernetes client: streamed bodies over HTTP/1.1.

class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, secrets, forbid_list=False):
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", 0), _Handler)
        self.secrets, self.forbid_list = secrets, forbid_list
        self.requests, self.connections = [], 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        BaseHTTPRequestHandler.setup(self)
        self.server.connections += 1

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        query = dict((k, v[0]) for k, v in parse_qs(url.query).items())
        self.server.requests.append((url.path, query))
        parts = url.path.strip("/").split("/")
        if url.path == "/api/v1/secrets":
            if self.server.forbid_list:
                return self._send(403, {"kind": "Status", "code": 403, "message": "secrets is forbidden"})
            start, limit = int(query.get("continue", 0)), int(query["limit"])
            name = query["fieldSelector"].split("=", 1)[1]
            matching = [s for s in self.server.secrets if s["metadata"]["name"] == name]
            end = start + limit
            metadata = {"continue": str(end)} if end < len(matching) else {}
            return self._send(200, {"kind": "SecretList", "apiVersion": "v1", "metadata": metadata,
                                    "items": matching[start:end]}, chunked=True)
        if len(parts) == 6 and parts[4] == "secrets":  # api/v1/namespaces/<ns>/secrets/<name>
            for secret in self.server.secrets:
                if (secret["metadata"]["namespace"], secret["metadata"]["name"]) == (parts[3], parts[5]):
                    return self._send(200, secret)
        return self._send(404, {"kind": "Status", "code": 404, "message": "not found"})

    def _send(self, status, document, chunked=False):
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if not chunked:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(data), 1000):
            piece = data[start:start + 1000]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def api_server(request):
    secrets = [{"metadata": {"name": "pull" if i % 2 else "other", "namespace": "ns-%03d" % i,
                             "managedFields": [{"manager": "m"}]},
                "data": {"x": u"\u00e9" * 50}} for i in range(300)]
    server = _ApiServer(secrets, **getattr(request, "param", {}))
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    configuration = k8s_models.Configuration()
    configuration.host = "http://127.0.0.1:%d" % server.server_address[1]
    client = kube.KubeClient(k8s_models.ApiClient(configuration), retries=0)
    yield server, client
    server.shutdown()
    server.server_close()
    thread.join()


def test_real_client_streams_pages_over_one_kept_alive_connection(api_server):
    server, client = api_server
    wanted = ["ns-%03d" % i for i in range(1, 300, 2)]
    found = kube.find_named(client, "Secret", "pull", wanted + ["ns-000"])
    assert sorted(found) == wanted and all("managedFields" not in obj["metadata"] for obj in found.values())
    assert found["ns-001"]["data"] == {"x": u"\u00e9" * 50}
    names = client.list_json("list Secret", client.core.list_secret_for_all_namespaces, page_size=40,
                             keep=lambda obj: obj["metadata"]["namespace"], field_selector="metadata.name=pull")
    assert names == wanted
    tokens = [query.get("continue") for _path, query in server.requests[1:]]
    assert tokens == [None, "40", "80", "120"]
    # Each body was read to its end, so every request reused the first connection.
    assert server.connections == 1


@pytest.mark.parametrize("api_server", [{"forbid_list": True}], indirect=True)
def test_forbidden_list_falls_back_to_gets(api_server):
    server, client = api_server
    found = kube.find_named(client, "Secret", "pull", ["ns-001", "ns-003", "ns-004"], parallelism=2)
    assert sorted(found) == ["ns-001", "ns-003"] and "managedFields" not in found["ns-001"]["metadata"]
    assert server.requests[0][0] == "/api/v1/secrets" and len(server.requests) == 4
