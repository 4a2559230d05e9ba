# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the OpenShift modules do, step by step: validate, detect, read, plan, write, report.

Each ``run_*`` function takes the AnsibleModule, does the whole task and exits it.
The pure plans live in ``plan``, reads and writes in ``client``; pull secrets and service account links reuse
``pull_secrets`` and ``service_accounts`` exactly as ``icr_pull_secret`` does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift import client as ocp_client
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift import plan as ocp
from ansible_collections.ibmcloud.registry.plugins.module_utils.common import results
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    DockerConfigError,
    build_dockerconfig,
    fingerprint,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    describe_target,
    get_kube_client,
    validate_kube_params,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import CONFLICT_RETRIES, map_bounded
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.runners import (
    common_errors,
    ensure_secret_and_links,
    fail_on_errors,
    secrets_diff,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.service_accounts import (
    ensure_links,
    missing_secrets,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import (
    namespace_name_error,
    object_name_error,
    require_namespaces,
    resolve_namespaces,
)


# --- shared steps --------------------------------------------------------------------

def _require_libraries(module, jmespath_needed=True):
    from ansible.module_utils.basic import missing_required_lib

    if jmespath_needed and not ocp.HAS_JMESPATH:
        module.fail_json(msg=missing_required_lib("jmespath"),
                         exception=str(ocp.JMESPATH_IMPORT_ERROR))


def _connect(module, task, needed_groups):
    """(client, OpenShiftAPI, groups, flavour); fails clearly when a group is missing.

    ``needed_groups`` is a list of API groups, or a function of the cluster's flavour
    returning one (what a task needs can depend on which OpenShift it meets).
    """
    client = get_kube_client(module)
    try:
        groups = client.api_groups()
    except KubeError as exc:
        module.fail_json(msg=str(exc))
    flavour = ocp_client.flavour_from_groups(groups)
    needed = needed_groups(flavour) if callable(needed_groups) else needed_groups
    problem = ocp_client.missing_api_message(task, groups, needed)
    if problem:
        module.fail_json(msg=problem, flavour=flavour)
    return client, ocp_client.OpenShiftAPI(client), groups, flavour


def _name_errors(option, value, what=None):
    if value is None:
        return []
    problem = object_name_error(value, what or option)
    return ["%s: %s" % (option, problem)] if problem else []


def _namespace_errors(option, value):
    if value is None:
        return []
    problem = namespace_name_error(value)
    return ["%s: %s" % (option, problem)] if problem else []


# --- ocp_registry_route --------------------------------------------------------------

def route_errors(params):
    errors = validate_kube_params(params)
    errors += _name_errors("name", params.get("name"), "route name")
    errors += _namespace_errors("namespace", params.get("namespace"))
    errors += _name_errors("service", params.get("service"), "service name")
    problem = ocp.target_port_error(params["target_port"])
    if problem:
        errors.append(problem)
    if params.get("hostname"):
        problem = ocp.host_error(params["hostname"])
        if problem:
            errors.append("hostname: %s" % problem)
    tls = dict((k, v) for k, v in (params.get("tls") or {}).items() if v is not None)
    if tls and params["termination"] == "passthrough":
        errors.append("tls certificates cannot be set with termination=passthrough (the "
                      "registry's own certificate is used end to end)")
    if tls.get("certificate") and not tls.get("key") or tls.get("key") and not tls.get("certificate"):
        errors.append("tls.certificate and tls.key must be given together")
    for option, value in tls.items():
        if "-----BEGIN" not in value:
            errors.append("tls.%s must be PEM content (use lookup('file', path)), not a file "
                          "name" % option)
    for key, value in (params.get("annotations") or {}).items():
        if not isinstance(value, str):
            errors.append("annotations: the value of %s must be a string" % key)
    if not 0 <= params["wait_timeout"] <= 3600:
        errors.append("wait_timeout must be between 0 and 3600 seconds")
    return errors


def run_ocp_registry_route(module):
    params = module.params
    fail_on_errors(module, route_errors(params))
    _require_libraries(module)
    client, api, _groups, flavour = _connect(module, "ocp_registry_route", ["route.openshift.io"])
    location = ocp_client.registry_location(flavour, params.get("namespace"), params.get("service"))
    namespace, service = location["namespace"], location["service"]
    name = params.get("name") or service
    annotations = dict(params.get("annotations") or {})
    annotations[ocp.BALANCE_ANNOTATION] = params["balance"]
    spec = ocp.route_spec(service, params["target_port"], params["termination"],
                          params.get("hostname"), params.get("tls"))
    result = dict(changed=False, flavour=flavour, name=name, namespace=namespace, service=service)
    try:
        svc = api.core_get("Service", service, namespace)
        if svc is None:
            module.fail_json(msg="Service %s not found in namespace %s: the internal registry is "
                             "not there (on OpenShift 4 the image registry operator's "
                             "managementState must be Managed; on 3.11 the registry is "
                             "docker-registry in default)" % (service, namespace), **result)
        problem = ocp.service_port_error(svc, params["target_port"], namespace, service)
        if problem:
            module.fail_json(msg=problem, **result)
        action, before, after = api.ensure(
            ocp.ROUTE_API, "Route", name, namespace,
            lambda obj: ocp.plan_route(obj, name, namespace, spec, annotations),
            check_mode=module.check_mode)
    except (KubeError, ocp.OpenShiftError) as exc:
        module.fail_json(msg=ocp.custom_host_hint(str(exc)), **result)

    past = {"create": "created", "update": "updated", "unchanged": "unchanged"}
    # Not a top-level "action": the json callbacks overwrite that with the module name.
    result.update(changed=action != "unchanged",
                  result=dict(namespace=namespace, name=name, action=past[action]))
    state, spec_host, detail = ocp.route_admission(after or {})
    host, router = (spec_host, detail.get("router")) if state == "admitted" else (None, None)
    if host is None and not module.check_mode and params["wait"]:
        try:
            host, router, after = ocp_client.wait_for_admission(api, name, namespace,
                                                                params["wait_timeout"], first=after)
        except (KubeError, ocp.OpenShiftError) as exc:
            module.fail_json(msg=str(exc), **result)
    if result["changed"]:
        result["diff"] = {"before": ocp.route_view(before, annotations, compare_to=after) or {},
                          "after": ocp.route_view(after, annotations, compare_to=before) or {}}
    result.update(admitted=host is not None, router=router,
                  host=host or ocp.dig(after, "spec", "host") or params.get("hostname"))
    module.exit_json(**result)


# --- ocp_registry_config -------------------------------------------------------------

EMPTY_DIR_WARNING = ("The internal registry stores images in the emptyDir of the worker node "
                     "where its pod runs. This storage is not persistent: when the pod or the "
                     "worker node restarts, every image in the registry is deleted and cannot "
                     "be recovered.")


REMOVED_WARNING = ("management_state Removed: the image registry operator deletes the internal "
                   "registry and, because its storage is Managed, the storage too (the PVC or "
                   "bucket with every image in it). Images cannot be recovered afterwards.")


def registry_config_errors(params):
    errors = validate_kube_params(params)
    if params.get("storage") == "emptyDir" and not params["allow_non_persistent_storage"]:
        errors.append("storage=emptyDir is not persistent: images are lost when the registry "
                      "pod or its worker node restarts. Set allow_non_persistent_storage: true "
                      "to confirm")
    if params.get("pvc_claim") is not None and params.get("storage") != "pvc":
        errors.append("pvc_claim is only used with storage=pvc")
    errors += _name_errors("pvc_claim", params.get("pvc_claim"), "PVC name")
    return errors


def run_ocp_registry_config(module):
    params = module.params
    fail_on_errors(module, registry_config_errors(params))
    _require_libraries(module)
    changing = [key for key in ("storage", "management_state", "default_route")
                if params.get(key) is not None]

    def needed(flavour):
        # OpenShift 3.11 has no operator: reading reports that, changing fails.
        if flavour == ocp_client.KUBERNETES or (changing and flavour == ocp_client.OPENSHIFT_3):
            return ["imageregistry.operator.openshift.io"]
        return []

    client, api, groups, flavour = _connect(module, "ocp_registry_config", needed)
    location = ocp_client.registry_location(flavour)
    result = dict(changed=False, flavour=flavour)

    def plan(config):
        if config is None:
            raise ocp.OpenShiftError(
                "configs.imageregistry.operator.openshift.io/cluster does not exist: the image "
                "registry operator creates it when it starts; check the operator in "
                "openshift-image-registry")
        patch = ocp.registry_config_patch(config, params.get("storage"), params.get("pvc_claim"),
                                          params.get("management_state"),
                                          params.get("default_route"))
        return ("update", patch) if patch else ("unchanged", None)

    before_config = {}
    try:
        after = None
        if flavour == ocp_client.OPENSHIFT_4:
            action, before, after = api.ensure(ocp.REGISTRY_OPERATOR_API, "Config",
                                               ocp.REGISTRY_CONFIG_NAME, None, plan,
                                               check_mode=module.check_mode)
            before_config["config"] = before
            result.update(changed=action != "unchanged",
                          result=dict(name=ocp.REGISTRY_CONFIG_NAME,
                                      action="updated" if action == "update" else "unchanged"),
                          config=ocp.registry_config_view(after),
                          storage=ocp.storage_summary(after))
            if result["changed"]:
                result["diff"] = {"before": ocp.registry_config_view(before),
                                  "after": ocp.registry_config_view(after)}
        else:
            result.update(result=dict(name=None, action="unchanged"), config=None, storage=None)
        pvc = api.core_get("PersistentVolumeClaim", ocp_client.pvc_claim_name(after, flavour),
                           location["namespace"])
        result["volume"] = ocp.volume_details(pvc)
        result["default_route_host"] = None
        if after is not None and ocp.dig(after, "spec", "defaultRoute") \
                and "route.openshift.io" in groups:
            route = api.get(ocp.ROUTE_API, "Route", ocp.DEFAULT_ROUTE_NAME, location["namespace"])
            result["default_route_host"] = ocp.admitted_host(route)
    except (KubeError, ocp.OpenShiftError) as exc:
        module.fail_json(msg=str(exc), **result)

    if params.get("storage") == "emptyDir":
        module.warn(EMPTY_DIR_WARNING)
    if ocp.removes_managed_storage(before_config.get("config"), params.get("management_state")):
        module.warn(REMOVED_WARNING)
    state = ocp.dig(after or {}, "spec", "managementState")
    if result["changed"] and state == "Unmanaged":
        module.warn("managementState is Unmanaged: the image registry operator does not apply "
                    "this change until it is Managed (set management_state: Managed)")
    module.exit_json(**result)


# --- ocp_internal_pull_secret --------------------------------------------------------

def internal_pull_secret_errors(params):
    errors = common_errors(params)
    errors += _name_errors("name", params["name"])
    errors += _namespace_errors("source_namespace", params["source_namespace"])
    errors += _name_errors("source_service_account", params["source_service_account"],
                           "service account")
    errors += _name_errors("route_name", params.get("route_name"), "route name")
    errors += _namespace_errors("route_namespace", params.get("route_namespace"))
    if params.get("registry_host"):
        problem = ocp.host_error(params["registry_host"])
        if problem:
            errors.append("registry_host: %s" % problem)
        if params.get("route_name") or params.get("route_namespace"):
            errors.append("registry_host and route_name/route_namespace are mutually exclusive")
    if params.get("registry_port") is not None and not 0 < params["registry_port"] < 65536:
        errors.append("registry_port must be between 1 and 65535")
    return errors


def _route_host(api, flavour, params):
    location = ocp_client.registry_location(flavour, params.get("route_namespace"))
    name = params.get("route_name") or location["service"]
    route = api.get(ocp.ROUTE_API, "Route", name, location["namespace"])
    if route is None:
        raise ocp.OpenShiftError(
            "Route %s not found in namespace %s: create it first (ibmcloud.registry."
            "ocp_registry_route) or set registry_host" % (name, location["namespace"]))
    host = ocp.admitted_host(route) or ocp.dig(route, "spec", "host")
    if not host:
        raise ocp.OpenShiftError("Route %s/%s has no host yet: no router has admitted it"
                                 % (location["namespace"], name))
    return host, {"route": "%s/%s" % (location["namespace"], name)}


def _source_secret(client, api, namespace, sa_name):
    """The ``<sa>-dockercfg-*`` secret (dict) of a service account."""
    account = api.core_get("ServiceAccount", sa_name, namespace)
    if account is None:
        raise ocp.OpenShiftError("ServiceAccount %s not found in namespace %s"
                                 % (sa_name, namespace))
    secret_name = ocp.dockercfg_secret_name(account, sa_name)
    if secret_name is None:
        listing = client.call(describe_target("list", "Secret", namespace),
                              client.core.list_namespaced_secret, namespace,
                              field_selector="type=kubernetes.io/dockercfg")
        found = ocp.pick_dockercfg_secret(
            [client.api_client.sanitize_for_serialization(s) for s in listing.items], sa_name)
        if found is None:
            raise ocp.OpenShiftError(
                "ServiceAccount %s/%s has no %s%s* secret: OpenShift creates one per service "
                "account while the internal registry is enabled" % (
                    namespace, sa_name, sa_name, ocp.DOCKERCFG_INFIX))
        return found
    secret = api.core_get("Secret", secret_name, namespace)
    if secret is None:
        raise ocp.OpenShiftError("ServiceAccount %s/%s references secret %s, which does not "
                                 "exist (yet)" % (namespace, sa_name, secret_name))
    return secret


BOUND_TOKEN_REFUSAL = (
    "%(where)s holds a bound service account token (OpenShift 4.16 and later): it expires "
    "after about an hour and OpenShift renews only its own secret, so copies in other projects "
    "stop working. Let the other projects pull through a system:image-puller RoleBinding "
    "instead (ibmcloud.registry.ocp_image_puller), or set allow_expiring_token: true to copy "
    "it anyway and rerun the task before the token expires; nothing was written")
BOUND_TOKEN_WARNING = (
    "The copied token is a bound token that expires in about an hour (allow_expiring_token is "
    "set): rerun this task before then, or use ibmcloud.registry.ocp_image_puller")
LEGACY_TOKEN_WARNING = (
    "The copied token is a legacy service account token that does not expire: every project "
    "that gets the copy pulls with the source service account's rights until the token is "
    "revoked. ibmcloud.registry.ocp_image_puller grants pulls without copying credentials")


def run_ocp_internal_pull_secret(module):
    params = module.params
    fail_on_errors(module, internal_pull_secret_errors(params))
    state = params["state"]
    needs_route = state == "present" and not params.get("registry_host")
    _require_libraries(module, jmespath_needed=needs_route)

    def needed(flavour):
        groups = ["route.openshift.io"] if needs_route else []
        if flavour == ocp_client.KUBERNETES:  # no internal registry at all
            groups.append("image.openshift.io")
        return groups

    client, api, _groups, flavour = _connect(module, "ocp_internal_pull_secret", needed)

    name = params["name"]
    desired, extra = None, dict(name=name, flavour=flavour)
    try:
        if state == "present":
            if params.get("registry_host"):
                host, origin = params["registry_host"], {"route": None}
            else:
                host, origin = _route_host(api, flavour, params)
            server = ocp.registry_server(host, params.get("registry_port"))
            secret = _source_secret(client, api, params["source_namespace"],
                                    params["source_service_account"])
            where = "Secret %s/%s" % (params["source_namespace"], secret["metadata"]["name"])
            username, password, shape = ocp.internal_credentials(secret, where)
            token = ocp.token_kind(secret, password)
            if token == "bound" and not params["allow_expiring_token"]:
                raise ocp.OpenShiftError(BOUND_TOKEN_REFUSAL % {"where": where})
            desired = build_dockerconfig([server], username, password, params.get("email"))
            extra.update(server=server, fingerprint=fingerprint(desired), source=dict(
                origin, namespace=params["source_namespace"],
                service_account=params["source_service_account"],
                secret=secret["metadata"]["name"], shape=shape, token=token))
        namespaces = resolve_namespaces(client, params)
    except (KubeError, DockerConfigError, ocp.OpenShiftError) as exc:
        module.fail_json(msg=str(exc), **extra)
    token = (extra.get("source") or {}).get("token")
    if token == "bound":
        module.warn(BOUND_TOKEN_WARNING)
    elif token == "legacy":
        module.warn(LEGACY_TOKEN_WARNING)

    try:
        secret_items, secret_diff, link_items, link_diff = ensure_secret_and_links(
            client, namespaces, name, desired, state, params["force"], params["service_accounts"],
            params["service_account_timeout"], module.check_mode, params["parallelism"], want_diff=module._diff)
    except KubeError as exc:
        # Only the read before the writes raises; writes fail per namespace.
        module.fail_json(msg="%s; nothing was written" % exc, **extra)
    sections = [("Secret %s" % name, secret_items)]
    if params["service_accounts"]:
        extra["service_accounts"] = link_items
        sections.append(("Linking secret %s to service accounts" % name, link_items))
    if module._diff:
        extra["diff"] = secrets_diff(secret_diff, link_diff)
    results.exit_with(module, sections, **extra)


# --- ocp_image_puller ----------------------------------------------------------------

def image_puller_errors(params):
    errors = common_errors(params)
    if not params["image_namespaces"]:
        errors.append("image_namespaces must name at least one project that holds the images")
    for namespace in params["image_namespaces"] or []:
        errors += _namespace_errors("image_namespaces", namespace)
    return errors


def _binding_error(exc):
    """The API server's text, plus what is missing when RBAC refused an escalation."""
    text = str(exc)
    if exc.status == 403 and "not currently held" in text:
        text += ('; the identity cannot bind resource "clusterroles" in API group '
                 '"rbac.authorization.k8s.io" named %s: grant it verb bind on that ClusterRole'
                 % ocp.IMAGE_PULLER_ROLE)
    return text


def _apply_image_puller(api, step, params):
    """Write one step, replanning from a fresh read on 409 (changed or created meanwhile)."""
    for _attempt in range(CONFLICT_RETRIES):
        if step["write"] is None:
            return step
        try:
            ocp_client.write_role_binding(api, step)
            return step
        except KubeError as exc:
            if exc.status != 409:
                return dict(step, action="failed", error=_binding_error(exc))
        try:
            fresh = ocp_client.read_role_binding(api, step["namespace"], step["name"])
        except KubeError as exc:
            return dict(step, action="failed", error=str(exc))
        step = ocp.plan_image_puller(step["namespace"], step["consumer"], fresh,
                                     params["service_accounts"], params["state"], params["force"])
    return dict(step, action="failed", error="RoleBinding %s/%s kept changing; gave up after %d "
                "conflicts" % (step["namespace"], step["name"], CONFLICT_RETRIES))


def run_ocp_image_puller(module):
    params = module.params
    fail_on_errors(module, image_puller_errors(params))
    client, api, _groups, flavour = _connect(module, "ocp_image_puller", ["image.openshift.io"])
    images = params["image_namespaces"]
    extra = dict(flavour=flavour, role=ocp.IMAGE_PULLER_ROLE)
    try:
        consumers = resolve_namespaces(client, params)
        listed = map_bounded(lambda ns: ocp_client.list_role_bindings(api, ns), images,
                             params["parallelism"])
    except KubeError as exc:
        module.fail_json(msg="%s; nothing was written" % exc, **extra)
    steps = ocp.plan_image_pullers(dict(zip(images, listed)), images, consumers,
                                   params["service_accounts"], params["state"], params["force"])
    if not module.check_mode:
        steps = map_bounded(lambda step: _apply_image_puller(api, step, params), steps,
                            params["parallelism"])
    items, before, after = [], {}, {}
    for step in steps:
        view = step["after"] if step["action"] != "failed" else step["before"]
        items.append(results.item(step["namespace"], step["name"], step["action"],
                                  step.get("error"), consumer=step["consumer"],
                                  subjects=(view or {}).get("subjects") or []))
        if step["action"] in results.CHANGING:
            key = "%s/%s" % (step["namespace"], step["name"])
            before[key], after[key] = step["before"], step["after"]
    results.exit_with(module, [("Granting %s" % ocp.IMAGE_PULLER_ROLE, items)],
                      diff={"before": before, "after": after}, **extra)


# --- ocp_image_stream_tag ------------------------------------------------------------

def image_stream_tag_plan(params):
    """(errors, streams): streams is an ordered list of ((namespace, stream), [(image, tag)])."""
    errors = validate_kube_params(params)
    errors += _namespace_errors("namespace", params.get("namespace"))
    if not 0 <= params["wait_timeout"] <= 3600:
        errors.append("wait_timeout must be between 0 and 3600 seconds")
    if not params["images"]:
        errors.append("images must name at least one image")
    streams, seen = {}, set()
    order = []
    for index, image in enumerate(params["images"] or []):
        label = "images[%d]" % index
        problem = ocp.source_error(image["source"])
        if problem:
            errors.append("%s: %s" % (label, problem))
        try:
            namespace, stream, tag = ocp.parse_target(image["target"], params.get("namespace"))
        except ocp.OpenShiftError as exc:
            errors.append("%s: %s" % (label, exc))
            continue
        key = (namespace, stream, tag)
        if key in seen:
            errors.append("%s: %s/%s:%s is the target of more than one image" % ((label,) + key))
            continue
        seen.add(key)

        def pick(option, image=image):
            return image[option] if image.get(option) is not None else params.get(option)

        wanted = ocp.desired_tag(tag, image["source"], pick("reference_policy"),
                                 pick("scheduled"), pick("insecure"), pick("import_mode"))
        if (namespace, stream) not in streams:
            streams[(namespace, stream)] = []
            order.append((namespace, stream))
        streams[(namespace, stream)].append((image, wanted))
    return errors, [(key, streams[key]) for key in order]


def _ensure_stream(api, namespace, stream, entries, existing, check_mode, params):
    """Plan and write one ImageStream; returns (actions by tag, before, after)."""
    wanted = [w for _image, w in entries]
    reimport = set(w["name"] for image, w in entries
                   if (image["reimport"] if image.get("reimport") is not None else params["reimport"]))
    seen = {}

    def plan(obj):
        actions, tags = ocp.plan_stream_tags(obj, wanted, reimport)
        seen["actions"] = actions
        if tags is None:
            return "unchanged", None
        if obj is None:
            return "create", ocp.image_stream_body(namespace, stream, tags)
        return "update", {"spec": {"tags": tags}}

    _action, before, after = api.ensure(ocp.IMAGE_API, "ImageStream", stream, namespace, plan,
                                        check_mode=check_mode, existing=existing, read_first=False)
    return seen["actions"], before, after


def run_ocp_image_stream_tag(module):
    params = module.params
    errors, streams = image_stream_tag_plan(params)
    fail_on_errors(module, errors)
    client, api, _groups, flavour = _connect(module, "ocp_image_stream_tag", ["image.openshift.io"])
    namespaces = sorted(set(namespace for (namespace, _stream), _entries in streams))
    try:
        require_namespaces(client, namespaces)
        listed = map_bounded(lambda ns: api.list(ocp.IMAGE_API, "ImageStream", ns), namespaces,
                             params["parallelism"])
    except (KubeError, ocp.OpenShiftError) as exc:
        module.fail_json(msg=str(exc), flavour=flavour)
    existing = {}
    for namespace, items in zip(namespaces, listed):
        for obj in items:
            existing[(namespace, obj["metadata"]["name"])] = obj

    def run(stream_entry):
        (namespace, stream), entries = stream_entry
        try:
            actions, before, after = _ensure_stream(api, namespace, stream, entries,
                                                    existing.get((namespace, stream)),
                                                    module.check_mode, params)
        except (KubeError, ocp.OpenShiftError) as exc:
            return [(image, wanted, "failed", str(exc), None, None, None) for image, wanted in entries]
        if params["wait"] and not module.check_mode:
            try:
                after = _wait_for_imports(api, namespace, stream, after, actions, params["wait_timeout"])
            except (KubeError, ocp.OpenShiftError) as exc:
                return [(image, wanted, "failed", str(exc), None, None, None) for image, wanted in entries]
        old = dict((t.get("name"), t) for t in ocp.dig(before or {}, "spec", "tags", default=[]))
        new = dict((t.get("name"), t) for t in ocp.dig(after or {}, "spec", "tags", default=[]))
        return [(image, wanted, actions[wanted["name"]], None, old.get(wanted["name"]),
                 new.get(wanted["name"]),
                 ocp.tag_import(after, wanted["name"], actions[wanted["name"]] != "unchanged"))
                for image, wanted in entries]

    items, diff_before, diff_after, not_imported = [], {}, {}, []
    keys = [key for key, _entries in streams]
    for (namespace, stream), outcome in zip(keys, map_bounded(run, streams, params["parallelism"])):
        for image, wanted, action, error, old, new, imported in outcome:
            label = "%s:%s" % (stream, wanted["name"])
            extra = {"import": imported} if imported is not None else {}
            items.append(results.item(namespace, label, action, error, source=image["source"],
                                      reference_policy=wanted["referencePolicy"]["type"],
                                      scheduled=wanted["importPolicy"]["scheduled"], **extra))
            if action in ("created", "updated"):
                key = "%s/%s" % (namespace, label)
                diff_before[key] = ocp.tag_view(old)
                diff_after[key] = ocp.tag_view(new or wanted)
            if params["wait"] and not module.check_mode and imported and imported["state"] != "imported":
                not_imported.append("%s/%s (%s)" % (namespace, label, _import_problem(imported,
                                                                                      params["wait_timeout"])))
    diff = {"before": diff_before, "after": diff_after}
    if not_imported:
        module.fail_json(msg="Spec tags written, but not imported: %s" % "; ".join(not_imported),
                         changed=results.any_changed(items), results=items, counts=results.count(items),
                         diff=diff, flavour=flavour)
    results.exit_with(module, [("Image stream tags", items)], diff=diff, flavour=flavour)


def _import_problem(imported, timeout):
    if imported["state"] == "failed":
        return "%s: %s" % (imported.get("reason") or "import failed", imported.get("message") or "")
    return "no import result within %ss; check the image stream's status.tags" % timeout


def _wait_for_imports(api, namespace, stream, after, actions, timeout, poll=0.5):
    """Re-read the stream until every tag of this call has an import result (or time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        states = [ocp.tag_import(after, name, action != "unchanged")["state"] for name, action in actions.items()]
        if "pending" not in states or time.monotonic() >= deadline:
            return after
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        after = api.get(ocp.IMAGE_API, "ImageStream", stream, namespace) or after


# --- ocp_build_secret ----------------------------------------------------------------

def build_secret_errors(params):
    errors = validate_kube_params(params)
    errors += _namespace_errors("namespace", params["namespace"])
    if not params.get("push_secret") and not params.get("pull_secret"):
        errors.append("one of push_secret or pull_secret is required")
    errors += _name_errors("push_secret", params.get("push_secret"), "secret")
    errors += _name_errors("pull_secret", params.get("pull_secret"), "secret")
    errors += _name_errors("service_account", params["service_account"], "service account")
    for name in params["build_configs"]:
        errors += _name_errors("build_configs", name, "BuildConfig name")
    if len(set(params["build_configs"])) != len(params["build_configs"]):
        errors.append("build_configs names a BuildConfig more than once")
    if params["link_service_account"] and not params["link_for"]:
        errors.append("link_for must include pull, mount or both")
    if not params["build_configs"] and not params["link_service_account"]:
        errors.append("nothing to do: name build_configs or set link_service_account")
    if params.get("service_account_timeout") is not None \
            and not 0 <= params["service_account_timeout"] <= 3600:
        errors.append("service_account_timeout must be between 0 and 3600 seconds")
    return errors


def _ensure_build_config(api, namespace, name, existing, params, check_mode):
    def plan(obj):
        if obj is None:
            raise ocp.OpenShiftError("BuildConfig %s not found in namespace %s" % (name, namespace))
        patch = ocp.build_config_patch(obj, params.get("push_secret"), params.get("pull_secret"),
                                       params["state"])
        return ("update", patch) if patch else ("unchanged", None)

    return api.ensure(ocp.BUILD_API, "BuildConfig", name, namespace, plan, check_mode=check_mode,
                      existing=existing, read_first=False)


def run_ocp_build_secret(module):
    params = module.params
    fail_on_errors(module, build_secret_errors(params))
    client, api, _groups, flavour = _connect(module, "ocp_build_secret", ["build.openshift.io"])
    namespace = params["namespace"]
    secrets = [s for s in (params.get("push_secret"), params.get("pull_secret")) if s]
    secrets = [s for index, s in enumerate(secrets) if s not in secrets[:index]]
    extra = dict(flavour=flavour, namespace=namespace)

    missing = []
    try:
        if params["state"] == "present" and params["missing_secret"] != "ignore":
            missing = missing_secrets(client, secrets, [namespace]).get(namespace, [])
        listed = {}
        if params["build_configs"]:
            for obj in api.list(ocp.BUILD_API, "BuildConfig", namespace):
                listed[obj["metadata"]["name"]] = obj
    except (KubeError, ocp.OpenShiftError) as exc:
        module.fail_json(msg=str(exc), **extra)
    if missing:
        text = ("secret(s) %s do not exist in namespace %s; builds would fail to push or pull"
                % (", ".join(missing), namespace))
        if params["missing_secret"] == "fail":
            module.fail_json(msg=text + "; nothing was written", **extra)
        module.warn(text)

    def run(name):
        if name not in listed:
            return results.item(namespace, name, "failed", "BuildConfig %s not found in namespace "
                                "%s" % (name, namespace)), None
        try:
            action, before, after = _ensure_build_config(api, namespace, name, listed[name],
                                                         params, module.check_mode)
        except (KubeError, ocp.OpenShiftError) as exc:
            return results.item(namespace, name, "failed", str(exc)), None
        view = ocp.build_secrets_view(after)
        done = {"create": "created", "update": "updated"}.get(action, action)
        return results.item(namespace, name, done, **view), (before, after)

    bc_items, before, after = [], {"build_configs": {}}, {"build_configs": {}}
    for item, detail in map_bounded(run, params["build_configs"], params["parallelism"]):
        bc_items.append(item)
        if detail and item["action"] == "updated":
            before["build_configs"][item["name"]] = ocp.build_secrets_view(detail[0])
            after["build_configs"][item["name"]] = ocp.build_secrets_view(detail[1])
    sections = [("Build secrets", bc_items)]
    if params["link_service_account"]:
        link_items, link_diff = ensure_links(
            client, [namespace], [params["service_account"]], secrets, params["link_for"],
            params["state"], module.check_mode, params["service_account_timeout"],
            params["parallelism"])
        extra["service_accounts"] = link_items
        what = "Linking %s to service account %s" % (", ".join(secrets), params["service_account"])
        sections.append((what, link_items))
        before["service_accounts"], after["service_accounts"] = link_diff["before"], link_diff["after"]
    extra["missing_secrets"] = missing
    results.exit_with(module, sections, diff={"before": before, "after": after}, **extra)
