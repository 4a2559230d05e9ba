# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret references on service accounts, with set semantics (``oc secrets link``).

Strategic merge replaces ``imagePullSecrets`` whole and JSON-patch ``add /-`` appends
a duplicate every run, so neither is used. Instead the whole new list is computed
from what the server holds (entries this call does not manage stay in place and in
order) and sent as a JSON merge patch that carries ``metadata.resourceVersion``: a
concurrent writer makes it fail with 409, and it is recomputed from a fresh read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
from functools import partial

from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    CONFLICT_RETRIES,
    MERGE_PATCH,
    KubeError,
    describe_target,
    find_named,
    map_bounded,
)

# ``link_for`` value -> the ServiceAccount field it edits.
LINK_FIELDS = {"pull": "imagePullSecrets", "mount": "secrets"}


def linked_list(current, names, state):
    """The new reference list: ``names`` added once each at the end, or removed.

    ``current`` is the list of reference dicts the server holds. Entries for other
    names are kept as they are, in order; duplicates of managed names collapse to
    their first occurrence.
    """
    managed = set(names)
    new, seen = [], set()
    for ref in current or []:
        name = ref.get("name")
        if name in managed:
            if state == "absent" or name in seen:
                continue
            seen.add(name)
        new.append(ref)
    if state == "present":
        new.extend({"name": name} for name in names if name not in seen)
    return new


def plan_links(service_account, names, link_for, state):
    """{field: new list} for the fields that change; empty when nothing does.

    ``service_account`` is the ServiceAccount as a plain dict (camelCase keys).
    """
    changes = {}
    for kind in link_for:
        field = LINK_FIELDS[kind]
        current = service_account.get(field) or []
        wanted = linked_list(current, names, state)
        if wanted != current:
            changes[field] = wanted
    return changes


def _names(refs):
    return [ref.get("name") for ref in refs or []]


def link_view(service_account):
    """What linking needs of a ServiceAccount: its reference lists and resourceVersion.

    Listed accounts are reduced to this as each page arrives; labels, annotations and
    the rest of the metadata are not read again.
    """
    metadata = service_account.get("metadata") or {}
    view = {"metadata": {"resourceVersion": metadata.get("resourceVersion")}}
    for field in LINK_FIELDS.values():
        if field in service_account:
            view[field] = service_account[field]
    return view


def wait_for_service_accounts(client, sa_name, namespaces, timeout, parallelism, poll=0.1, max_poll=1.0):
    """{namespace: link_view of the ServiceAccount}; waits up to ``timeout`` s for missing ones.

    New namespaces get their ``default`` account from the controller-manager a moment
    after creation; each poll is one LIST for all namespaces still missing it. The
    pause doubles from ``poll`` up to ``max_poll``: an account that comes a few tenths
    of a second late is linked that much later, not a second later, and a long wait
    still costs one LIST a second.
    """
    found = {}
    missing = list(namespaces)
    deadline = time.time() + timeout
    while True:
        found.update(find_named(client, "ServiceAccount", sa_name, missing, parallelism, keep=link_view))
        missing = [ns for ns in missing if ns not in found]
        if not missing or time.time() >= deadline:
            return found
        time.sleep(min(poll, max(0.0, deadline - time.time())))
        poll = min(poll * 2, max_poll)


def _patch(client, namespace, sa_name, changes, resource_version):
    body = dict(changes, metadata={"resourceVersion": resource_version})
    client.call_json(describe_target("patch", "ServiceAccount", namespace, sa_name),
                     client.core.patch_namespaced_service_account, sa_name, namespace, body,
                     _content_type=MERGE_PATCH)


def _link_one(client, namespace, sa_name, account, names, link_for, state, check_mode):
    """Plan and (unless check_mode) apply one service account; re-read on 409.

    Returns (action, changes, the account the changes were computed from).
    """
    for _attempt in range(CONFLICT_RETRIES):
        changes = plan_links(account, names, link_for, state)
        if not changes:
            return "unchanged", {}, account
        if check_mode:
            return "updated", changes, account
        try:
            _patch(client, namespace, sa_name, changes,
                   account["metadata"]["resourceVersion"])
            return "updated", changes, account
        except KubeError as exc:
            if exc.status != 409:
                raise
        account = client.call_json(describe_target("get", "ServiceAccount", namespace, sa_name),
                                   client.core.read_namespaced_service_account, sa_name, namespace)
    raise KubeError("ServiceAccount %s/%s kept changing under us; gave up after %d conflicts"
                    % (namespace, sa_name, CONFLICT_RETRIES))


def ensure_links(client, namespaces, service_accounts, names, link_for=("pull",), state="present",
                 check_mode=False, wait_timeout=30, parallelism=8, want_diff=True):
    """Link (or unlink) ``names`` on each service account in each namespace.

    Returns (items, diff). Items are per (namespace, service account) with ``added``
    and ``removed`` secret names; diff is None unless want_diff.
    """
    items, before, after = [], {}, {}
    for sa_name in service_accounts:
        try:
            accounts = wait_for_service_accounts(client, sa_name, namespaces, wait_timeout, parallelism)
        except KubeError as exc:
            # The read failed for good (403, API server gone): every namespace fails with
            # that message, and the caller still reports what it did before.
            items.extend(results.item(namespace, sa_name, "failed", str(exc)) for namespace in namespaces)
            continue
        link = partial(_link_namespace, client, sa_name, accounts, names, link_for, state, check_mode,
                       wait_timeout)
        for item, account, changes in map_bounded(link, namespaces, parallelism):
            items.append(item)
            if changes and want_diff:
                key = "%s/%s" % (item["namespace"], sa_name)
                before[key] = dict((field, _names(account.get(field))) for field in changes)
                after[key] = dict((field, _names(refs)) for field, refs in changes.items())
    return items, ({"before": before, "after": after} if want_diff else None)


def _link_namespace(client, sa_name, accounts, names, link_for, state, check_mode, wait_timeout,
                    namespace):
    """(result item, account, changes) for one namespace's service account."""
    account = accounts.get(namespace)
    if account is None:
        return results.item(namespace, sa_name, "failed",
                            "ServiceAccount %s not found in namespace %s after waiting %ss (does "
                            "the namespace exist?)" % (sa_name, namespace, wait_timeout)), None, {}
    try:
        action, changes, account = _link_one(client, namespace, sa_name, account, names, link_for,
                                             state, check_mode)
    except KubeError as exc:
        return results.item(namespace, sa_name, "failed", str(exc)), None, {}
    return _link_result(namespace, sa_name, account, action, changes), account, changes


def _link_result(namespace, sa_name, account, action, changes):
    added, removed = [], []
    for field, refs in changes.items():
        old, new = set(_names(account.get(field))), set(_names(refs))
        added.extend(sorted(new - old))
        removed.extend(sorted(old - new))
    return results.item(namespace, sa_name, action, added=sorted(set(added)),
                        removed=sorted(set(removed)))


def missing_secrets(client, names, namespaces, parallelism=8):
    """{namespace: [secret names that do not exist there]} (one LIST per name)."""
    missing = {}
    for name in names:
        present = find_named(client, "Secret", name, namespaces, parallelism, keep=lambda secret: True)
        for namespace in namespaces:
            if namespace not in present:
                missing.setdefault(namespace, []).append(name)
    return missing
