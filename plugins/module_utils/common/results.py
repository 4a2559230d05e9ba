# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-item results of the many-namespace modules, and how a module reports them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

ACTIONS = ("created", "updated", "unchanged", "deleted", "absent", "failed")
CHANGING = frozenset(["created", "updated", "deleted"])


def item(namespace, name, action, error=None, **extra):
    """One namespace's result; ``error`` only when the action failed."""
    result = {"namespace": namespace, "name": name, "action": action}
    if error:
        result["error"] = error
    result.update(extra)
    return result


def count(items, key="action", values=ACTIONS):
    """{value: how many items have it} for every one of ``values`` (0 included)."""
    counts = dict((value, 0) for value in values)
    for entry in items:
        counts[entry[key]] += 1
    return counts


def any_changed(items):
    return any(entry["action"] in CHANGING for entry in items)


def _labels(entries, qualify):
    """'a, b, c': the namespaces (or namespace/name when a section has several names)."""
    labels, seen = [], set()
    for entry in entries:
        label = entry.get("namespace") or entry.get("name")
        if qualify and entry.get("namespace"):
            label = "%s/%s" % (entry["namespace"], entry.get("name"))
        if label not in seen:
            seen.add(label)
            labels.append("%s" % label)
    return ", ".join(labels) or "none"


def failure_message(what, items):
    """'X failed in 2 of 5 namespaces (a: ..., b: ...); not done: a, b; done: c, d, e'.

    None when none failed. The errors of the first ten failures are shown; the lists of
    what was not done and what was done are complete, so that a run that stopped part-way
    (an API server that went away) says exactly where it stopped.
    """
    failed = [entry for entry in items if entry["action"] == "failed"]
    if not failed:
        return None
    shown = "; ".join("%s: %s" % (entry["namespace"], entry.get("error")) for entry in failed[:10])
    more = " and %d more" % (len(failed) - 10) if len(failed) > 10 else ""
    qualify = len(set(entry.get("name") for entry in items)) > 1
    done = [entry for entry in items if entry["action"] != "failed"]
    return "%s failed in %d of %d namespaces (%s%s); not done: %s; done: %s" % (
        what, len(failed), len(items), shown, more, _labels(failed, qualify), _labels(done, qualify))


def exit_with(module, sections, **extra):
    """exit_json, or fail_json when any item failed, the same way for every module.

    ``sections`` is a list of (what, items); the first is the module's ``results``,
    the others (service account links, for example) are passed in ``extra`` by the
    caller and count towards ``changed`` and the failure message.
    """
    items = sections[0][1]
    every = [entry for _what, entries in sections for entry in entries]
    result = dict(changed=any_changed(every), results=items, counts=count(items))
    result.update(extra)
    messages = [m for m in (failure_message(what, entries) for what, entries in sections) if m]
    if messages:
        module.fail_json(msg="; ".join(messages), **result)
    module.exit_json(**result)
