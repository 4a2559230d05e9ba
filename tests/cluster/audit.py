"""Count the API requests of one identity in the local cluster's audit log.

The apiserver writes one JSON event per line (level Metadata). Each request is counted
once, by its ResponseComplete event. The log only grows while a cluster runs, so a byte
offset taken with mark() delimits "the requests made since then".

CLI (integration targets call it through ansible.builtin.command):
    python tests/cluster/audit.py mark --log L
    python tests/cluster/audit.py count --log L --since OFFSET [--user admin]
                                        [--namespace-prefix P] [--writes]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

# Any of these is a write, dry run or not: the modules under test never use dry run.
WRITE_VERBS = frozenset(("create", "update", "patch", "delete", "deletecollection"))
ANY_USER = "*"


def summary(event: dict) -> dict:
    """The fields that identify a request: verb, resource[/subresource], namespace, name."""
    ref = event.get("objectRef", {})
    resource = ref.get("resource", "")
    # A Namespace object belongs to the namespace it names, for prefix filtering.
    namespace = ref.get("namespace") or (ref.get("name", "") if resource == "namespaces" else "")
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    return {
        "verb": event.get("verb", ""),
        "resource": resource,
        "namespace": namespace,
        "name": ref.get("name", ""),
        "code": event.get("responseStatus", {}).get("code"),
    }


class AuditLog:
    """Reads the audit log at path; every query takes a `since` offset from mark()."""

    def __init__(self, path: str):
        self.path = path

    def mark(self) -> int:
        """Offset just past the last complete line: where the next request will start."""
        try:
            with open(self.path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                window = 65536
                while True:
                    start = max(0, size - window)
                    log.seek(start)
                    # Exactly up to size: the apiserver appends while we read, and counting
                    # back from the end of what was read would put the mark inside a line.
                    tail = log.read(size - start)
                    newline = tail.rfind(b"\n")
                    if newline >= 0 or start == 0:
                        # The apiserver may be half-way through writing the last line.
                        return start + newline + 1
                    window *= 4
        except FileNotFoundError:
            return 0

    def events(self, since: int = 0, user: str | None = None) -> list:
        """ResponseComplete events from offset `since`, of `user` if given."""
        found = []
        for event in self._read(since):
            if event.get("stage") != "ResponseComplete":
                continue
            if user not in (None, ANY_USER) and event.get("user", {}).get("username") != user:
                continue
            found.append(event)
        return found

    def requests(self, since: int = 0, user: str | None = "admin", verbs=None,
                 namespace_prefix: str | None = None) -> list:
        """Summaries of the requests selected by user, verbs and namespace prefix."""
        selected = []
        for event in self.events(since, user):
            request = summary(event)
            if verbs is not None and request["verb"] not in verbs:
                continue
            if namespace_prefix and not request["namespace"].startswith(namespace_prefix):
                continue
            selected.append(request)
        return selected

    def count(self, since: int = 0, user: str | None = "admin", verbs=None,
              namespace_prefix: str | None = None) -> collections.Counter:
        """Requests by verb."""
        return self.count_by("verb", since, user, verbs, namespace_prefix)

    def count_by(self, key: str, since: int = 0, user: str | None = "admin", verbs=None,
                 namespace_prefix: str | None = None) -> collections.Counter:
        """Requests grouped by one summary field: verb, resource, namespace or name."""
        return collections.Counter(r[key] for r in self.requests(since, user, verbs, namespace_prefix))

    def writes(self, since: int = 0, user: str | None = "admin", namespace_prefix: str | None = None) -> list:
        """The write requests (create, update, patch, delete, deletecollection)."""
        return self.requests(since, user, WRITE_VERBS, namespace_prefix)

    def _read(self, since: int):
        try:
            with open(self.path, "rb") as log:
                log.seek(since)
                data = log.read()
        except FileNotFoundError:
            return
        # Only complete lines: the last one may still be being written.
        for line in data[:data.rfind(b"\n") + 1].splitlines():
            if line.strip():
                yield json.loads(line)


def report(log: AuditLog, since: int, user: str, namespace_prefix: str | None, writes_only: bool) -> dict:
    requests = log.requests(since, user, WRITE_VERBS if writes_only else None, namespace_prefix)
    return {
        "total": len(requests),
        "by_verb": dict(collections.Counter(r["verb"] for r in requests)),
        "writes": sum(1 for r in requests if r["verb"] in WRITE_VERBS),
        "requests": requests,
    }


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Count requests in the local cluster's audit log.")
    commands = parser.add_subparsers(dest="command", required=True)
    mark = commands.add_parser("mark", help="print the current offset of the log")
    mark.add_argument("--log", required=True)
    count = commands.add_parser("count", help="print the requests since an offset as JSON")
    count.add_argument("--log", required=True)
    count.add_argument("--since", type=int, default=0)
    count.add_argument("--user", default="admin", help=f"username, or {ANY_USER!r} for all (default admin)")
    count.add_argument("--namespace-prefix", default=None)
    count.add_argument("--writes", action="store_true", help="only write requests")
    args = parser.parse_args(argv)
    log = AuditLog(args.log)
    if args.command == "mark":
        print(log.mark())
    else:
        print(json.dumps(report(log, args.since, args.user, args.namespace_prefix, args.writes), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
