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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results as results
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
    key_description,
    key_summary,
    keys_to_delete,
    service_id_name_error,
    service_id_summary,
    value_fingerprint,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    get_kube_client,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.runners import (
    common_errors,
    fail_on_errors,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.service_accounts import (
    ensure_secret_and_links,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import (
    find_named,
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
        self.candidates = []
        self.key_items = []   # section for changed/counts: created/deleted keys
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
            existing = find_named(self.kube, "Secret", params["name"], self.namespaces, params["parallelism"])
        except KubeError as exc:
            _fail(self.module, exc)
        documents = {}
        for namespace, secret in existing.items():
            try:
                documents[namespace] = decode_secret(secret.get("type"), secret.get("data"),
                                                     "Secret %s/%s" % (namespace, params["name"]))
            except DockerConfigError:
                continue  # pull_secrets reports it (or overwrites it with force)
        self.candidates = candidate_keys(documents)
        for value, _namespaces in self.candidates:
            self.secret(value)
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

    def reusable_key(self):
        """(value, details) of a key the secrets hold that IAM knows for this service ID."""
        looked = []
        for value, namespaces in self.candidates[:MAX_KEY_LOOKUPS]:
            looked.append((self.iam.key_details(value), namespaces))
        index = choose_key(looked, self.service["iam_id"])
        if index is None:
            return None, None
        return self.candidates[index][0], looked[index][0]

    def our_old_keys(self, keep_ids=()):
        return keys_to_delete(self.iam.list_api_keys(self.account, self.service["iam_id"]),
                              self.key_name, keep_ids)

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

    def write_secrets(self, desired, state, minted=None):
        """Secrets, then service account links. A read that fails for good (the LIST
        before the writes) fails the task; a key minted for it is deleted first."""
        params = self.params
        try:
            items, secret_diff, link_items, link_diff = ensure_secret_and_links(
                self.kube, self.namespaces, params["name"], desired, state, params["force"],
                params["service_accounts"], params["service_account_timeout"], self.check,
                params["parallelism"])
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
        if self.service is not None and not params["rotate"]:
            value, details = self.reusable_key()
            if value is not None:
                key, action, key_before = details, "reused", key_summary(details)
        old_keys = []
        if self.service is not None and params["rotate"]:
            action = "rotated"
            old_keys = self.our_old_keys()
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
            self.key_items.append(results.item(None, self.key_name, "created", id=key.get("id")))

        domains = icr_domains(params["regions"], params["endpoints"])
        desired = build_dockerconfig(domains, IAM_API_KEY_USERNAME, value, params.get("email"))
        minted = key if action != "reused" and not self.check else None
        items, secret_diff, link_items, link_diff = self.write_secrets(desired, "present", minted)

        failed = [item for item in items if item["action"] == "failed"]
        deleted = []
        if action != "reused" and not self.check and len(failed) == len(items):
            # No secret holds the new key: it would only be clutter.
            self.delete_keys([key])
            action = "discarded"
        elif old_keys and failed:
            self.module.warn("rotation incomplete: %d of %d secrets could not be updated, so the %d older "
                             "key(s) named %s were kept; fix the failures and run again"
                             % (len(failed), len(items), len(old_keys), self.key_name))
        elif old_keys:
            deleted = self.delete_keys([k for k in old_keys if k.get("id") != key.get("id")])

        key_after = key_summary(key, action)
        if value != CHECK_MODE_KEY:
            key_after["fingerprint"] = value_fingerprint(value)
            self.extra["fingerprint"] = fingerprint(desired)
        self.extra.update(api_key=key_after, deleted_api_keys=deleted, servers=sorted(desired["auths"]))
        diff_before = {"api_key": _key_names(key_before), "secrets": secret_diff["before"]}
        diff_after = {"api_key": _key_names(key_after), "secrets": secret_diff["after"]}
        if deleted or (self.check and old_keys):
            diff_before["api_keys_deleted"] = [_key_names(k) for k in (deleted or old_keys)]
        self.finish(items, link_items, link_diff, diff_before, diff_after)

    def absent(self):
        items, secret_diff, link_items, link_diff = self.write_secrets(None, "absent")
        deleted = []
        failed = [item for item in items if item["action"] == "failed"]
        if self.service is not None and not failed:
            deleted = self.delete_keys(self.our_old_keys())
        self.extra.update(api_key=None, deleted_api_keys=deleted)
        diff_before = {"secrets": secret_diff["before"], "api_keys": [_key_names(k) for k in deleted]}
        diff_after = {"secrets": secret_diff["after"], "api_keys": []}
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
        results.exit_with(self.module, sections, diff={"before": diff_before, "after": diff_after},
                          name=params["name"], service_id=service_id_summary(self.service),
                          account_id=self.account, **self.extra)


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
