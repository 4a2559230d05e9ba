# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure IAM planning: which service ID, which policies to write, which API keys are ours.

No request is made here. Inputs are the plain dicts the IAM API returns (as the IBM
Cloud SDK's ``get_result()`` gives them); outputs are plans that
``runners`` and ``pull_secret_runner`` carry out. Plans speak the result vocabulary
of every module (created, updated, unchanged, deleted, absent, failed), so what a plan
says is what a result says. Nothing here puts an API key value into a result,
a diff or a message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    IAM_API_KEY_USERNAME,
    ICR_REGION_DOMAINS,
    DockerConfigError,
    credentials,
)

REGISTRY_SERVICE = "container-registry"
REGISTRY_ROLES = ("Reader", "Writer", "Manager")
ROLE_CRN_PREFIX = "crn:v1:bluemix:public:%s::::serviceRole:" % REGISTRY_SERVICE
# Marks the API keys (in their description) that this collection created, so that a
# rotation deletes those and never a key somebody else made.
MANAGED_MARKER = "[managed-by ibmcloud.registry]"
SERVICE_ID_PREFIX = "ServiceId-"

_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")
_SERVICE_ID_ID = re.compile(r"^ServiceId-[0-9A-Za-z-]{1,64}$")
# Registry namespaces: 4-30 characters, lowercase letters, digits, '-' and '_',
# starting and ending with a letter or digit.
_REGISTRY_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_-]{2,28}[a-z0-9]$")
_PLAIN_ATTRIBUTES = frozenset(["accountId", "serviceName", "region", "resourceType", "resource"])


class PlanError(ValueError):
    """The world is not in a state a plan can be made from; the message says why."""


# --- validation --------------------------------------------------------------------------


def account_id_error(value):
    if value is not None and not _ACCOUNT_ID.match(value):
        return "account_id %r is not an IBM Cloud account ID (32 lowercase hexadecimal characters)" % value
    return None


def is_service_id_id(value):
    """True for a service ID's unique ID (ServiceId-...), False for a name."""
    return bool(value) and value.startswith(SERVICE_ID_PREFIX) and bool(_SERVICE_ID_ID.match(value))


def service_id_name_error(name, option="name"):
    if not isinstance(name, str) or not name.strip():
        return "%s must be a non-empty string" % option
    if len(name) > 255:
        return "%s must be at most 255 characters" % option
    return None


def normalise_roles(roles):
    """Canonical role names (Reader/Writer/Manager, deduplicated, in that order).

    Raises PlanError naming the unknown ones.
    """
    wanted, unknown = set(), []
    for role in roles or []:
        match = [r for r in REGISTRY_ROLES if r.lower() == str(role).strip().lower()]
        if match:
            wanted.add(match[0])
        else:
            unknown.append(str(role))
    if unknown:
        raise PlanError("roles: unknown Container Registry role(s) %s; valid roles are %s"
                        % (", ".join(unknown), ", ".join(REGISTRY_ROLES)))
    return [r for r in REGISTRY_ROLES if r in wanted]


def region_errors(regions):
    valid = sorted(ICR_REGION_DOMAINS)
    unknown = [r for r in regions or [] if r not in ICR_REGION_DOMAINS]
    if unknown:
        return ["regions: unknown IAM region(s) %s; valid values are %s"
                % (", ".join(unknown), ", ".join(valid))]
    return []


def registry_namespace_errors(namespaces):
    return ["resource_namespaces: %r is not a registry namespace name (4-30 lowercase letters, "
            "digits, '-' or '_', starting and ending with a letter or digit)" % ns
            for ns in namespaces or [] if not isinstance(ns, str) or not _REGISTRY_NAMESPACE.match(ns)]


# --- service IDs ---------------------------------------------------------------------------


def pick_service_id(records, name, account_id=None):
    """The one service ID called ``name`` among ``records``, or None.

    IAM does not keep names unique: two with the same name is an error that lists
    their IDs, so that the user can choose one by ID.
    """
    matches = [r for r in records if r.get("name") == name]
    if len(matches) > 1:
        raise PlanError("%d service IDs are named %r%s: %s; choose one by its ID"
                        % (len(matches), name, " in account %s" % account_id if account_id else "",
                           ", ".join(sorted(r["id"] for r in matches))))
    return matches[0] if matches else None


# Two runs that both found no service ID create one each. The run whose ID is not the
# first in this order deletes its own, and readers wait this long for that to happen.
CONCURRENT_CREATE_WINDOW = 120


