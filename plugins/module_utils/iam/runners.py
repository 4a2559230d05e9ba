# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What iam_service_id and iam_registry_policy do: validate, read, plan, write, report.

Each ``run_*`` function takes the AnsibleModule, does the whole task and exits it.
Check mode stops after the reads. Nothing here imports the Kubernetes client, so
these IAM-only modules start fast; iam_pull_secret lives in ``pull_secret_runner``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.client import (
    IamError,
    get_iam_client,
    validate_iam_params,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.plan import (
    PlanError,
    desired_scopes,
    is_service_id_id,
    key_summary,
    normalise_roles,
    plan_policies,
    policies_diff,
    policy_body,
    policy_roles,
    policy_scope,
    region_errors,
    registry_namespace_errors,
    service_id_changes,
    service_id_name_error,
    service_id_summary,
    step_summary,
)

CONFLICT_RETRIES = 3


def _fail(module, exc, **extra):
    module.fail_json(msg=str(exc), **extra)


def fail_on_errors(module, errors):
    if errors:
        module.fail_json(msg="Invalid options: " + "; ".join(errors))


# --- iam_service_id ----------------------------------------------------------------------------


def _service_id_diff(record):
    if record is None:
        return {}
    return {"name": record.get("name"), "description": record.get("description") or ""}


def _reconcile_service_id(iam, existing, params, check_mode):
    """(action, record) for an existing service ID: unchanged, or updated to the options."""
    changes = service_id_changes(existing, name=params["name"], description=params.get("description"))
    if not changes:
        return "unchanged", existing
    return "updated", dict(existing, **changes) if check_mode else _update_service_id(iam, existing, changes)


def _update_service_id(iam, record, changes):
    """PUT with If-Match; on a stale entity tag re-read and try again (bounded)."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            return iam.result("update_service_id", id=record["id"], if_match=record["entity_tag"], **changes)
        except IamError as exc:
            if exc.status not in (409, 412) or attempt == CONFLICT_RETRIES - 1:
                raise
        record = iam.result("get_service_id", id=record["id"])
        changes = dict((k, v) for k, v in changes.items() if record.get(k) != v)
        if not changes:
            return record
    return record  # pragma: no cover


def run_iam_service_id(module):
    params = module.params
    errors = validate_iam_params(params)
    problem = service_id_name_error(params["name"])
    if problem:
        errors.append(problem)
    if params.get("id") and not is_service_id_id(params["id"]):
        errors.append("id %r is not the ID of a service ID (ServiceId-...)" % params["id"])
    fail_on_errors(module, errors)

    iam = get_iam_client(module)
    state = params["state"]
    try:
        account = iam.account_id(params.get("account_id"))
        existing = iam.find_service_id(account, params.get("id") or params["name"])
    except (IamError, PlanError) as exc:
        _fail(module, exc)

    before = _service_id_diff(existing)
    result = dict(changed=False, account_id=account)
    try:
        if state == "absent":
            if existing is None:
                action, record, keys = "absent", None, []
            else:
                keys = [key_summary(k, "deleted") for k in iam.list_api_keys(account, existing["iam_id"])]
                if not module.check_mode:
                    iam.call("delete_service_id", id=existing["id"])
                action, record = "deleted", existing
            result.update(api_keys=keys)
            after = {}
        elif existing is None:
            if params.get("id"):
                module.fail_json(msg="service ID %s does not exist in account %s; IAM chooses the ID of a "
                                 "new service ID, so omit id to create one named %r"
                                 % (params["id"], account, params["name"]))
            action = "created"
            if module.check_mode:
                record = dict(account_id=account, name=params["name"], description=params.get("description"),
                              id=None, iam_id=None, crn=None)
            else:
                record, deleted = iam.create_service_id(account, params["name"], params.get("description"))
                if deleted:
                    module.warn("another run created service ID %s named %r at the same time; this run "
                                "deleted its own, %s, and uses that one" % (record["id"], params["name"], deleted))
                    action, record = _reconcile_service_id(iam, record, params, module.check_mode)
            after = _service_id_diff(record)
        else:
            action, record = _reconcile_service_id(iam, existing, params, module.check_mode)
            after = _service_id_diff(record)
    except IamError as exc:
        _fail(module, exc)
    # One object, one item: the same results/counts shape as the many-namespace modules
    # (a top-level "action" would be overwritten by Ansible with the module's name).
    entry = results.item(None, params["name"], action, id=(record or {}).get("id"))
    result.update(changed=action in results.CHANGING, results=[entry],
                  counts=results.count([entry]), service_id=service_id_summary(record),
                  diff=dict(before=before, after=after))
    module.exit_json(**result)


# --- iam_registry_policy -----------------------------------------------------------------------


def _replace_policy(iam, policy_id, body, scope, roles, account):
    """GET for the ETag, then PUT with If-Match; re-read on a stale ETag (bounded)."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            response = iam.call("get_v2_policy", id=policy_id)
        except IamError as exc:
            if exc.status == 404:
                return "created", iam.result("create_v2_policy", **body)["id"]
            raise
        current = response.get_result()
        if policy_scope(current, account) == scope and policy_roles(current) == sorted(roles):
            return "unchanged", policy_id
        etag = (response.get_headers() or {}).get("ETag")
        try:
            iam.call("replace_v2_policy", id=policy_id, if_match=etag, **body)
            return "updated", policy_id
        except IamError as exc:
            if exc.status not in (409, 412) or attempt == CONFLICT_RETRIES - 1:
                raise
    return "updated", policy_id  # pragma: no cover


def _apply_policy_step(iam, step, account, iam_id, description):
    policy = step.get("policy") or {}
    if step["action"] == "unchanged":
        return "unchanged", policy.get("id")
    if step["action"] == "deleted":
        try:
            iam.call("delete_v2_policy", id=policy["id"])
        except IamError as exc:
            if exc.status == 404:
                return "absent", policy["id"]
            raise
        return "deleted", policy["id"]
    body = policy_body(account, iam_id, step["roles"], step["scope"], description)
    if step["action"] == "created":
        try:
            return "created", iam.result("create_v2_policy", **body)["id"]
        except IamError as exc:
            # 409: a policy of this scope appeared since the read (another run at the same
            # time); make that one right instead.
            if exc.status != 409:
                raise
            same_scope = [p for p in iam.list_registry_policies(account, iam_id)
                          if policy_scope(p, account) == step["scope"]]
            if not same_scope:
                raise
            policy = same_scope[0]
    return _replace_policy(iam, policy["id"], body, step["scope"], step["roles"], account)


def run_iam_registry_policy(module):
    params = module.params
    state = params["state"]
    errors = validate_iam_params(params)
    roles = []
    try:
        roles = normalise_roles(params["roles"])
    except PlanError as exc:
        errors.append(str(exc))
    if state == "present" and not roles and not errors:
        errors.append("roles must name at least one of Reader, Writer, Manager")
    errors += region_errors(params["regions"]) + registry_namespace_errors(params["resource_namespaces"])
    if not params["service_id"]:
        errors.append("service_id must be a service ID name or ID")
    fail_on_errors(module, errors)

    iam = get_iam_client(module)
    try:
        account = iam.account_id(params.get("account_id"))
        service = iam.find_service_id(account, params["service_id"])
    except (IamError, PlanError) as exc:
        _fail(module, exc)

    scoped = bool(params["regions"] or params["resource_namespaces"])
    scopes = desired_scopes(params["regions"], params["resource_namespaces"])
    if state == "absent" and not scoped:
        scopes = None
    if service is None:
        if state == "absent":
            module.exit_json(changed=False, policies=[], service_id=None, account_id=account)
        if not module.check_mode:
            module.fail_json(msg="service ID %r not found in account %s; create it first with "
                             "ibmcloud.registry.iam_service_id" % (params["service_id"], account))
        module.warn("service ID %r does not exist yet; showing the policies a real run would create "
                    "once it does" % params["service_id"])
        existing, iam_id = [], None
    else:
        iam_id = service["iam_id"]
        try:
            existing = iam.list_registry_policies(account, iam_id)
        except IamError as exc:
            _fail(module, exc)

    steps = plan_policies(existing, account, iam_id, roles, scopes, state, params["exclusive"])
    name = service["name"] if service else params["service_id"]
    description = params.get("description") or \
        "Container Registry access for service ID %s (managed by ibmcloud.registry)" % name
    done = []
    for step in steps:
        if module.check_mode:
            done.append(step_summary(step))
            continue
        try:
            action, policy_id = _apply_policy_step(iam, step, account, iam_id, description)
        except IamError as exc:
            module.fail_json(msg="%s; policies handled before the failure are listed in policies" % exc,
                             changed=results.any_changed(done), policies=done, counts=results.count(done),
                             service_id=service_id_summary(service), account_id=account)
        done.append(step_summary(step, action, policy_id))
    module.exit_json(changed=results.any_changed(done), policies=done, counts=results.count(done),
                     service_id=service_id_summary(service), account_id=account, diff=policies_diff(steps))
