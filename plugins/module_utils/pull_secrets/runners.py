# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the many-namespace modules do, step by step: validate, read, plan, write, report.

Each ``run_*`` function takes the AnsibleModule, does the whole task and exits it.
Modules stay thin (documentation and argument spec); the steps they share live here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results as results
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    DockerConfigError,
    fingerprint,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    get_kube_client,
    validate_kube_params,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.registry_login import (
    LoginError,
    check_login,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.service_accounts import (
    ensure_links,
    ensure_secret_and_links,
    missing_secrets,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.sources import (
    default_secret_name,
    desired_config,
    validate_source_params,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import (
    object_name_error,
    resolve_namespaces,
    validate_target_params,
)


def fail_on_errors(module, errors):
    if errors:
        module.fail_json(msg="Invalid options: " + "; ".join(errors))


def common_errors(params):
    errors = validate_kube_params(params) + validate_target_params(params)
    if params.get("service_account_timeout") is not None and not 0 <= params["service_account_timeout"] <= 3600:
        errors.append("service_account_timeout must be between 0 and 3600 seconds")
    for sa_name in params.get("service_accounts") or []:
        problem = object_name_error(sa_name, "service account")
        if problem:
            errors.append("service_accounts: %s" % problem)
    return errors


def _diff(secret_diff, link_diff=None):
    before, after = {"secrets": secret_diff["before"]}, {"secrets": secret_diff["after"]}
    if link_diff is not None:
        before["service_accounts"] = link_diff["before"]
        after["service_accounts"] = link_diff["after"]
    return {"before": before, "after": after}


def run_icr_pull_secret(module):
    params = module.params
    name = params.get("name") or default_secret_name(params)
    errors = common_errors(params) + validate_source_params(params)
    if not name:
        errors.append("name is required unless copy_from or entitlement_key gives a default")
    else:
        problem = object_name_error(name, "name")
        if problem:
            errors.append(problem)
    if params["validate_credentials"] and params.get("copy_from"):
        errors.append("validate_credentials is not available with copy_from")
    fail_on_errors(module, errors)

    client = get_kube_client(module)
    state = params["state"]
    desired, logins, source = None, [], None
    try:
        if state == "present":
            desired, logins, source = desired_config(params, client)
        skip = [params["copy_from"]["namespace"]] if params.get("copy_from") else []
        namespaces = resolve_namespaces(client, params, skip=skip)
        if params.get("copy_from") and name == params["copy_from"]["name"]:
            namespaces = [ns for ns in namespaces if ns != params["copy_from"]["namespace"]]
    except (KubeError, DockerConfigError) as exc:
        module.fail_json(msg=str(exc))

    if params["validate_credentials"]:
        for server, username, password in logins:
            try:
                check_login(server, username, password, ca_path=params.get("registry_ca_path"))
            except LoginError as exc:
                module.fail_json(msg="validate_credentials: %s; nothing was written" % exc)

    try:
        secret_items, secret_diff, link_items, link_diff = ensure_secret_and_links(
            client, namespaces, name, desired, state, params["force"], params["service_accounts"],
            params["service_account_timeout"], module.check_mode, params["parallelism"], want_diff=module._diff)
    except KubeError as exc:
        # Only the read before the writes raises; writes fail per namespace.
        module.fail_json(msg="%s; nothing was written" % exc)
    extra = dict(name=name)
    if desired is not None:
        extra.update(servers=sorted(desired["auths"]), fingerprint=fingerprint(desired), source=source)

    sections = [("Secret %s" % name, secret_items)]
    if params["service_accounts"]:
        extra["service_accounts"] = link_items
        sections.append(("Linking secret %s to service accounts" % name, link_items))
    if module._diff:  # 26 redacted registry entries per namespace: megabytes nobody asked for
        extra["diff"] = _diff(secret_diff, link_diff)
    results.exit_with(module, sections, **extra)


def run_sa_pull_secret(module):
    params = module.params
    errors = common_errors(params)
    if not params["secrets"]:
        errors.append("secrets must name at least one secret")
    for secret in params["secrets"]:
        problem = object_name_error(secret, "secret")
        if problem:
            errors.append("secrets: %s" % problem)
    if not params["service_accounts"]:
        errors.append("service_accounts must name at least one service account")
    if not params["for"]:
        errors.append("for must include pull, mount or both")
    fail_on_errors(module, errors)

    client = get_kube_client(module)
    try:
        namespaces = resolve_namespaces(client, params)
    except KubeError as exc:
        module.fail_json(msg=str(exc))

    # Checked before linking: with missing_secret=fail a namespace that lacks a secret
    # fails without being written to.
    missing = {}
    if params["state"] == "present" and params["missing_secret"] != "ignore":
        try:
            missing = missing_secrets(client, params["secrets"], namespaces, params["parallelism"])
        except KubeError as exc:
            module.warn("Could not check that the secrets exist: %s" % exc)
    texts = dict((namespace, "secret(s) %s do not exist in namespace %s; pods would see \"(not found)\""
                  % (", ".join(absent), namespace)) for namespace, absent in missing.items())
    blocked = set(texts) if params["missing_secret"] == "fail" else set()

    linked, diff = ensure_links(
        client, [ns for ns in namespaces if ns not in blocked], params["service_accounts"], params["secrets"],
        params["for"], params["state"], module.check_mode, params["service_account_timeout"],
        params["parallelism"])
    by_key = dict(((item["namespace"], item["name"]), item) for item in linked)
    items = []
    for sa_name in params["service_accounts"]:
        for namespace in namespaces:
            if namespace in blocked:
                items.append(results.item(namespace, sa_name, "failed", texts[namespace]))
                continue
            item = by_key[(namespace, sa_name)]
            if namespace in texts and item["action"] != "failed":
                module.warn(texts[namespace])
            items.append(item)
    results.exit_with(module, [("Linking %s" % ", ".join(params["secrets"]), items)],
                      diff=diff, missing_secrets=missing)
