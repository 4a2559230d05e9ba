# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What iam_pull_secret does: mint, reuse or rotate a service ID's API key and write it
straight into image pull secrets.

Read the cluster (one LIST of the target secrets) and IAM (the service ID, and the keys
the secrets hold, looked up by value), decide, then write only what differs. API key
values exist only in local variables, the Secret bodies sent to the API server and the
module's ``no_log_values``; results and diffs carry key names, IDs and ``sha256:``
fingerprints. Check mode stops after the reads.

Rotation, in this order: mint the new key, log in with it (the IAM token exchange a
registry's token service makes), write it to every secret, and only then delete the older
keys this collection made - or, with a grace period, mark them for a later run to delete.
Any secret that could not take the new key keeps its old key valid.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    IAM_API_KEY_USERNAME,
    DockerConfigError,
    build_dockerconfig,
    decode_secret,
    fingerprint,
    icr_domains,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.client import (
    IamError,
    get_iam_client,
    validate_iam_params,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.plan import (
    PlanError,
    candidate_keys,
    choose_key,
    grace_period_error,
    key_description,
    key_summary,
    keys_to_delete,
    plan_old_keys,
    retired_description,
    service_id_name_error,
    service_id_summary,
    utc_stamp,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import find_named
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.plan import is_managed
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    get_kube_client,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.runners import (
    common_errors,
    ensure_secret_and_links,
    fail_on_errors,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import (
    object_name_error,
    resolve_namespaces,
)

DEFAULT_SECRET_NAME = "all-icr-io"
# Stands in for a key that check mode does not create; never sent anywhere.
CHECK_MODE_KEY = "check-mode-placeholder-not-a-key"
MAX_KEY_LOOKUPS = 5


def _fail(module, exc, **extra):
    module.fail_json(msg=str(exc), **extra)


def _pull_secret_errors(params):
    errors = common_errors(params) + validate_iam_params(params)
    problem = object_name_error(params["name"], "name")
    if problem:
        errors.append(problem)
    if not params["service_id"]:
        errors.append("service_id must be a service ID name or ID")
    if params.get("api_key_name") is not None:
        problem = service_id_name_error(params["api_key_name"], "api_key_name")
        if problem:
            errors.append(problem)
    if params["state"] == "present":
        try:
            icr_domains(params["regions"], params["endpoints"])
        except DockerConfigError as exc:
            errors.append("regions/endpoints: %s" % exc)
    if params["rotate"] and params["state"] == "absent":
        errors.append("rotate applies to state=present only")
    problem = grace_period_error(params["rotation_grace_period"])
    if problem:
        errors.append(problem)
    return errors


class _PullSecretRun:
    """One iam_pull_secret call; attributes hold what was read and decided."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check = module.check_mode
        self.kube = None
        self.iam = None
        self.account = None
        self.service = None
        self.namespaces = []
        self.existing = {}    # namespace -> the Secret read before any write
        self.held = {}        # namespace -> the iamapikey value its secret holds
        self.candidates = []
        self.looked_up = {}   # key value -> what IAM knows about it (None: unknown)
        self.key_items = []   # section for changed/counts: created/updated/deleted keys
        self.extra = {}

    def secret(self, value):
        """Never let a key value reach output: Ansible masks it, the IAM client scrubs it."""
        self.module.no_log_values.add(value)
        self.iam.add_secret(value)

    # reads ----------------------------------------------------------------------------------

    def read(self):
        params = self.params
        try:
            self.namespaces = resolve_namespaces(self.kube, params)
            self.existing = find_named(self.kube, "Secret", params["name"], self.namespaces,
                                       params["parallelism"])
        except KubeError as exc:
            _fail(self.module, exc)
        documents = {}
        for namespace, secret in self.existing.items():
            try:
                documents[namespace] = decode_secret(secret.get("type"), secret.get("data"),
                                                     "Secret %s/%s" % (namespace, params["name"]))
            except DockerConfigError:
                continue  # pull_secrets reports it (or overwrites it with force)
        self.candidates = candidate_keys(documents)
        for value, namespaces in self.candidates:
            self.secret(value)
            for namespace in namespaces:
                self.held.setdefault(namespace, value)
        try:
            self.account = self.iam.account_id(params.get("account_id"))
            self.service = self.iam.find_service_id(self.account, params["service_id"])
        except (IamError, PlanError) as exc:
            _fail(self.module, exc)

    @property
    def key_name(self):
        if self.params.get("api_key_name"):
            return self.params["api_key_name"]
        base = self.service["name"] if self.service else self.params["service_id"]
        return "%s-key" % base

    def details(self, value):
        if value not in self.looked_up:
            self.looked_up[value] = self.iam.key_details(value)
        return self.looked_up[value]

    def reusable_key(self):
        """(value, details) of a key the secrets hold that IAM knows for this service ID."""
        looked = [(self.details(value), namespaces) for value, namespaces in self.candidates[:MAX_KEY_LOOKUPS]]
        index = choose_key(looked, self.service["iam_id"])
        if index is None:
            return None, None
        return self.candidates[index][0], looked[index][0]

    def kept_namespaces(self):
        """Namespaces whose secret of that name this collection did not create: left as
        they are unless replace_existing (for example the all-icr-io IBM Cloud made)."""
        if self.params["replace_existing"]:
            return []
        return sorted(ns for ns, secret in self.existing.items() if not is_managed(secret))

    # writes ---------------------------------------------------------------------------------

    def mint(self):
        params = self.params
        description = params.get("api_key_description") or (
            "API key for service ID %s, stored in image pull secret %s" % (self.service["name"], params["name"]))
        created = self.iam.result("create_api_key", name=self.key_name, iam_id=self.service["iam_id"],
                                  account_id=self.account, description=key_description(description),
                                  store_value=False)
        value = created.pop("apikey", None)
        if not value:
            raise IamError("IAM call create_api_key (POST /v1/apikeys) returned no key value")
        self.secret(value)
        return value, created

    def verify(self, value, key):
        """Log in with the new key before any secret gets it; on failure delete it again
        and fail, naming the namespaces that keep their old key."""
        try:
            claims = self.iam.verify_api_key(value)
            if claims.get("iam_id") != self.service["iam_id"]:
                raise IamError("the new API key logs in as %r, not as service ID %s (%s)"
                               % (claims.get("iam_id"), self.service["name"], self.service["iam_id"]))
        except IamError as exc:
            self.delete_keys([key])
            holding = sorted(self.held)
            self.module.fail_json(
                msg="%s; the new key %s was deleted again and no secret was changed; namespaces that still "
                    "hold their old key: %s" % (exc, key.get("id"), ", ".join(holding) or "none"),
                api_key=key_summary(key, "deleted"), namespaces_holding_old_key=holding,
                deleted_api_keys=[], results=[], counts=results.count([]))

    def delete_keys(self, keys):
        deleted = []
        for key in keys:
            if not self.check:
                try:
                    self.iam.call("delete_api_key", id=key["id"])
                except IamError as exc:
                    if exc.status != 404:
                        raise
            deleted.append(key_summary(key, "deleted"))
            self.key_items.append(results.item(None, key.get("name"), "deleted", id=key.get("id")))
        return deleted

    def retire_keys(self, keys, delete_after):
        """Mark older keys for deletion after the grace period (If-Match on their entity tag)."""
        retired = []
        for key in keys:
            if not self.check:
                self.iam.call("update_api_key", id=key["id"], if_match=key.get("entity_tag") or "*",
                              description=retired_description(key.get("description"), delete_after))
            summary = key_summary(key, "updated")
            summary["delete_after"] = utc_stamp(delete_after)
            retired.append(summary)
            self.key_items.append(results.item(None, key.get("name"), "updated", id=key.get("id")))
        return retired

    def write_secrets(self, namespaces, desired, state, minted=None):
        """Secrets, then service account links. A read that fails for good (the LIST
        before the writes) fails the task; a key minted for it is deleted first."""
        params = self.params
        try:
            items, secret_diff, link_items, link_diff = ensure_secret_and_links(
                self.kube, namespaces, params["name"], desired, state, params["force"],
                params["service_accounts"], params["service_account_timeout"], self.check,
                params["parallelism"], want_diff=self.module._diff, existing=self.existing)
        except KubeError as exc:
            if minted is not None:
                self.delete_keys([minted])
            self.module.fail_json(msg="%s%s" % (exc, "; the API key created for it was deleted again"
                                                if minted is not None else ""))
        if params["service_accounts"]:
            self.extra["service_accounts"] = link_items
        return items, secret_diff, link_items, link_diff

    # the task -------------------------------------------------------------------------------

    def present(self):
        params = self.params
        key_before = None
        value, key, action = None, None, "created"
        rotating = self.service is not None and params["rotate"]
        kept = self.kept_namespaces()
        targets = [ns for ns in self.namespaces if ns not in kept]
        if kept:
            self.module.warn("left %s in %s as it is: this collection did not create it; set replace_existing "
                             "to replace it" % (params["name"], ", ".join(kept)))
        if self.service is not None and not rotating:
            value, details = self.reusable_key()
            if value is not None:
                key, action, key_before = details, "unchanged", key_summary(details)
        if value is None and not targets:
            return self.nothing_to_write(kept)
        if value is None:
            if self.service is None:
                if not self.check:
                    self.module.fail_json(msg="service ID %r not found in account %s; create it first with "
                                          "ibmcloud.registry.iam_service_id"
                                          % (params["service_id"], self.account))
                self.module.warn("service ID %r does not exist yet; showing what a real run would do once "
                                 "it does" % params["service_id"])
            if self.check:
                value, key = CHECK_MODE_KEY, {"id": None, "name": self.key_name, "created_at": None,
                                              "description": key_description("")}
            else:
                value, key = self.mint()
                self.verify(value, key)
            self.key_items.append(results.item(None, self.key_name, "created", id=key.get("id")))

        domains = icr_domains(params["regions"], params["endpoints"])
        desired = build_dockerconfig(domains, IAM_API_KEY_USERNAME, value, params.get("email"))
        minted = key if action == "created" and not self.check else None
        items, secret_diff, link_items, link_diff = self.write_secrets(targets, desired, "present", minted)
        if kept:
            items = sorted(items + [results.item(ns, params["name"], "unchanged", kept=True) for ns in kept],
                           key=lambda entry: self.namespaces.index(entry["namespace"]))

        failed = [item["namespace"] for item in items if item["action"] == "failed"]
        written = [item for item in items if item["action"] != "failed" and not item.get("kept")]
        deleted, retired, still_old = [], [], []
        if minted is not None and not written:
            # No secret holds the new key: it would only be clutter.
            self.delete_keys([key])
            action = "deleted"
        elif self.service is not None:
            deleted, retired, still_old = self.old_keys(key, value, rotating, failed, kept)

        key_after = key_summary(key, action)
        key_after["rotated"] = rotating and action != "deleted"
        if value != CHECK_MODE_KEY:
            key_after["fingerprint"] = fingerprint(value)
            self.extra["fingerprint"] = fingerprint(desired)
        self.extra.update(api_key=key_after, deleted_api_keys=deleted, retired_api_keys=retired,
                          namespaces_holding_old_key=still_old, servers=sorted(desired["auths"]))
        diff_before = {"api_key": _key_names(key_before), "secrets": _side(secret_diff, "before")}
        diff_after = {"api_key": _key_names(key_after), "secrets": _side(secret_diff, "after")}
        if deleted:
            diff_before["api_keys_deleted"] = [_key_names(k) for k in deleted]
        if retired:
            diff_after["api_keys_retired"] = [dict(_key_names(k), delete_after=k["delete_after"]) for k in retired]
        self.finish(items, link_items, link_diff, diff_before, diff_after)

    def nothing_to_write(self, kept):
        """Every target secret is one this collection leaves alone: no key is created for
        them, only retired keys whose time has passed are deleted."""
        deleted, retired, still_old = [], [], []
        if self.service is not None:
            deleted, retired, still_old = self.old_keys({"id": None}, None, False, [], kept)
        items = [results.item(ns, self.params["name"], "unchanged", kept=True) for ns in kept]
        self.extra.update(api_key=None, deleted_api_keys=deleted, retired_api_keys=retired,
                          namespaces_holding_old_key=still_old, servers=[])
        self.finish(items, [], None, {"api_key": None, "secrets": []}, {"api_key": None, "secrets": []})

    def old_keys(self, key, value, rotating, failed, kept):
        """Delete (or retire) this collection's older keys once no target secret holds them.

        Returns (deleted, retired, namespaces whose secret still holds one of them).
        """
        ours = keys_to_delete(self.iam.list_api_keys(self.account, self.service["iam_id"]), self.key_name,
                              [key.get("id")])
        old_ids = set(k.get("id") for k in ours)
        # Secrets that failed or were left alone keep the value they had before this run.
        behind = [ns for ns in self.namespaces if (ns in failed or ns in kept) and self.held.get(ns, value) != value]
        # Too many different values to look up: assume each is an older key, keep them all.
        too_many = len(set(self.held[ns] for ns in behind)) > MAX_KEY_LOOKUPS
        blocked = bool(failed) or too_many
        held_ids = set()
        still_old = []
        for namespace in behind:
            details = None if too_many else self.details(self.held[namespace])
            if too_many or (details is not None and details.get("id") in old_ids):
                still_old.append(namespace)
                held_ids.add((details or {}).get("id"))
        if rotating and (failed or still_old):
            where = still_old or failed
            self.module.warn("rotation incomplete: %d of %d secrets could not take the new key (%s), so the "
                             "older key(s) named %s were kept; fix that and run again"
                             % (len(where), len(self.namespaces), ", ".join(where), self.key_name))
        now = datetime.datetime.now(datetime.timezone.utc)
        grace = self.params["rotation_grace_period"]
        plan = plan_old_keys(ours, self.key_name, key.get("id"), held_ids, now, rotating, grace, blocked=blocked)
        deleted = self.delete_keys(plan["delete"])
        retired = self.retire_keys(plan["retire"], now + datetime.timedelta(seconds=grace))
        return deleted, retired, still_old

    def absent(self):
        items, secret_diff, link_items, link_diff = self.write_secrets(self.namespaces, None, "absent")
        deleted = []
        failed = [item for item in items if item["action"] == "failed"]
        if self.service is not None and not failed:
            deleted = self.delete_keys(keys_to_delete(
                self.iam.list_api_keys(self.account, self.service["iam_id"]), self.key_name))
        self.extra.update(api_key=None, deleted_api_keys=deleted)
        diff_before = {"secrets": _side(secret_diff, "before"), "api_keys": [_key_names(k) for k in deleted]}
        diff_after = {"secrets": _side(secret_diff, "after"), "api_keys": []}
        self.finish(items, link_items, link_diff, diff_before, diff_after)

    def finish(self, items, link_items, link_diff, diff_before, diff_after):
        params = self.params
        if link_diff is not None:
            diff_before["service_accounts"] = link_diff["before"]
            diff_after["service_accounts"] = link_diff["after"]
        sections = [("Secret %s" % params["name"], items)]
        if params["service_accounts"]:
            sections.append(("Linking secret %s to service accounts" % params["name"], link_items))
        if self.key_items:
            sections.append(("API keys", self.key_items))
        if self.module._diff:  # the secrets' part: redacted entries per namespace, only when asked
            self.extra["diff"] = {"before": diff_before, "after": diff_after}
        results.exit_with(self.module, sections, name=params["name"], service_id=service_id_summary(self.service),
                          account_id=self.account, **self.extra)


def _side(secret_diff, side):
    """One side of the secrets' diff; None when no diff was asked for."""
    return secret_diff[side] if secret_diff is not None else None


def _key_names(summary):
    if not summary:
        return None
    return dict((k, summary.get(k)) for k in ("id", "name"))


def run_iam_pull_secret(module):
    fail_on_errors(module, _pull_secret_errors(module.params))
    run = _PullSecretRun(module)
    run.kube = get_kube_client(module)
    run.iam = get_iam_client(module)
    run.read()
    try:
        if module.params["state"] == "absent":
            run.absent()
        else:
            run.present()
    except IamError as exc:
        _fail(module, exc, api_key=run.extra.get("api_key"))
