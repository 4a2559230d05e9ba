# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a pull secret's credentials come from: the options of icr_pull_secret.

Exactly one source per task: an IAM API key (every selected icr.io domain), an
entitlement key (cp.icr.io), any registry, or a copy of an existing secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    ENTITLED_REGISTRY,
    ENTITLED_USERNAME,
    IAM_API_KEY_USERNAME,
    DockerConfigError,
    build_dockerconfig,
    decode_secret,
    icr_domains,
    server_error,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    describe_target,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import (
    namespace_name_error,
    object_name_error,
)

SOURCE_OPTIONS = ("iam_api_key", "entitlement_key", "registry", "copy_from")
DEFAULT_COPY_SOURCE = {"namespace": "default", "name": "all-icr-io"}
ENTITLED_SECRET_NAME = "entitled-cp-icr-io"


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
    return errors


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
    try:
        secret = client.call_json(describe_target("get", "Secret", namespace, name),
                                  client.core.read_namespaced_secret, name, namespace)
    except KubeError as exc:
        if exc.status == 404:
            hint = ""
            if (namespace, name) == (DEFAULT_COPY_SOURCE["namespace"], DEFAULT_COPY_SOURCE["name"]):
                hint = (" On IBM Cloud Kubernetes Service and Red Hat OpenShift on IBM Cloud, "
                        "run 'ibmcloud ks cluster pull-secret apply --cluster <cluster>' to "
                        "create it, or use ibmcloud.registry.iam_pull_secret.")
            raise KubeError("copy_from: source secret %s/%s does not exist.%s"
                            % (namespace, name, hint), status=404)
        raise
    return decode_secret(secret.get("type"), secret.get("data"), "copy_from source Secret %s/%s" % (namespace, name))
