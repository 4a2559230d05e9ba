# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenShift on top of the one client layer: what the cluster is, and pure plans.

- Flavour detection from API discovery (OpenShift 4, OpenShift 3.11, or plain
  Kubernetes) and a clear error when a task needs an API group the cluster lacks.
- :class:`OpenShiftAPI`: reads and conditional merge patches of OpenShift objects
  through the ``openshift`` package's dynamic client, every request through
  :meth:`KubeClient.call` (bounded retries, messages naming the object).
- Pure desired-state and compare functions for the internal registry's Route, the
  image registry operator's ``Config``, ImageStream spec tags and BuildConfig
  secrets. Each returns the JSON merge patch that makes the object right (empty
  when it already is), so a rerun writes nothing and check mode predicts exactly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import re
import time

from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    DockerConfigError,
    credentials,
    decode_secret,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    describe_target,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.common.redaction import REDACTED
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.plan import (
    CONFLICT_RETRIES,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MERGE_PATCH,
)

try:
    import jmespath

    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the runners
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = exc


ROUTE_API = "route.openshift.io/v1"
IMAGE_API = "image.openshift.io/v1"
BUILD_API = "build.openshift.io/v1"
REGISTRY_OPERATOR_API = "imageregistry.operator.openshift.io/v1"

OPENSHIFT_4 = "openshift4"
OPENSHIFT_3 = "openshift3"
KUBERNETES = "kubernetes"
FLAVOUR_NAMES = {
    OPENSHIFT_4: "OpenShift 4",
    OPENSHIFT_3: "OpenShift 3.11",
    KUBERNETES: "plain Kubernetes",
}
# Groups only OpenShift 4 serves (its operators' configuration APIs).
OPENSHIFT_4_GROUPS = ("config.openshift.io", "imageregistry.operator.openshift.io",
                      "operator.openshift.io")
# Groups both OpenShift 3.11 and 4 serve; any of them means "this is OpenShift".
OPENSHIFT_GROUPS = ("route.openshift.io", "image.openshift.io", "build.openshift.io",
                    "apps.openshift.io", "project.openshift.io", "security.openshift.io")

# Where the internal registry lives, per flavour (facts: v4 and 3.11 layouts).
REGISTRY_LOCATIONS = {
    OPENSHIFT_4: {"namespace": "openshift-image-registry", "service": "image-registry",
                  "target_port": "5000-tcp", "pvc": "image-registry-storage"},
    OPENSHIFT_3: {"namespace": "default", "service": "docker-registry",
                  "target_port": "5000-tcp", "pvc": "registry-backing"},
}
REGISTRY_CONFIG_NAME = "cluster"
DEFAULT_ROUTE_NAME = "default-route"
BALANCE_ANNOTATION = "haproxy.router.openshift.io/balance"


class OpenShiftError(Exception):
    """A task that cannot be done; the message says why and what to do."""


# --- what the cluster is -------------------------------------------------------------

def flavour_from_groups(groups):
    """OPENSHIFT_4, OPENSHIFT_3 or KUBERNETES from the served API group names."""
    groups = set(groups or ())
    if groups.intersection(OPENSHIFT_4_GROUPS):
        return OPENSHIFT_4
    if groups.intersection(OPENSHIFT_GROUPS):
        return OPENSHIFT_3
    return KUBERNETES


def group_of(api_version):
    return api_version.split("/")[0] if "/" in api_version else ""


def missing_api_message(task, groups, needed):
    """Why ``task`` cannot run on a cluster serving ``groups``, or None when it can."""
    groups = set(groups or ())
    missing = [group for group in needed if group not in groups]
    if not missing:
        return None
    flavour = flavour_from_groups(groups)
    if flavour == KUBERNETES:
        what = ("the cluster is plain Kubernetes, not OpenShift: API discovery lists none "
                "of the *.openshift.io groups. Point the task at an OpenShift cluster "
                "(kubeconfig/context) or leave it out for this cluster")
    elif flavour == OPENSHIFT_3 and "imageregistry.operator.openshift.io" in missing:
        what = ("the cluster is OpenShift 3.11, which has no image registry operator; "
                "its registry is the docker-registry deployment in the default project")
    else:
        what = "the cluster (%s) does not serve %s" % (
            FLAVOUR_NAMES[flavour], "it" if len(missing) == 1 else "them")
    return "%s needs the OpenShift API group%s %s, but %s." % (
        task, "" if len(missing) == 1 else "s", ", ".join(missing), what)