def first_created(records, name):
    """The service ID called ``name`` that every concurrent run keeps: the oldest by
    ``created_at`` (IAM gives minutes), then by ID, so that all runs agree; or None."""
    matches = [r for r in records if r.get("name") == name]
    return min(matches, key=lambda r: (r.get("created_at") or "", r["id"])) if matches else None


def _identity_timestamp(value):
    for pattern in ("%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.datetime.strptime(str(value).replace("Z", "+0000"), pattern)
        except ValueError:
            continue
    return None


def recent_duplicates(records, name, now):
    """True when several service IDs are called ``name`` and all were created in the last
    CONCURRENT_CREATE_WINDOW seconds before ``now`` (an aware datetime): a concurrent
    create that the other run is about to undo, rather than a duplicate a person made."""
    matches = [r for r in records if r.get("name") == name]
    if len(matches) < 2:
        return False
    created = [_identity_timestamp(r.get("created_at")) for r in matches]
    return all(c is not None and (now - c).total_seconds() <= CONCURRENT_CREATE_WINDOW for c in created)


def service_id_changes(existing, name=None, description=None):
    """{field: new value} for what differs; None values are not managed."""
    changes = {}
    if name is not None and existing.get("name") != name:
        changes["name"] = name
    if description is not None and (existing.get("description") or "") != description:
        changes["description"] = description
    return changes


def service_id_summary(record):
    """What results show of a service ID (no secrets in it, but keep it small)."""
    if record is None:
        return None
    return dict((k, record.get(k)) for k in ("id", "iam_id", "name", "description", "crn", "account_id"))


# --- registry policies (IAM policy API v2) ---------------------------------------------------


def role_id(role):
    return ROLE_CRN_PREFIX + role


def desired_scopes(regions, namespaces):
    """(region or None, registry namespace or None) pairs: one policy per pair."""
    return [(region, namespace)
            for region in (list(regions) if regions else [None])
            for namespace in (list(namespaces) if namespaces else [None])]


def _attribute(key, value):
    return {"key": key, "operator": "stringEquals", "value": value}


def policy_body(account_id, iam_id, roles, scope, description=None):
    """The v2 policy body (create_v2_policy / replace_v2_policy keyword arguments)."""
    region, namespace = scope
    attributes = [_attribute("accountId", account_id), _attribute("serviceName", REGISTRY_SERVICE)]
    if region:
        attributes.append(_attribute("region", region))
    if namespace:
        attributes.append(_attribute("resourceType", "namespace"))
        attributes.append(_attribute("resource", namespace))
    body = {
        "type": "access",
        "control": {"grant": {"roles": [{"role_id": role_id(r)} for r in roles]}},
        "subject": {"attributes": [_attribute("iam_id", iam_id)]},
        "resource": {"attributes": attributes},
    }
    if description:
        body["description"] = description
    return body


def _attributes(section):
    return (section or {}).get("attributes") or []


def subject_iam_id(policy):
    for attribute in _attributes(policy.get("subject")):
        if attribute.get("key") == "iam_id" and attribute.get("operator", "stringEquals") == "stringEquals":
            return attribute.get("value")
    return None


def is_registry_policy(policy, iam_id):
    """An access policy of ``iam_id`` on Container Registry (any scope or shape)."""
    if policy.get("type", "access") != "access" or subject_iam_id(policy) != iam_id:
        return False
    return any(a.get("key") == "serviceName" and a.get("value") == REGISTRY_SERVICE
               for a in _attributes(policy.get("resource")))


def policy_roles(policy):
    """Role names of a policy; roles of other services keep their CRN."""
    names = []
    for role in ((policy.get("control") or {}).get("grant") or {}).get("roles") or []:
        rid = role.get("role_id") or ""
        names.append(rid[len(ROLE_CRN_PREFIX):] if rid.startswith(ROLE_CRN_PREFIX) else rid)
    return sorted(set(names))


def policy_scope(policy, account_id):
    """(region, namespace) of a plain registry policy, or None for any other shape.

    Plain means: only stringEquals attributes among accountId (this account),
    serviceName, region, resourceType=namespace with resource, and no rule, pattern
    or tags. Other registry policies are never replaced, only deleted by exclusive.
    """
    if policy.get("rule") or policy.get("pattern") or (policy.get("resource") or {}).get("tags"):
        return None
    values = {}
    for attribute in _attributes(policy.get("resource")):
        key = attribute.get("key")
        if key not in _PLAIN_ATTRIBUTES or attribute.get("operator", "stringEquals") != "stringEquals" \
                or key in values:
            return None
        values[key] = attribute.get("value")
    if values.get("accountId") != account_id or values.get("serviceName") != REGISTRY_SERVICE:
        return None
    if ("resource" in values) != ("resourceType" in values):
        return None
    if "resourceType" in values and values["resourceType"] != "namespace":
        return None
    return values.get("region"), values.get("resource")


def policy_summary(policy, account_id=None, action=None):
    """Names only: id, roles, region, registry namespace (and what happened)."""
    scope = policy_scope(policy, account_id) if account_id else None
    summary = {"id": policy.get("id"), "roles": policy_roles(policy)}
    if scope is not None:
        summary.update(region=scope[0] or "all", namespace=scope[1] or "all")
    else:
        summary.update(region=None, namespace=None, custom=True)
    if action:
        summary["action"] = action
    return summary


def _scope_summary(scope, roles, action, policy_id=None):
    return {"id": policy_id, "roles": sorted(roles), "region": scope[0] or "all",
            "namespace": scope[1] or "all", "action": action}


def plan_policies(existing, account_id, iam_id, roles, scopes, state="present", exclusive=False):
    """Steps to make the subject's registry policies match.

    ``existing``: the subject's policies (any service; others are ignored).
    present: per desired scope, an equivalent policy (same scope, same role set) is
    ``unchanged``; a plain policy of that scope with other roles is ``updated`` (replaced
    in place); otherwise ``created``. With ``exclusive``, every other registry policy of
    the subject is ``deleted``. absent: the plain policies of the given scopes (every
    registry policy of the subject when no scope is given or with ``exclusive``) are
    ``deleted``.

    Each step: {"action", "scope", "roles", "policy" (existing or None)}.
    """
    registry = [p for p in existing if is_registry_policy(p, iam_id)]
    steps, used = [], set()
    if state == "absent":
        everything = exclusive or scopes is None
        for policy in registry:
            scope = policy_scope(policy, account_id)
            if everything or (scope is not None and scope in scopes):
                steps.append({"action": "deleted", "scope": scope, "roles": policy_roles(policy),
                              "policy": policy})
        return steps

    wanted_roles = sorted(roles)
    for scope in scopes:
        same_scope = [p for p in registry if p.get("id") not in used and policy_scope(p, account_id) == scope]
        exact = [p for p in same_scope if policy_roles(p) == wanted_roles]
        if exact:
            used.add(exact[0].get("id"))
            steps.append({"action": "unchanged", "scope": scope, "roles": wanted_roles, "policy": exact[0]})
        elif same_scope:
            used.add(same_scope[0].get("id"))
            steps.append({"action": "updated", "scope": scope, "roles": wanted_roles, "policy": same_scope[0]})
        else:
            steps.append({"action": "created", "scope": scope, "roles": wanted_roles, "policy": None})
    if exclusive:
        for policy in registry:
            if policy.get("id") not in used:
                steps.append({"action": "deleted", "scope": policy_scope(policy, account_id),
                              "roles": policy_roles(policy), "policy": policy})
    return steps


def step_summary(step, action=None, policy_id=None):
    """Result entry for a step; ``action`` is what happened when it differs from the plan."""
    policy = step.get("policy") or {}
    pid = policy_id or policy.get("id")
    roles = step["roles"]
    if step["scope"] is None:
        return {"id": pid, "roles": roles, "region": None, "namespace": None, "custom": True,
                "action": action or step["action"]}
    return _scope_summary(step["scope"], roles, action or step["action"], pid)


def policies_diff(steps):
    """before/after: lists of {roles, region, namespace} (ids only before)."""
    before, after = [], []
    for step in steps:
        policy = step.get("policy")
        if policy is not None:
            entry = step_summary(step)
            entry["roles"] = policy_roles(policy)
            entry.pop("action", None)
            before.append(entry)
        if step["action"] != "deleted":
            entry = step_summary(step)
            entry.pop("action", None)
            after.append(entry)
    return {"before": before, "after": after}


# --- API keys ------------------------------------------------------------------------------


def key_description(description):
    """The description of a key this collection creates: ends with the marker."""
    description = (description or "").strip()
    if MANAGED_MARKER in description:
        return description
    return ("%s %s" % (description, MANAGED_MARKER)).strip()


def is_collection_key(key, name):
    """A key this collection created for this purpose: its name and our marker."""
    return key.get("name") == name and MANAGED_MARKER in (key.get("description") or "")


def keys_to_delete(keys, name, keep_ids=()):
    """Keys that a rotation removes: ours for ``name``, except ``keep_ids``."""
    return [k for k in keys if is_collection_key(k, name) and k.get("id") not in keep_ids]


def key_summary(key, action=None):
    """id, name, created_at and whether it is ours; never the value."""
    if key is None:
        return None
    summary = dict((k, key.get(k)) for k in ("id", "name", "created_at"))
    summary["managed"] = MANAGED_MARKER in (key.get("description") or "")
    if action:
        summary["action"] = action
    return summary


def candidate_keys(documents):
    """IAM API keys held by existing pull secrets: [(value, [namespaces])].

    ``documents`` is {namespace: {"auths": ...}}. Only entries with the ``iamapikey``
    username count. Order: most namespaces first, then first seen.
    """
    found = {}
    order = []
    for namespace in sorted(documents):
        for _server, entry in sorted(((documents[namespace] or {}).get("auths") or {}).items()):
            try:
                username, password = credentials(entry)
            except DockerConfigError:
                continue
            if username != IAM_API_KEY_USERNAME:
                continue
            if password not in found:
                found[password] = []
                order.append(password)
            if namespace not in found[password]:
                found[password].append(namespace)
    return sorted(((value, found[value]) for value in order),
                  key=lambda pair: -len(pair[1]))


def choose_key(candidates, iam_id):
    """Which looked-up candidate to reuse: its index in ``candidates``, or None.

    ``candidates``: [(details or None, namespaces)] where details is what IAM
    returned for a value held by the secrets (None when IAM does not know it). Only
    keys of ``iam_id`` that are not disabled qualify; the newest wins (so that the
    secrets converge on it after an interrupted rotation), then the one most secrets
    hold.
    """
    usable = [index for index, (details, _namespaces) in enumerate(candidates)
              if details is not None and details.get("iam_id") == iam_id and not details.get("disabled")]
    if not usable:
        return None
    return max(usable, key=lambda index: (candidates[index][0].get("created_at") or "",
                                          len(candidates[index][1]), -index))


# --- rotation: which older keys go, and when ------------------------------------------------

# Written into an older key's description by a rotation with a grace period; a later run
# of the same task deletes the key once the time has passed.
_RETIRED = re.compile(r"\s*\[retired by rotation; delete after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\]")
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def utc_stamp(moment):
    return moment.strftime(_STAMP)


def retired_description(description, delete_after):
    """``description`` with the retirement mark for ``delete_after`` (a UTC datetime)."""
    base = _RETIRED.sub("", description or "").strip()
    return ("%s [retired by rotation; delete after %s]" % (base, utc_stamp(delete_after))).strip()


def retired_until(key):
    """When a retired key may be deleted (UTC datetime), or None for a key not retired."""
    match = _RETIRED.search(key.get("description") or "")
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), _STAMP).replace(tzinfo=datetime.timezone.utc)


