"""tests/cluster/audit.py on a hand-written log: no cluster needed."""

from __future__ import annotations

import json

import audit


def event(verb, user="admin", stage="ResponseComplete", resource="secrets", namespace="ns-a", name="s", **ref):
    object_ref = {"resource": resource, "name": name, **ref}
    if namespace:
        object_ref["namespace"] = namespace
    return {"stage": stage, "verb": verb, "user": {"username": user}, "objectRef": object_ref,
            "responseStatus": {"code": 200}}


def write_log(path, events, tail=b""):
    path.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in events) + tail)
    return audit.AuditLog(str(path))


def test_counts_each_request_once_and_only_the_users(tmp_path):
    log = write_log(tmp_path / "audit.log", [
        event("get", stage="ResponseStarted"),
        event("get"),
        event("patch"),
        event("create", user="fixture"),
    ])

    assert log.count() == {"get": 1, "patch": 1}
    assert log.count(user="fixture") == {"create": 1}
    assert len(log.events(user=audit.ANY_USER)) == 3


def test_mark_skips_earlier_requests_and_a_half_written_line(tmp_path):
    log = write_log(tmp_path / "audit.log", [event("create")], tail=b'{"stage": "Respo')
    mark = log.mark()

    assert mark == len(json.dumps(event("create"))) + 1
    assert log.count(mark) == {}
    assert log.count() == {"create": 1}


def test_mark_of_a_missing_log_is_zero(tmp_path):
    assert audit.AuditLog(str(tmp_path / "none.log")).mark() == 0


def test_writes_and_namespace_prefix(tmp_path):
    log = write_log(tmp_path / "audit.log", [
        event("list", namespace=""),
        event("patch", resource="serviceaccounts", name="default", namespace="t-x-1"),
        event("delete", resource="namespaces", name="t-x-2", namespace=""),
        event("update", resource="secrets", namespace="other"),
        event("patch", resource="namespaces", name="t-x-3", namespace="", subresource="status"),
    ])

    writes = log.writes(namespace_prefix="t-x-")

    assert [(w["verb"], w["resource"], w["namespace"]) for w in writes] == [
        ("patch", "serviceaccounts", "t-x-1"),
        ("delete", "namespaces", "t-x-2"),
        ("patch", "namespaces/status", "t-x-3"),
    ]
    assert log.count_by("namespace", verbs=audit.WRITE_VERBS) == {"t-x-1": 1, "t-x-2": 1, "other": 1, "t-x-3": 1}


def test_cli_count_reports_json(tmp_path, capsys):
    path = tmp_path / "audit.log"
    write_log(path, [event("get"), event("create", name="pull")])

    audit.main(["count", "--log", str(path), "--since", "0", "--writes"])

    assert json.loads(capsys.readouterr().out) == {
        "total": 1,
        "by_verb": {"create": 1},
        "writes": 1,
        "requests": [{"verb": "create", "resource": "secrets", "namespace": "ns-a", "name": "pull", "code": 200}],
    }


def test_mark_is_a_line_boundary_while_the_apiserver_appends(tmp_path, monkeypatch):
    path = tmp_path / "audit.log"
    log = write_log(path, [event("create", name=f"s{i}") for i in range(3)])
    size = path.stat().st_size
    # A whole line, then one the apiserver is half-way through writing.
    appended = json.dumps(event("delete")).encode() + b"\n"
    partial = b'{"stage": "Respo'

    class Appending:
        """The log file, with a line appended between mark()'s size probe and its read."""

        def __init__(self, name, mode):
            self.file = open(name, mode)  # noqa: SIM115 - closed by __exit__

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def seek(self, *args):
            return self.file.seek(*args)

        def read(self, *args):
            with open(path, "ab") as writer:
                writer.write(appended + partial)
            return self.file.read(*args)

    monkeypatch.setattr(audit, "open", Appending, raising=False)
    mark = log.mark()
    monkeypatch.undo()

    assert mark == size
    assert log.count(mark) == {"delete": 1}


def test_mark_after_a_line_longer_than_the_first_window(tmp_path):
    log = write_log(tmp_path / "audit.log", [event("create", name="x" * 200000)], tail=b'{"stage"')

    assert log.mark() == (tmp_path / "audit.log").stat().st_size - len(b'{"stage"')
