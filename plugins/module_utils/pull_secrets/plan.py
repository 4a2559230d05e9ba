# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image pull secrets in many namespaces: plan with pure functions, then apply.

``plan_pull_secrets`` compares what one LIST returned with the desired dockerconfig
(semantically: decoded JSON, so key order and re-encoding are no change) and says
per namespace what to do. The LIST is read page by page and each secret reduced to
``secret_summary`` as its page arrives: memory follows the number of namespaces, not
the size of the secrets they hold. ``apply_plan`` does only the writes the plan needs, in
bounded parallel. Check mode stops after the plan.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    DOCKERCONFIGJSON_TYPE,
    DockerConfigError,
    decode_secret,
    encode_secret_data,
    redact,
    size_error,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    CONFLICT_RETRIES,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MERGE_PATCH,
    KubeError,
    describe_target,
    find_named,
    map_bounded,
    read_or_none,
)


def is_managed(secret):
    labels = (secret.get("metadata", {}).get("labels") or {}) if secret is not None else {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


_MANAGED_LABELS = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}


def secret_summary(secret, desired, keep_data=False):
    """What plan_secret needs of an existing Secret, without its data when it can go.

    Keeps the type, metadata.resourceVersion and our label. The data (a base64
    document per namespace, often most of the object) is replaced with
    ``matches_desired``: True when it decodes to ``desired``, False when it decodes to
    another document. It is kept as it is when it does not decode (plan_secret's error
    messages need it) or when ``keep_data`` is set and it differs (a diff shows it).
    """
    metadata = secret.get("metadata") or {}
    secret_type = secret.get("type")
    # The constants, not the parsed strings: one copy for thousands of namespaces.
    summary = {"type": DOCKERCONFIGJSON_TYPE if secret_type == DOCKERCONFIGJSON_TYPE else secret_type,
               "metadata": {"resourceVersion": metadata.get("resourceVersion"),
                            "labels": _MANAGED_LABELS if is_managed(secret) else {}}}
    try:
        current = decode_secret(secret.get("type"), secret.get("data"), "Secret")
    except DockerConfigError:
        summary["data"] = secret.get("data")
        return summary
    if desired is not None and current == desired:
        summary["matches_desired"] = True
    elif keep_data:
        summary["data"] = secret.get("data")
    else:
        summary["matches_desired"] = False
    return summary


def _current_config(existing, desired, where):
    """The document ``existing`` holds: decoded, or taken from its summary.

    A summary that only says "differs" gives None (its data was dropped: no diff).
    Raises DockerConfigError when the data does not decode.
    """
    if "matches_desired" in existing:
        return desired if existing["matches_desired"] else None
    return decode_secret(existing.get("type"), existing.get("data"), where)


def plan_secret(namespace, name, existing, desired, state="present", force=False):
    """What to do in one namespace: a dict with ``action`` and, for diffs, before/after.

    ``action`` is a word of the result vocabulary (common/results.py): created,
    updated, unchanged, deleted, absent, or failed (with ``error``) for objects this
    module must not or cannot change. A plan says what its apply will report.
    ``existing`` is the Secret as a dict (or its secret_summary) or None, ``desired``
    the {"auths": ...} document.
    """
    where = "Secret %s/%s" % (namespace, name)
    step = {"namespace": namespace, "name": name, "before": None, "after": None}
    current = None
    if existing is not None:
        if state == "present" and existing.get("type") != DOCKERCONFIGJSON_TYPE:
            # The type cannot change, and a legacy kubernetes.io/dockercfg secret patched
            # with a .dockerconfigjson key would still be read through its old .dockercfg.
            step.update(action="failed", error="%s exists with type %s, not %s; delete it "
                        "or choose another name" % (where, existing.get("type"), DOCKERCONFIGJSON_TYPE))
            return step
        try:
            current = _current_config(existing, desired, where)
        except DockerConfigError as exc:
            if state == "absent" and (force or is_managed(existing)):
                current = {}
            elif existing.get("type") != DOCKERCONFIGJSON_TYPE:
                step.update(action="failed", error="%s exists with type %s, not %s; delete it "
                            "or choose another name" % (where, existing.get("type"), DOCKERCONFIGJSON_TYPE))
                return step
            elif state == "present" and force:
                current = {}
            else:
                step.update(action="failed", error="%s; set force to overwrite it" % exc)
                return step
        step["before"] = current

    if state == "absent":
        if existing is None:
            step["action"] = "absent"
        elif not (force or is_managed(existing)):
            step.update(action="failed", error="%s is not managed by %s (no %s=%s label); set "
                        "force to delete it" % (where, MANAGED_BY_VALUE, MANAGED_BY_LABEL,
                                                MANAGED_BY_VALUE))
        else:
            step["action"] = "deleted"
            step["resource_version"] = existing["metadata"]["resourceVersion"]
        return step

    step["after"] = desired
    if existing is None:
        step["action"] = "created"
    elif current == desired and is_managed(existing):
        step.update(action="unchanged", before=None)  # not shown in diffs; do not keep N documents
    else:
        step["action"] = "updated"
        step["resource_version"] = existing["metadata"]["resourceVersion"]
    return step