def plan_old_keys(keys, name, new_id, held_ids, now, rotating, grace_seconds=0, blocked=False):
    """What happens to this collection's older keys for ``name``: {"delete", "retire", "wait"}.

    ``new_id``: the key the secrets now hold, never touched. ``held_ids``: older keys a
    target secret still holds (it could not be updated, or was left alone): never deleted.
    ``blocked``: a secret could not take the new key, so nothing is deleted at all.
    A rotation deletes the older keys, or marks them for deletion (``retire``) when there
    is a grace period or a key must stay for now - so that a later run, once no secret
    holds them, deletes them. Every run deletes the retired keys whose time has passed and
    leaves the others (``wait``). Outside a rotation a key that is not retired is left alone.
    """
    plan = {"delete": [], "retire": [], "wait": []}
    for key in keys_to_delete(keys, name, [new_id]):
        stays = blocked or key.get("id") in held_ids
        until = retired_until(key)
        if until is not None:
            plan["delete" if until <= now and not stays else "wait"].append(key)
        elif rotating:
            plan["retire" if grace_seconds > 0 or stays else "delete"].append(key)
    return plan


def grace_period_error(seconds):
    if seconds is not None and not 0 <= seconds <= 90 * 86400:
        return "rotation_grace_period must be between 0 and 7776000 seconds (90 days), got %s" % seconds
    return None
