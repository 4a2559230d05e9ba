# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn registered results of this collection's tasks into a flat list of changes.

``playbooks/site.yml`` prints them as a summary; ``playbooks/verify.yml`` runs the same
roles in check mode, where every predicted change is drift, and fails with them. The
modules already report per namespace (``results``, ``service_accounts``); this filter only
reshapes what they return, so what is compared is decided in one place - the modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_sequence
from ansible.module_utils.six import string_types

CHANGING = ("created", "updated", "deleted")
PAST = {"create": "created", "update": "updated", "patch": "updated", "replace": "updated",
        "apply": "updated", "delete": "deleted"}

# What a predicted action means when the real object is compared with the declaration.
DRIFT = {
    "created": "is missing",
    "updated": "differs from the declaration",
    "deleted": "exists but is declared absent",
}


def _is_loop(registered):
    items = registered.get("results")
    return (is_sequence(items) and bool(items) and isinstance(items[0], dict)
            and ("ansible_loop_var" in items[0] or "_ansible_item_result" in items[0]))


def _record(part, namespace, kind, name, action, problem, **extra):
    where = "%s/%s" % (namespace, name) if namespace else "%s" % name
    detail = ""
    if extra.get("added"):
        detail += " +" + ",".join(extra["added"])
    if extra.get("removed"):
        detail += " -" + ",".join(extra["removed"])
    record = {"part": part, "namespace": namespace or "", "kind": kind, "name": name,
              "action": action, "problem": problem,
              "summary": "%s %s %s%s" % (action, kind, where, detail)}
    record.update(extra)
    return record


def _object_problem(kind, name, action, error=None):
    if action == "failed":
        return "%s %s could not be checked or set: %s" % (kind, name, error or "failed")
    return "%s %s %s" % (kind, name, DRIFT.get(action, action))


def _link_records(part, links):
    found = []
    for link in links or []:
        action = link.get("action")
        if action == "failed":
            found.append(_record(part, link.get("namespace"), "ServiceAccount", link.get("name"), action,
                                 _object_problem("ServiceAccount", link.get("name"), action, link.get("error"))))
            continue
        if action not in CHANGING:
            continue
        added, removed = link.get("added") or [], link.get("removed") or []
        problems = []
        if added:
            problems.append("does not reference %s" % ", ".join(added))
        if removed:
            problems.append("still references %s" % ", ".join(removed))
        found.append(_record(part, link.get("namespace"), "ServiceAccount", link.get("name"), "updated",
                             "ServiceAccount %s %s" % (link.get("name"), " and ".join(problems) or "differs"),
                             added=added, removed=removed))
    return found


def _item_records(part, kind, items):
    found = []
    for item in items or []:
        action = item.get("action")
        if action not in CHANGING and action != "failed":
            continue
        if kind == "ServiceAccount":
            found.extend(_link_records(part, [item]))
            continue
        found.append(_record(part, item.get("namespace"), kind, item.get("name"), action,
                             _object_problem(kind, item.get("name"), action, item.get("error"))))
    return found


def _k8s_records(part, result):
    """kubernetes.core.k8s results: method and the object in `result`."""
    if not result.get("changed"):
        return []
    obj = result.get("result") or {}
    meta = obj.get("metadata") or {}
    kind = obj.get("kind") or "object"
    action = PAST.get(result.get("method"), "updated")
    return [_record(part, meta.get("namespace"), kind, meta.get("name"), action,
                    _object_problem(kind, meta.get("name"), action))]


def _single_records(part, kind, result):
    """A module that handles one object (a route, the registry config, a hosts.toml)."""
    found = []
    action = result.get("action") or result.get("outcome") or (result.get("result") or {}).get("action")
    if action in PAST:
        action = PAST[action]
    # The image registry operator Config is the cluster-scoped object named "cluster".
    name = result.get("name") or result.get("registry") or result.get("path") or {"Config": "cluster"}.get(kind, kind)
    namespace = result.get("namespace")
    if action in CHANGING or (action is None and result.get("changed")):
        action = action if action in CHANGING else "updated"
        found.append(_record(part, namespace, kind, name, action, _object_problem(kind, name, action)))
    if kind == "Route" and action != "created" and result.get("admitted") is False:
        found.append(_record(part, namespace, kind, name, "not-admitted",
                             "Route %s is not admitted by a router (status.ingress has no Admitted=True)"
                             % name))
    return found


def _records_of(part, kind, result):
    if not isinstance(result, dict) or result.get("skipped"):
        return []
    if result.get("failed"):
        return [_record(part, result.get("namespace"), kind, result.get("name") or kind, "failed",
                        "%s: %s" % (kind, result.get("msg") or "the task failed"))]
    if "method" in result and "result" in result:
        return _k8s_records(part, result)
    items = result.get("results")
    if is_sequence(items):
        found = _item_records(part, kind, items)
        if kind != "ServiceAccount":
            found.extend(_link_records(part, result.get("service_accounts")))
        return found
    return _single_records(part, kind, result)


def registry_changes(registered, kind="Secret", part=""):
    """Flat change records from one registered task result (a loop or a single task)."""
    if registered is None:
        return []
    if not isinstance(registered, dict):
        raise AnsibleFilterError("registry_changes expects a registered task result (a dict), got %s"
                                 % type(registered).__name__)
    if not isinstance(kind, string_types) or not isinstance(part, string_types):
        raise AnsibleFilterError("registry_changes: kind and part must be strings")
    if registered.get("skipped") and not registered.get("results"):
        return []
    if _is_loop(registered):
        found = []
        for result in registered["results"]:
            found.extend(_records_of(part, kind, result))
        return found
    return _records_of(part, kind, registered)


class FilterModule(object):
    def filters(self):
        return {"registry_changes": registry_changes}