def registry_location(flavour, namespace=None, service=None):
    """The internal registry's namespace, service, target port and PVC name."""
    location = dict(REGISTRY_LOCATIONS.get(flavour) or REGISTRY_LOCATIONS[OPENSHIFT_4])
    if namespace:
        location["namespace"] = namespace
    if service:
        location["service"] = service
    return location


# --- generic pure helpers ------------------------------------------------------------

def apply_merge_patch(document, patch):
    """RFC 7386: ``document`` with ``patch`` applied (maps merge, null deletes, rest replaces)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(document) if isinstance(document, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def dig(document, *path, **kwargs):
    """document[path[0]][path[1]]...; ``default`` when any step is missing or null."""
    value = document
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return kwargs.get("default")
        value = value[key]
    return value


def pem_fingerprint(text):
    """``sha256:<hex>`` of a certificate text, to show it in diffs without the whole PEM."""
    if text is None:
        return None
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the OpenShift API ---------------------------------------------------------------

class OpenShiftAPI:
    """Reads and conditional writes of OpenShift objects as plain dicts.

    Resources come from the ``openshift`` package's DynamicClient (discovery is lazy
    and cached), built on the KubeClient's ApiClient so connection options are the
    same. Every request goes through :meth:`KubeClient.call`.
    """

    def __init__(self, client):
        self.client = client
        self._resources = {}

    def resource(self, api_version, kind):
        key = (api_version, kind)
        if key not in self._resources:
            try:
                self._resources[key] = self.client.resource(api_version, kind)
            except KubeError as exc:
                if exc.status != 404:
                    raise
                raise OpenShiftError("The cluster does not serve %s %s (API group %s)"
                                     % (api_version, kind, group_of(api_version)))
        return self._resources[key]

    def get(self, api_version, kind, name, namespace=None):
        """The object as a dict, or None when it does not exist."""
        resource = self.resource(api_version, kind)
        try:
            obj = self.client.call(describe_target("get", kind, namespace, name), resource.get,
                                   name=name, namespace=namespace)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return obj.to_dict()

    def list(self, api_version, kind, namespace=None):
        resource = self.resource(api_version, kind)
        listing = self.client.call(describe_target("list", kind, namespace), resource.get,
                                   namespace=namespace)
        return listing.to_dict().get("items") or []

    def create(self, api_version, kind, body, namespace=None):
        resource = self.resource(api_version, kind)
        name = body["metadata"]["name"]
        return self.client.call(describe_target("create", kind, namespace, name), resource.create,
                                body=body, namespace=namespace).to_dict()

    def merge_patch(self, api_version, kind, name, patch, namespace=None):
        resource = self.resource(api_version, kind)
        return self.client.call(describe_target("patch", kind, namespace, name), resource.patch,
                                body=patch, name=name, namespace=namespace,
                                content_type=MERGE_PATCH).to_dict()

    def core_get(self, kind, name, namespace):
        """A core object (Service, PersistentVolumeClaim, Secret, ServiceAccount) as a dict."""
        method = {
            "Service": self.client.core.read_namespaced_service,
            "PersistentVolumeClaim": self.client.core.read_namespaced_persistent_volume_claim,
            "Secret": self.client.core.read_namespaced_secret,
            "ServiceAccount": self.client.core.read_namespaced_service_account,
        }[kind]
        try:
            obj = self.client.call(describe_target("get", kind, namespace, name), method, name,
                                   namespace)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return self.client.api_client.sanitize_for_serialization(obj)

    def ensure(self, api_version, kind, name, namespace, plan, check_mode=False, existing=None,
               read_first=True):
        """Read, plan, and unless check_mode write, retrying on 409 with a fresh read.

        ``plan(obj)`` takes the current object (dict or None) and returns
        ``(action, body)``: ``("create", full object)``, ``("update", merge patch)``
        or ``("unchanged", None)``; it may raise OpenShiftError. Updates carry the
        object's ``metadata.resourceVersion``. Returns ``(action, before, after)``
        where ``after`` is what the server returned (or, in check mode, the
        predicted object).
        """
        obj = self.get(api_version, kind, name, namespace) if read_first else existing
        for _attempt in range(CONFLICT_RETRIES):
            action, body = plan(obj)
            if action == "unchanged":
                return action, obj, obj
            if check_mode:
                predicted = body if action == "create" else apply_merge_patch(obj, body)
                return action, obj, predicted
            try:
                if action == "create":
                    return "create", None, self.create(api_version, kind, body, namespace)
                patch = apply_merge_patch(body, {"metadata": {
                    "resourceVersion": obj["metadata"]["resourceVersion"]}})
                return "update", obj, self.merge_patch(api_version, kind, name, patch, namespace)
            except KubeError as exc:
                if exc.status != 409:
                    raise
            obj = self.get(api_version, kind, name, namespace)
        raise OpenShiftError("%s %s kept changing under us; gave up after %d conflicts"
                             % (kind, "%s/%s" % (namespace, name) if namespace else name,
                                CONFLICT_RETRIES))


# --- Route for the internal registry -------------------------------------------------

TLS_FIELDS = (("certificate", "certificate"), ("key", "key"), ("ca_certificate", "caCertificate"),
              ("destination_ca_certificate", "destinationCACertificate"))
_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def host_error(host):
    """Why ``host`` is not a usable route host name, or None."""
    if not isinstance(host, str) or not _HOST.match(host):
        return ("%r is not a valid host name (lowercase DNS name such as "
                "registry.apps.example.com, no scheme or port)" % (host,))
    return None


def target_port_value(text):
    """A target port as the Route holds it: an int for digits, else the port name."""
    text = str(text).strip()
    return int(text) if text.isdigit() else text


def target_port_error(text):
    value = target_port_value(text)
    if isinstance(value, int):
        return None if 0 < value < 65536 else "target_port %s is not a port number" % value
    if len(value) > 15 or not _PORT_NAME.match(value):
        return "target_port %r is neither a port number nor a port name" % value
    return None


def route_spec(service, target_port, termination="reencrypt", host=None, tls=None):
    """The spec ``oc create route <termination> --service=<service>`` gives, plus options.

    ``tls`` holds the certificate options (snake_case keys); only those given are set.
    """
    spec = {
        "to": {"kind": "Service", "name": service, "weight": 100},
        "port": {"targetPort": target_port_value(target_port)},
        "tls": {"termination": termination},
        "wildcardPolicy": "None",
    }
    for option, field in TLS_FIELDS:
        if (tls or {}).get(option) is not None:
            spec["tls"][field] = tls[option]
    if host:
        spec["host"] = host
    return spec


def route_body(name, namespace, spec, annotations, labels=None):
    metadata = {"name": name, "namespace": namespace,
                "labels": dict(labels or {}, **{MANAGED_BY_LABEL: MANAGED_BY_VALUE})}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": ROUTE_API, "kind": "Route", "metadata": metadata, "spec": spec}


def route_patch(existing, spec, annotations):
    """The merge patch that gives ``existing`` this intent; {} when it already has it.

    Only what the task manages is compared: the service, the target port, the TLS
    termination, the certificate fields that were given, the annotations that were
    given, and the host only when one was given. A host the router (or the API
    server) assigned is not a difference.
    """
    current = existing.get("spec") or {}
    patch = {}
    to = current.get("to") or {}
    if to.get("kind", "Service") != "Service" or to.get("name") != spec["to"]["name"]:
        patch["to"] = spec["to"]
    if str(dig(current, "port", "targetPort", default="")) != str(spec["port"]["targetPort"]):
        patch["port"] = {"targetPort": spec["port"]["targetPort"]}
    current_tls = current.get("tls") or {}
    tls = dict((field, value) for field, value in spec["tls"].items()
               if current_tls.get(field) != value)
    if spec["tls"]["termination"] == "passthrough":
        # A passthrough route must not carry certificates: the router rejects it.
        for _option, field in TLS_FIELDS:
            if current_tls.get(field) is not None:
                tls[field] = None
    if tls:
        patch["tls"] = tls
    if spec.get("host") and (current.get("host") or "").lower() != spec["host"].lower():
        patch["host"] = spec["host"]
    body = {}
    if patch:
        body["spec"] = patch
    current_annotations = dig(existing, "metadata", "annotations", default={})
    changed = dict((key, value) for key, value in (annotations or {}).items()
                   if current_annotations.get(key) != value)
    if changed:
        body["metadata"] = {"annotations": changed}
    return body


def plan_route(existing, name, namespace, spec, annotations, labels=None):
    """(action, body) for OpenShiftAPI.ensure."""
    if existing is None:
        return "create", route_body(name, namespace, spec, annotations, labels)
    patch = route_patch(existing, spec, annotations)
    return ("update", patch) if patch else ("unchanged", None)


def route_view(route, annotations=(), compare_to=None):
    """What the diff shows of a Route: managed fields, certificates as fingerprints, no key."""
    if route is None:
        return None
    spec = route.get("spec") or {}
    tls = spec.get("tls") or {}
    other_tls = dig(compare_to or {}, "spec", "tls", default={})
    shown_tls = {"termination": tls.get("termination")}
    for _option, field in TLS_FIELDS:
        if tls.get(field) is None:
            continue
        if field == "key":
            changed = compare_to is not None and other_tls.get("key") != tls["key"]
            shown_tls["key"] = REDACTED + (" (changed)" if changed else "")
        else:
            shown_tls[field] = pem_fingerprint(tls[field])
    current_annotations = dig(route, "metadata", "annotations", default={})
    return {
        "name": dig(route, "metadata", "name"),
        "namespace": dig(route, "metadata", "namespace"),
        "host": spec.get("host"),
        "service": dig(spec, "to", "name"),
        "target_port": dig(spec, "port", "targetPort"),
        "tls": shown_tls,
        "annotations": dict((key, current_annotations.get(key)) for key in sorted(annotations)),
    }


_ADMITTED_QUERY = ("status.ingress[?conditions[?type=='Admitted' && status=='True']]"
                   ".{host: host, router: routerName}")
_REJECTED_QUERY = ("status.ingress[?conditions[?type=='Admitted' && status=='False']]"
                   ".{host: host, router: routerName,"
                   " reason: conditions[?type=='Admitted'] | [0].reason,"
                   " message: conditions[?type=='Admitted'] | [0].message}")
_COMPILED = {}


def _query(expression, document):
    if expression not in _COMPILED:
        _COMPILED[expression] = jmespath.compile(expression)
    return _COMPILED[expression].search(document) or []


def route_admission(route):
    """(state, host, detail) of a Route as the routers report it in ``status.ingress``.

    ``state`` is ``admitted`` (a router admitted the route's current host),
    ``rejected`` (a router refused it; ``detail`` has router, reason and message) or
    ``pending`` (no router has answered for the current host yet). The host is the
    spec's; a router that admitted an older host does not count.
    """
    host = dig(route, "spec", "host") or ""
    admitted = _query(_ADMITTED_QUERY, route)
    rejected = _query(_REJECTED_QUERY, route)
    for entry in admitted:
        if host and (entry.get("host") or "").lower() == host.lower():
            return "admitted", host, entry
    for entry in rejected:
        if not host or (entry.get("host") or "").lower() == host.lower():
            return "rejected", host, entry
    return "pending", host, None


def admitted_host(route):
    """The admitted host of a Route (dict), or None."""
    if route is None:
        return None
    state, host, _detail = route_admission(route)
    return host if state == "admitted" else None


def wait_for_admission(api, name, namespace, timeout, first=None, poll=0.5, sleep=time.sleep,
                       clock=time.monotonic):
    """Poll the Route until a router admits its host; bounded by ``timeout`` seconds.

    ``first`` is an already read copy of the route (saves a GET when it is admitted).
    Returns (host, router, route). Raises OpenShiftError when a router rejects the route or
    time runs out; the message says which and what to check.
    """
    deadline = clock() + timeout
    route = first
    while True:
        if route is None:
            route = api.get(ROUTE_API, "Route", name, namespace)
            if route is None:
                raise OpenShiftError("Route %s/%s disappeared while waiting for a router to "
                                     "admit it" % (namespace, name))
        state, host, detail = route_admission(route)
        if state == "admitted":
            return host, detail.get("router"), route
        if state == "rejected":
            raise OpenShiftError(
                "Router %s rejected Route %s/%s for host %s: %s: %s" % (
                    detail.get("router"), namespace, name, detail.get("host") or host or "(none)",
                    detail.get("reason") or "no reason given", detail.get("message") or ""))
        if clock() >= deadline:
            raise OpenShiftError(
                "Route %s/%s was not admitted by a router within %ss (spec.host %s). Check that "
                "the cluster's router (ingress controller) runs and that the host is not "
                "claimed by another route; raise wait_timeout if routers are slow"
                % (namespace, name, timeout, host or "not assigned yet"))
        sleep(max(0.0, min(poll, deadline - clock())))
        route = None


def service_port_error(service, target_port, namespace, name):
    """Why the Route's target port matches no port of the Service, or None."""
    ports = dig(service, "spec", "ports", default=[])
    value = target_port_value(target_port)
    for port in ports:
        if isinstance(value, int):
            if value in (port.get("port"), port.get("targetPort")):
                return None
        elif value in (port.get("name"), port.get("targetPort")):
            return None
    shown = ", ".join("%s (%s)" % (p.get("name") or "unnamed", p.get("port")) for p in ports)
    return ("target_port %s matches no port of Service %s/%s (its ports: %s)"
            % (value, namespace, name, shown or "none"))


# --- image registry operator Config --------------------------------------------------

STORAGE_BACKENDS = ("emptyDir", "pvc", "s3", "gcs", "swift", "azure", "ibmcos", "oss")
PERSISTENT_BACKENDS = frozenset(STORAGE_BACKENDS) - frozenset(["emptyDir"])
MANAGEMENT_STATES = ("Managed", "Unmanaged", "Force", "Removed")


def storage_backends(spec):
    """The storage backends a Config spec configures (normally exactly one)."""
    storage = (spec or {}).get("storage") or {}
    return [name for name in STORAGE_BACKENDS if storage.get(name) is not None]


def storage_patch(spec, storage, pvc_claim=None):
    """Merge patch of ``spec.storage`` for the wanted backend, or {} if it is in place.

    Every other backend present is removed (set to null); keys that are not
    backends (such as ``managementState``) stay. For ``pvc`` without a claim name,
    any claim is fine (the operator creates and names it).
    """
    present = storage_backends(spec)
    others = dict((name, None) for name in present if name != storage)
    if storage == "emptyDir":
        if "emptyDir" in present:
            return others
        return dict(others, emptyDir={})
    current = dig(spec, "storage", "pvc")
    claim_ok = current is not None and (not pvc_claim or current.get("claim") == pvc_claim)
    if claim_ok:
        return others
    return dict(others, pvc={"claim": pvc_claim} if pvc_claim else {})


def registry_config_patch(config, storage=None, pvc_claim=None, management_state=None,
                          default_route=None):
    """The merge patch of the Config for the options given; {} when nothing differs."""
    spec = (config or {}).get("spec") or {}
    patch = {}
    if storage:
        storage_change = storage_patch(spec, storage, pvc_claim)
        if storage_change:
            patch["storage"] = storage_change
    if management_state and spec.get("managementState") != management_state:
        patch["managementState"] = management_state
    if default_route is not None and bool(spec.get("defaultRoute", False)) != default_route:
        patch["defaultRoute"] = default_route
    return {"spec": patch} if patch else {}


def registry_config_view(config):
    """What results and diffs show of the Config: state, storage backend(s), default route."""
    if config is None:
        return None
    spec = config.get("spec") or {}
    backends = storage_backends(spec)
    view = {
        "management_state": spec.get("managementState"),
        "storage": backends[0] if len(backends) == 1 else (backends or None),
        "default_route": bool(spec.get("defaultRoute", False)),
    }
    if "pvc" in backends:
        view["pvc_claim"] = dig(spec, "storage", "pvc", "claim")
    return view


def storage_summary(config):
    """{type, persistent} of the storage a Config uses."""
    backends = storage_backends((config or {}).get("spec"))
    kind = backends[0] if len(backends) == 1 else (None if not backends else "+".join(backends))
    persistent = None
    if backends:
        persistent = all(name in PERSISTENT_BACKENDS for name in backends)
    return {"type": kind, "persistent": persistent}


def pvc_claim_name(config, flavour):
    """The PVC backing the registry: the Config's pvc.claim, else the flavour's default."""
    claim = dig(config or {}, "spec", "storage", "pvc", "claim")
    return claim or registry_location(flavour)["pvc"]


def volume_details(pvc):
    """Size, class and state of a PVC (dict), what ``oc describe pvc`` shows.

    ``size`` is the capacity of the bound volume, or the request while Pending.
    """
    if pvc is None:
        return None
    spec = pvc.get("spec") or {}
    status = pvc.get("status") or {}
    annotations = dig(pvc, "metadata", "annotations", default={})
    requested = dig(spec, "resources", "requests", "storage")
    capacity = dig(status, "capacity", "storage")
    return {
        "name": dig(pvc, "metadata", "name"),
        "namespace": dig(pvc, "metadata", "namespace"),
        "phase": status.get("phase"),
        "storage_class": spec.get("storageClassName")
        or annotations.get("volume.beta.kubernetes.io/storage-class"),
        "size": capacity or requested,
        "requested": requested,
        "capacity": capacity,
        "access_modes": spec.get("accessModes") or [],
        "volume_name": spec.get("volumeName"),
    }


# --- internal registry credentials ---------------------------------------------------

DOCKERCFG_INFIX = "-dockercfg-"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
# The internal registry's in-cluster names, preferred when picking the entry to copy.
_INTERNAL_HINTS = ("image-registry.openshift-image-registry.svc",
                   "docker-registry.default.svc")


def dockercfg_secret_name(service_account, sa_name):
    """The ``<sa>-dockercfg-*`` secret a ServiceAccount (dict) references, or None.

    ``imagePullSecrets`` is searched first (every OpenShift version puts it there),
    then ``secrets`` (up to 4.15).
    """
    prefix = sa_name + DOCKERCFG_INFIX
    for field in ("imagePullSecrets", "secrets"):
        for ref in (service_account or {}).get(field) or []:
            if (ref.get("name") or "").startswith(prefix):
                return ref["name"]
    return None


def pick_dockercfg_secret(secrets, sa_name):
    """From listed dockercfg secrets (dicts), the newest one made for ``sa_name``."""
    prefix = sa_name + DOCKERCFG_INFIX
    mine = [s for s in secrets
            if dig(s, "metadata", "annotations", default={}).get(SA_NAME_ANNOTATION) == sa_name
            or (dig(s, "metadata", "name") or "").startswith(prefix)]
    if not mine:
        return None
    return sorted(mine, key=lambda s: (dig(s, "metadata", "creationTimestamp") or "",
                                       dig(s, "metadata", "name")))[-1]


def _server_rank(server):
    """Sort key: the registry's service name first, then its other in-cluster names."""
    if any(server.startswith(hint + ":") for hint in _INTERNAL_HINTS):
        return (0, server)
    if any(hint in server for hint in _INTERNAL_HINTS):
        return (1, server)
    return (2, server)


def internal_credentials(secret, where):
    """(username, password, shape) from a ``*-dockercfg-*`` secret (dict, base64 data).

    Both shapes: before OpenShift 4.16 each entry has ``username: serviceaccount``
    and the token as ``password``; from 4.16 an entry has only ``auth``
    (base64 of ``<token>:`` + a bound token). ``shape`` is ``username-password`` or
    ``auth-only``. Values never appear in error messages.
    """
    document = decode_secret(secret.get("type"), secret.get("data"), where)
    auths = document["auths"]
    if not auths:
        raise OpenShiftError("%s holds no registry entry" % where)
    entry = auths[sorted(auths, key=_server_rank)[0]]
    if not isinstance(entry, dict):
        raise OpenShiftError("%s: a registry entry is not a JSON object" % where)
    try:
        username, password = credentials(entry)
    except DockerConfigError as exc:
        raise DockerConfigError("%s: %s" % (where, exc))
    shape = "username-password" if entry.get("username") and entry.get("password") else "auth-only"
    return username, password, shape


def registry_server(host, port=None):
    return "%s:%d" % (host, port) if port else host


# --- ImageStream spec tags -----------------------------------------------------------

_STREAM_NAME = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# [registry[:port]/]path[:tag][@digest], as docker parses references.
_REFERENCE = re.compile(
    r"^((?P<registry>[A-Za-z0-9.-]+(:[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(@(?P<digest>[A-Za-z0-9]+:[A-Fa-f0-9]{32,}))?$"
)
REFERENCE_POLICIES = ("Local", "Source")
IMPORT_MODES = ("Legacy", "PreserveOriginal")


def source_error(source):
    """Why ``source`` is not a pullable image reference, or None."""
    if not isinstance(source, str) or not _REFERENCE.match(source):
        return ("source %r is not an image reference such as us.icr.io/namespace/image:tag "
                "or ...@sha256:<digest>" % (source,))
    return None


def parse_target(target, default_namespace):
    """(namespace, stream, tag) from ``[namespace/]stream[:tag]``; raises OpenShiftError."""
    if not isinstance(target, str) or not target:
        raise OpenShiftError("target must be a non-empty string like image:tag")
    namespace, sep, rest = target.rpartition("/")
    if not sep:
        namespace, rest = default_namespace, target
    stream, sep, tag = rest.partition(":")
    tag = tag if sep else "latest"
    if not namespace:
        raise OpenShiftError("target %r names no project and no namespace option is set" % target)
    if "/" in namespace or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", namespace) \
            or len(namespace) > 63:
        raise OpenShiftError("target %r: %r is not a valid project name" % (target, namespace))
    if not stream or len(stream) > 253 or not _STREAM_NAME.match(stream):
        raise OpenShiftError("target %r: %r is not a valid image stream name (lowercase "
                             "letters, digits, '.', '_' and '-')" % (target, stream))
    if not _TAG.match(tag):
        raise OpenShiftError("target %r: %r is not a valid tag" % (target, tag))
    return namespace, stream, tag


def desired_tag(tag, source, reference_policy="Local", scheduled=True, insecure=False,
                import_mode=None):
    """The spec tag ``oc tag SOURCE stream:tag --reference-policy=local --scheduled`` writes.

    ``importMode`` is sent only when asked for: servers before OpenShift 4.12 drop
    the field, and sending it there would look like a difference on every run.
    """
    import_policy = {"scheduled": bool(scheduled)}
    if insecure:
        import_policy["insecure"] = True
    if import_mode:
        import_policy["importMode"] = import_mode
    return {"name": tag, "from": {"kind": "DockerImage", "name": source},
            "importPolicy": import_policy, "referencePolicy": {"type": reference_policy}}


def tag_differs(current, wanted):
    """Whether a spec tag (dict) differs from the wanted one in what this task manages.

    Absent fields compare as their server defaults: not scheduled, not insecure,
    importMode Legacy, referencePolicy Source.
    """
    source = current.get("from") or {}
    if source.get("kind") != "DockerImage" or source.get("name") != wanted["from"]["name"] \
            or source.get("namespace"):
        return True
    if dig(current, "referencePolicy", "type", default="Source") != wanted["referencePolicy"]["type"]:
        return True
    policy = current.get("importPolicy") or {}
    want = wanted["importPolicy"]
    if bool(policy.get("scheduled", False)) != want["scheduled"]:
        return True
    if bool(policy.get("insecure", False)) != bool(want.get("insecure", False)):
        return True
    if "importMode" in want and policy.get("importMode", "Legacy") != want["importMode"]:
        return True
    return False


def _merged_tag(current, wanted):
    """The current tag with the managed fields replaced; generation dropped so the
    server assigns a new one and imports again."""
    tag = dict(current)
    tag.pop("generation", None)
    tag["from"] = wanted["from"]
    tag["referencePolicy"] = dict(current.get("referencePolicy") or {}, **wanted["referencePolicy"])
    policy = dict(current.get("importPolicy") or {}, **wanted["importPolicy"])
    if not wanted["importPolicy"].get("insecure"):
        policy.pop("insecure", None)
    tag["importPolicy"] = policy
    return tag


def plan_stream_tags(stream, wanted_tags):
    """(tag actions, new spec.tags or None) for one ImageStream (dict or None).

    ``wanted_tags`` is a list of desired_tag() dicts. Tags this call does not name
    stay as they are, in order; changed tags are replaced in place, new ones
    appended. spec.tags is a list, which a merge patch replaces whole, so the whole
    new list is returned (None when nothing changes).
    """
    current = dig(stream or {}, "spec", "tags", default=[])
    by_name = dict((tag.get("name"), tag) for tag in current)
    actions = {}
    replaced = {}
    for wanted in wanted_tags:
        existing = by_name.get(wanted["name"])
        if existing is None:
            actions[wanted["name"]] = "created"
        elif tag_differs(existing, wanted):
            actions[wanted["name"]] = "updated"
            replaced[wanted["name"]] = _merged_tag(existing, wanted)
        else:
            actions[wanted["name"]] = "unchanged"
    if all(action == "unchanged" for action in actions.values()):
        return actions, None
    tags = [replaced.get(tag.get("name"), tag) for tag in current]
    tags.extend(w for w in wanted_tags if actions[w["name"]] == "created")
    return actions, tags


def image_stream_body(namespace, name, tags, labels=None):
    return {"apiVersion": IMAGE_API, "kind": "ImageStream",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": dict(labels or {}, **{MANAGED_BY_LABEL: MANAGED_BY_VALUE})},
            "spec": {"tags": tags}}


def tag_view(tag):
    """What the diff shows of one spec tag."""
    if tag is None:
        return None
    policy = tag.get("importPolicy") or {}
    view = {"from": "%s %s" % (dig(tag, "from", "kind"), dig(tag, "from", "name")),
            "reference_policy": dig(tag, "referencePolicy", "type", default="Source"),
            "scheduled": bool(policy.get("scheduled", False))}
    if policy.get("insecure"):
        view["insecure"] = True
    if policy.get("importMode"):
        view["import_mode"] = policy["importMode"]
    return view


# --- BuildConfig push and pull secrets -----------------------------------------------

STRATEGY_FIELDS = {"Docker": "dockerStrategy", "Source": "sourceStrategy",
                   "Custom": "customStrategy"}


def strategy_field(build_config):
    """The strategy object's field name (dockerStrategy, ...) or None (JenkinsPipeline)."""
    strategy = dig(build_config, "spec", "strategy", default={})
    kind = strategy.get("type")
    if kind in STRATEGY_FIELDS:
        return STRATEGY_FIELDS[kind]
    if kind:
        return None
    for field in STRATEGY_FIELDS.values():
        if strategy.get(field) is not None:
            return field
    return None


def build_secrets_view(build_config):
    """{push_secret, pull_secret} names a BuildConfig (dict) uses."""
    field = strategy_field(build_config)
    return {
        "push_secret": dig(build_config, "spec", "output", "pushSecret", "name"),
        "pull_secret": dig(build_config, "spec", "strategy", field, "pullSecret", "name")
        if field else None,
    }


def build_config_patch(build_config, push_secret=None, pull_secret=None, state="present"):
    """The merge patch for ``oc set build-secret --push/--pull``; {} when nothing differs.

    With ``state=absent`` a field is cleared only when it names the given secret.
    Raises OpenShiftError for a pull secret on a strategy that has none.
    """
    current = build_secrets_view(build_config)
    spec = {}
    if push_secret:
        if state == "present" and current["push_secret"] != push_secret:
            spec["output"] = {"pushSecret": {"name": push_secret}}
        elif state == "absent" and current["push_secret"] == push_secret:
            spec["output"] = {"pushSecret": None}
    if pull_secret:
        field = strategy_field(build_config)
        if field is None:
            if state == "present":
                raise OpenShiftError(
                    "BuildConfig %s uses the %s strategy, which has no pull secret" % (
                        dig(build_config, "metadata", "name"),
                        dig(build_config, "spec", "strategy", "type", default="unknown")))
        elif state == "present" and current["pull_secret"] != pull_secret:
            spec["strategy"] = {field: {"pullSecret": {"name": pull_secret}}}
        elif state == "absent" and current["pull_secret"] == pull_secret:
            spec["strategy"] = {field: {"pullSecret": None}}
    return {"spec": spec} if spec else {}
