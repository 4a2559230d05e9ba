# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the pull-secret modules do, step by step: validate, read, plan, write, report.

Each ``run_*`` function takes the AnsibleModule, does the whole task and exits it.
Modules stay thin (documentation and argument spec); the steps they share live here,
with where icr_pull_secret's credentials come from (exactly one source per task: an IAM
API key for every selected icr.io domain, an entitlement key for cp.icr.io, any
registry, or a copy of an existing secret) and the one "pull secret in every namespace,
then linked on its service accounts" flow of icr_pull_secret, iam_pull_secret and
ocp_internal_pull_secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results
from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import ArgumentSpec
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    ENTITLED_REGISTRY,
    ENTITLED_USERNAME,
    IAM_API_KEY_USERNAME,
    ICR_ENDPOINTS,
    DockerConfigError,
    build_dockerconfig,
    decode_secret,
    fingerprint,
    icr_domains,
    server_error,
    size_error,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    describe_target,
    get_kube_client,
    read_or_none,
    validate_kube_params,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.plan import ensure_pull_secrets
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.registry_login import (
    LoginError,
    check_login,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.service_accounts import (
    ensure_links,
    missing_secrets,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import (
    namespace_name_error,
    object_name_error,
    resolve_namespaces,
    validate_target_params,
)

SOURCE_OPTIONS = ("iam_api_key", "entitlement_key", "registry", "copy_from")
DEFAULT_COPY_SOURCE = {"namespace": "default", "name": "all-icr-io"}
ENTITLED_SECRET_NAME = "entitled-cp-icr-io"


def pull_secret_argument_spec():
    """Options of the modules that write one pull secret into many namespaces and link it
    (icr_pull_secret, iam_pull_secret, ocp_internal_pull_secret). Doc fragment:
    ibmcloud.registry.pull_secret."""
    return ArgumentSpec(dict(
        email=dict(type="str"),
        service_account_timeout=dict(type="int", default=30),
        force=dict(type="bool", default=False),
    ))


def icr_secret_argument_spec():
    """The icr.io domains of an IBM Cloud Container Registry pull secret and the service
    accounts that reference it (icr_pull_secret, iam_pull_secret). Doc fragment:
    ibmcloud.registry.icr_secret."""
    return ArgumentSpec(dict(
        regions=dict(type="list", elements="str", default=["all"]),
        endpoints=dict(type="list", elements="str", choices=list(ICR_ENDPOINTS), default=list(ICR_ENDPOINTS)),
        service_accounts=dict(type="list", elements="str", default=[]),
    ))


def chosen_source(params):
    return [key for key in SOURCE_OPTIONS if params.get(key) not in (None, "", {})]


def validate_source_params(params):
    """Error messages for the credential options, before any request."""
    chosen = chosen_source(params)
    errors = []
    if params.get("state", "present") == "present":
        if not chosen:
            errors.append("state=present needs one credential source: %s" % ", ".join(SOURCE_OPTIONS))
        elif len(chosen) > 1:
            errors.append("choose one credential source, got %s" % ", ".join(chosen))
    if "iam_api_key" in chosen:
        try:
            icr_domains(params.get("regions"), params.get("endpoints"))
        except DockerConfigError as exc:
            errors.append("regions/endpoints: %s" % exc)
    if "registry" in chosen:
        problem = server_error(params["registry"].get("server"))
        if problem:
            errors.append("registry.server: %s" % problem)
        if ":" in (params["registry"].get("username") or ""):
            errors.append("registry.username must not contain ':'")
    if "copy_from" in chosen:
        source = params["copy_from"]
        problem = namespace_name_error(source.get("namespace"))
        if problem:
            errors.append("copy_from.namespace: %s" % problem)
        problem = object_name_error(source.get("name"), "copy_from.name")
        if problem:
            errors.append(problem)
    if len(chosen) == 1 and chosen[0] != "copy_from":
        try:
            problem = size_error(desired_config(params)[0], _largest_option(params, chosen[0]))
        except DockerConfigError:
            problem = None  # reported by the module's own checks
        if problem:
            errors.append(problem)
    return errors


def _largest_option(params, source):
    """The option that makes a secret large: the longest of the source's values and email."""
    values = {"email": params.get("email")}
    if source == "registry":
        values.update(("registry.%s" % key, params["registry"].get(key)) for key in ("server", "username", "password"))
    else:
        values[source] = params.get(source)
    return max(sorted(values), key=lambda option: len(values[option] or ""))


def default_secret_name(params):
    """The secret name when ``name`` is not given, or None when it must be."""
    if params.get("copy_from"):
        return params["copy_from"]["name"]
    if params.get("entitlement_key"):
        return ENTITLED_SECRET_NAME
    return None


def desired_config(params, client=None):
    """(document, servers to check a login against, description) for the source.

    A copy reads the source secret (one GET) and keeps only its auths document.
    """
    email = params.get("email")
    if params.get("iam_api_key"):
        domains = icr_domains(params.get("regions"), params.get("endpoints"))
        public = [d for d in domains if not d.startswith("private.")]
        # One key serves every domain; a private endpoint is unreachable off IBM Cloud.
        login = [(public[0] if public else domains[0], IAM_API_KEY_USERNAME, params["iam_api_key"])]
        return (build_dockerconfig(domains, IAM_API_KEY_USERNAME, params["iam_api_key"], email),
                login, "IAM API key for %d icr.io domains" % len(domains))
    if params.get("entitlement_key"):
        login = [(ENTITLED_REGISTRY, ENTITLED_USERNAME, params["entitlement_key"])]
        return (build_dockerconfig([ENTITLED_REGISTRY], ENTITLED_USERNAME,
                                   params["entitlement_key"], email),
                login, "entitlement key for %s" % ENTITLED_REGISTRY)
    if params.get("registry"):
        reg = params["registry"]
        login = [(reg["server"], reg["username"], reg["password"])]
        return (build_dockerconfig([reg["server"]], reg["username"], reg["password"], email),
                login, "credentials for %s" % reg["server"])
    return read_copy_source(client, params["copy_from"]), [], "copy of %s/%s" % (
        params["copy_from"]["namespace"], params["copy_from"]["name"])


def read_copy_source(client, source):
    """The auths document of the secret to copy; a clear error when it is missing."""
    namespace, name = source["namespace"], source["name"]
    secret = read_or_none(client, describe_target("get", "Secret", namespace, name),
                          client.core.read_namespaced_secret, name, namespace)
    if secret is None:
        hint = ""
        if (namespace, name) == (DEFAULT_COPY_SOURCE["namespace"], DEFAULT_COPY_SOURCE["name"]):
            hint = (" On IBM Cloud Kubernetes Service and Red Hat OpenShift on IBM Cloud, "
                    "run 'ibmcloud ks cluster pull-secret apply --cluster <cluster>' to "
                    "create it, or use ibmcloud.registry.iam_pull_secret.")
        raise KubeError("copy_from: source secret %s/%s does not exist.%s"
                        % (namespace, name, hint), status=404)
    return decode_secret(secret.get("type"), secret.get("data"), "copy_from source Secret %s/%s" % (namespace, name))


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


def secrets_diff(secret_diff, link_diff=None):
    """The task's diff: the secrets, and the service account links when there are any."""
    before, after = {"secrets": secret_diff["before"]}, {"secrets": secret_diff["after"]}
    if link_diff is not None:
        before["service_accounts"] = link_diff["before"]
        after["service_accounts"] = link_diff["after"]
    return {"before": before, "after": after}


def ensure_secret_and_links(client, namespaces, name, desired, state, force, service_accounts,
                            service_account_timeout, check_mode=False, parallelism=8, want_diff=True,
                            existing=None):
    """The pull secret ``name`` in every namespace, then linked for pull on ``service_accounts``.

    Links only where the secret is in place; with state=absent, unlinks wherever asked.
    Returns (secret_items, secret_diff, link_items, link_diff); without service accounts
    link_items is [] and link_diff None; secret_diff is None unless want_diff. ``existing``:
    the secrets as the caller already read them (see ensure_pull_secrets). Raises
    KubeError only before the secret writes (a secret over the size limit, or a failed
    read): nothing was written then.
    """
    secret_items, secret_diff = ensure_pull_secrets(
        client, namespaces, name, desired, state=state, force=force, check_mode=check_mode,
        parallelism=parallelism, want_diff=want_diff, existing=existing)
    if not service_accounts:
        return secret_items, secret_diff, [], None
    ready = [item["namespace"] for item in secret_items if item["action"] != "failed"]
    link_items, link_diff = ensure_links(client, ready, service_accounts, [name], ("pull",), state,
                                         check_mode, service_account_timeout, parallelism, want_diff=want_diff)
    return secret_items, secret_diff, link_items, link_diff


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
    desired, logins, source, desired_fingerprint = None, [], None, None
    try:
        if state == "present":
            desired, logins, source = desired_config(params, client)
            # scrypt takes 16 MiB for a moment: now, before the reads, so that it does not
            # add to the peak memory of a run over thousands of namespaces.
            desired_fingerprint = fingerprint(desired)
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
        extra.update(servers=sorted(desired["auths"]), fingerprint=desired_fingerprint, source=source)

    sections = [("Secret %s" % name, secret_items)]
    if params["service_accounts"]:
        extra["service_accounts"] = link_items
        sections.append(("Linking secret %s to service accounts" % name, link_items))
    if module._diff:  # 26 redacted registry entries per namespace: megabytes nobody asked for
        extra["diff"] = secrets_diff(secret_diff, link_diff)
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
    if not params["link_for"]:
        errors.append("link_for must include pull, mount or both")
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
        params["link_for"], params["state"], module.check_mode, params["service_account_timeout"],
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