def plan_pull_secrets(existing_by_namespace, namespaces, name, desired, state="present", force=False):
    """plan_secret for every target namespace, in target order."""
    return [plan_secret(ns, name, existing_by_namespace.get(ns), desired, state, force)
            for ns in namespaces]


def secret_body(namespace, name, desired, labels=None):
    """The whole Secret object for a create: data and type only, our label."""
    metadata = {"name": name, "namespace": namespace,
                "labels": dict(labels or {}, **{MANAGED_BY_LABEL: MANAGED_BY_VALUE})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
            "type": DOCKERCONFIGJSON_TYPE, "data": encode_secret_data(desired)}


def _update_body(desired, resource_version, labels=None):
    """Merge patch: our data key and label only; other keys and labels stay."""
    return {"metadata": {"resourceVersion": resource_version,
                         "labels": dict(labels or {}, **{MANAGED_BY_LABEL: MANAGED_BY_VALUE})},
            "data": encode_secret_data(desired)}


def _apply_step(client, step, labels):
    """Run one planned write; on a conflict re-read and re-plan (bounded)."""
    namespace, name = step["namespace"], step["name"]
    core = client.core
    for _attempt in range(CONFLICT_RETRIES):
        action = step["action"]
        try:
            if action == "created":
                client.call_json(describe_target("create", "Secret", namespace, name),
                                 core.create_namespaced_secret, namespace,
                                 secret_body(namespace, name, step["after"], labels))
                return "created"
            if action == "updated":
                client.call_json(describe_target("update", "Secret", namespace, name),
                                 core.patch_namespaced_secret, name, namespace,
                                 _update_body(step["after"], step["resource_version"], labels),
                                 _content_type=MERGE_PATCH)
                return "updated"
            if action == "deleted":
                client.call_json(describe_target("delete", "Secret", namespace, name),
                                 core.delete_namespaced_secret, name, namespace,
                                 body={"preconditions": {"resourceVersion": step["resource_version"]}})
                return "deleted"
            return action
        except KubeError as exc:
            # 409: created meanwhile, or changed since our read. 404 on delete: gone.
            # 404 on update: deleted since our read; the fresh plan creates it again.
            if exc.status == 404 and action == "deleted":
                return "absent"
            if exc.status != 409 and not (exc.status == 404 and action == "updated"):
                raise
        step = _replan(client, step)
        if step["action"] == "failed":
            raise KubeError(step["error"])
    raise KubeError("Secret %s/%s kept changing under us; gave up after %d conflicts"
                    % (namespace, name, CONFLICT_RETRIES))


def _replan(client, step):
    """A fresh plan for one namespace after a conflict."""
    namespace, name = step["namespace"], step["name"]
    existing = read_or_none(client, describe_target("get", "Secret", namespace, name),
                            client.core.read_namespaced_secret, name, namespace)
    state = "absent" if step["action"] in ("deleted", "absent") else "present"
    fresh = plan_secret(namespace, name, existing, step["after"], state, force=step.get("force", False))
    fresh["force"] = step.get("force", False)
    return fresh


def apply_plan(client, plan, parallelism=8, labels=None):
    """Execute a plan; per-namespace results, failures isolated to their namespace."""
    def run(step):
        if step["action"] in ("failed", "unchanged", "absent"):
            return results.item(step["namespace"], step["name"], step["action"], step.get("error"))
        try:
            done = _apply_step(client, dict(step), labels)
            return results.item(step["namespace"], step["name"], done)
        except KubeError as exc:
            return results.item(step["namespace"], step["name"], "failed", str(exc))

    return map_bounded(run, plan, parallelism)


def predicted_results(plan):
    """What apply_plan would report, for check mode: the plan's own actions."""
    return [results.item(step["namespace"], step["name"], step["action"], step.get("error"))
            for step in plan]


def plan_diff(plan):
    """before/after keyed by namespace with every secret value redacted."""
    before, after = {}, {}
    for step in plan:
        if step["action"] in ("unchanged", "failed", "absent"):
            continue
        ns = step["namespace"]
        before[ns] = redact(step["before"], compare_to=step["after"]) if step["before"] is not None else None
        after[ns] = redact(step["after"], compare_to=step["before"]) if step["after"] is not None else None
    return {"before": before, "after": after}


def ensure_pull_secrets(client, namespaces, name, desired, state="present", force=False,
                        check_mode=False, parallelism=8, labels=None, want_diff=True, existing=None):
    """Read (one LIST, in pages), plan, and unless check_mode apply. Returns (items, diff).

    ``existing`` ({namespace: Secret}) is a read the caller already made; a secret that
    changed since then is re-read when its write meets the 409. Raises KubeError before
    any request when the secret would exceed the API server's size limit.
    """
    problem = size_error(desired) if state == "present" else None
    if problem:
        raise KubeError("Secret %s: %s" % (name, problem), status=413)
    if existing is None:
        existing = find_named(client, "Secret", name, namespaces, parallelism,
                              keep=lambda secret: secret_summary(secret, desired, keep_data=want_diff))
    plan = plan_pull_secrets(existing, namespaces, name, desired, state, force)
    for step in plan:
        step["force"] = force
    diff = plan_diff(plan) if want_diff else None
    if check_mode:
        return predicted_results(plan), diff
    return apply_plan(client, plan, parallelism, labels), diff
