# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure plans of the OpenShift part, on plain dicts: no request is made here.

Desired-state and compare functions for the internal registry's Route, the image
registry operator's ``Config``, the internal registry's credentials, ImageStream spec
tags, BuildConfig secrets and the ``system:image-puller`` RoleBindings that let other
projects pull. Each returns what to write (a full object, or the JSON merge patch that
makes the object right, empty when it already is), so a rerun writes nothing and check
mode predicts exactly. ``client`` reads and writes; ``runners`` ties both to a module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import hashlib
import json
import re

from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import (
    DockerConfigError,
    credentials,
    decode_secret,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.common.redaction import REDACTED
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
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

REGISTRY_CONFIG_NAME = "cluster"
DEFAULT_ROUTE_NAME = "default-route"
BALANCE_ANNOTATION = "haproxy.router.openshift.io/balance"


class OpenShiftError(Exception):
    """A task that cannot be done; the message says why and what to do."""


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


# --- Route for the internal registry -------------------------------------------------

TLS_FIELDS = (("certificate", "certificate"), ("key", "key"), ("ca_certificate", "caCertificate"),
              ("destination_ca_certificate", "destinationCACertificate"))
_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def host_error(host):
    """Why ``host`` is not a usable route host name, or None.

    OpenShift's rules: a lowercase DNS-1123 subdomain, at most 253 characters, each label
    at most 63, no trailing dot.
    """
    if isinstance(host, str) and host.endswith(".") and len(host) > 1:
        return "%r must not end with a dot (OpenShift refuses fully qualified route hosts)" % (host,)
    if not isinstance(host, str) or not _HOST.match(host):
        return ("%r is not a valid host name (lowercase DNS name such as "
                "registry.apps.example.com, no scheme or port, at most 253 characters)" % (host,))
    long_labels = [label for label in host.split(".") if len(label) > 63]
    if long_labels:
        return "%r has a label longer than 63 characters (%r has %d)" % (
            host, long_labels[0], len(long_labels[0]))
    return None


def custom_host_hint(message):
    """What an identity lacks when OpenShift refused to set or change a route's host."""
    if "permission to set the host field" in message:
        return ('%s; the identity cannot create resource "routes/custom-host" in API group '
                '"route.openshift.io" (needed to set spec.host or TLS certificates)' % message)
    if "permission to update the host field" in message:
        return ('%s; the identity cannot update resource "routes/custom-host" in API group '
                '"route.openshift.io" (needed to change spec.host or TLS certificates)' % message)
    return message


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
# Force is an operator state in the API, but the image registry operator does not act on it.
MANAGEMENT_STATES = ("Managed", "Unmanaged", "Removed")


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


def removes_managed_storage(config, management_state):
    """Whether asking for ``management_state`` makes the operator delete managed storage."""
    if management_state != "Removed":
        return False
    spec = (config or {}).get("spec") or {}
    return dig(spec, "storage", "managementState") == "Managed" and spec.get("managementState") != "Removed"


def storage_summary(config):
    """{type, persistent} of the storage a Config uses."""
    backends = storage_backends((config or {}).get("spec"))
    kind = backends[0] if len(backends) == 1 else (None if not backends else "+".join(backends))
    persistent = None
    if backends:
        persistent = all(name in PERSISTENT_BACKENDS for name in backends)
    return {"type": kind, "persistent": persistent}


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
    """The current tag with the managed fields replaced. ``generation`` is left out: the
    server then keeps the tag's generation, and imports again only when the source (or
    the import mode) changed."""
    tag = dict(current)
    tag.pop("generation", None)
    tag["from"] = wanted["from"]
    tag["referencePolicy"] = dict(current.get("referencePolicy") or {}, **wanted["referencePolicy"])
    policy = dict(current.get("importPolicy") or {}, **wanted["importPolicy"])
    if not wanted["importPolicy"].get("insecure"):
        policy.pop("insecure", None)
    tag["importPolicy"] = policy
    return tag


def plan_stream_tags(stream, wanted_tags, reimport=()):
    """(tag actions, new spec.tags or None) for one ImageStream (dict or None).

    ``wanted_tags`` is a list of desired_tag() dicts. Tags this call does not name
    stay as they are, in order; changed tags are replaced in place, new ones
    appended. A tag named in ``reimport`` that exists is sent with ``generation: 0``,
    which makes OpenShift import it again (an update without generation does not), so
    it is always ``updated``. spec.tags is a list, which a merge patch replaces whole,
    so the whole new list is returned (None when nothing changes).
    """
    current = dig(stream or {}, "spec", "tags", default=[])
    by_name = dict((tag.get("name"), tag) for tag in current)
    actions = {}
    replaced = {}
    for wanted in wanted_tags:
        existing = by_name.get(wanted["name"])
        if existing is None:
            actions[wanted["name"]] = "created"
            continue
        if tag_differs(existing, wanted):
            replaced[wanted["name"]] = _merged_tag(existing, wanted)
        elif wanted["name"] in reimport:
            replaced[wanted["name"]] = dict(existing)
        else:
            actions[wanted["name"]] = "unchanged"
            continue
        if wanted["name"] in reimport:
            replaced[wanted["name"]]["generation"] = 0
        actions[wanted["name"]] = "updated"
    if all(action == "unchanged" for action in actions.values()):
        return actions, None
    tags = [replaced.get(tag.get("name"), tag) for tag in current]
    tags.extend(w for w in wanted_tags if actions[w["name"]] == "created")
    return actions, tags


def tag_import(stream, name, written=False):
    """The import result of spec tag ``name`` from the stream's ``status.tags``.

    ``{"state": "imported", "image", "reference", "generation"}`` when the newest
    ``items`` entry is of the spec tag's generation (or newer); ``{"state": "failed",
    "reason", "message", "generation"}`` when an ``ImportSuccess=False`` condition is;
    else ``{"state": "pending"}``. ``written``: this run just wrote the tag; a spec tag
    without a generation (or with 0) then has not been imported yet.
    """
    spec_tag = next((t for t in dig(stream or {}, "spec", "tags", default=[]) if t.get("name") == name), {})
    generation = spec_tag.get("generation")
    if written and not generation:
        return {"state": "pending"}
    status_tag = next((t for t in dig(stream or {}, "status", "tags", default=[]) if t.get("tag") == name), {})
    wanted = generation or 0

    def current(entry):
        return (entry.get("generation") or 0) >= wanted

    failed = [c for c in status_tag.get("conditions") or []
              if c.get("type") == "ImportSuccess" and c.get("status") == "False" and current(c)]
    items = [i for i in status_tag.get("items") or [] if current(i)]
    newest_item = items[0].get("generation") or 0 if items else -1
    if failed and (failed[0].get("generation") or 0) >= newest_item:
        return {"state": "failed", "reason": failed[0].get("reason"), "message": failed[0].get("message"),
                "generation": failed[0].get("generation")}
    if items:
        return {"state": "imported", "image": items[0].get("image"),
                "reference": items[0].get("dockerImageReference"), "generation": items[0].get("generation")}
    return {"state": "pending"}


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


# --- system:image-puller RoleBindings: other projects pull from the internal registry -----

RBAC_API = "rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
IMAGE_PULLER_ROLE = "system:image-puller"
IMAGE_PULLER_PREFIX = "ibmcloud-registry-image-puller-"
IMAGE_PULLER_CONSUMER_ANNOTATION = "ibmcloud.registry/image-puller-project"


def image_puller_binding_name(consumer):
    """One RoleBinding per consumer project, so state=absent removes exactly that grant."""
    return IMAGE_PULLER_PREFIX + consumer


def image_puller_subjects(consumer, service_accounts=None):
    """Who may pull: every service account of ``consumer`` (its group), or the named ones."""
    if not service_accounts:
        return [{"kind": "Group", "apiGroup": RBAC_GROUP,
                 "name": "system:serviceaccounts:%s" % consumer}]
    return [{"kind": "ServiceAccount", "name": name, "namespace": consumer}
            for name in sorted(set(service_accounts))]


def image_puller_binding(images_namespace, consumer, service_accounts=None, labels=None):
    """The RoleBinding ``oc policy add-role-to-group system:image-puller
    system:serviceaccounts:<consumer> -n <images_namespace>`` makes, under our own name."""
    return {
        "apiVersion": RBAC_API, "kind": "RoleBinding",
        "metadata": {"name": image_puller_binding_name(consumer), "namespace": images_namespace,
                     "labels": dict(labels or {}, **{MANAGED_BY_LABEL: MANAGED_BY_VALUE}),
                     "annotations": {IMAGE_PULLER_CONSUMER_ANNOTATION: consumer}},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": IMAGE_PULLER_ROLE},
        "subjects": image_puller_subjects(consumer, service_accounts),
    }


def _subject_key(subject):
    # The API server defaults apiGroup ("" for ServiceAccount): compare without it.
    return (subject.get("kind"), subject.get("name"), subject.get("namespace") or "")


def binding_is_managed(binding):
    return dig(binding, "metadata", "labels", default={}).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


def binding_view(binding):
    """What results and diffs show of a RoleBinding: its role and subjects."""
    if binding is None:
        return None
    return {"role": "%s/%s" % (dig(binding, "roleRef", "kind"), dig(binding, "roleRef", "name")),
            "subjects": ["%s %s" % (s.get("kind"), "%s/%s" % (s["namespace"], s.get("name"))
                                    if s.get("namespace") else s.get("name"))
                         for s in sorted(binding.get("subjects") or [], key=_subject_key)]}


def plan_image_puller(images_namespace, consumer, existing, service_accounts=None,
                      state="present", force=False):
    """One step: {namespace, name, consumer, action, write, body, before, after, error?}.

    ``write`` is None, ``create``, ``replace`` (subjects or labels differ; carries the
    resourceVersion), ``recreate`` (the role differs: roleRef cannot change, so delete
    then create) or ``delete``. A binding this collection did not create is replaced
    or deleted only with ``force``.
    """
    name = image_puller_binding_name(consumer)
    step = {"namespace": images_namespace, "name": name, "consumer": consumer, "write": None,
            "body": None, "before": binding_view(existing), "after": None}
    where = "RoleBinding %s/%s" % (images_namespace, name)
    if state == "absent":
        if existing is None:
            step["action"] = "absent"
        elif force or binding_is_managed(existing):
            step.update(action="deleted", write="delete")
        else:
            step.update(action="failed", error="%s is not managed by %s (no %s=%s label); set "
                        "force to delete it" % (where, MANAGED_BY_VALUE, MANAGED_BY_LABEL,
                                                MANAGED_BY_VALUE))
        return step
    wanted = image_puller_binding(images_namespace, consumer, service_accounts)
    step["after"] = binding_view(wanted)
    if existing is None:
        step.update(action="created", write="create", body=wanted)
        return step
    same_role = dig(existing, "roleRef", "kind") == "ClusterRole" \
        and dig(existing, "roleRef", "name") == IMAGE_PULLER_ROLE
    if not same_role and not (force or binding_is_managed(existing)):
        step.update(action="failed", after=step["before"],
                    error="%s exists, grants %s and is not managed by %s; set force to replace it"
                    % (where, step["before"]["role"], MANAGED_BY_VALUE))
        return step
    same_subjects = sorted(map(_subject_key, existing.get("subjects") or [])) == \
        sorted(map(_subject_key, wanted["subjects"]))
    if same_role and same_subjects and binding_is_managed(existing):
        step.update(action="unchanged", after=step["before"])
        return step
    body = copy.deepcopy(wanted)
    meta = existing.get("metadata") or {}
    body["metadata"]["labels"] = dict(meta.get("labels") or {}, **wanted["metadata"]["labels"])
    body["metadata"]["annotations"] = dict(meta.get("annotations") or {},
                                           **wanted["metadata"]["annotations"])
    if same_role:
        body["metadata"]["resourceVersion"] = meta.get("resourceVersion")
    step.update(action="updated", write="replace" if same_role else "recreate", body=body)
    return step


def plan_image_pullers(existing_by_namespace, images_namespaces, consumers, service_accounts=None,
                       state="present", force=False):
    """Steps for every (images project, consumer project) pair, in that order.

    ``existing_by_namespace``: {images project: {binding name: RoleBinding dict}}. A
    project never needs a grant to pull its own images (OpenShift's
    ``system:image-pullers`` binding does that), so pairs of one project are skipped.
    """
    steps = []
    for images_namespace in images_namespaces:
        existing = existing_by_namespace.get(images_namespace) or {}
        for consumer in consumers:
            if consumer == images_namespace:
                continue
            steps.append(plan_image_puller(images_namespace, consumer,
                                           existing.get(image_puller_binding_name(consumer)),
                                           service_accounts, state, force))
    return steps


# --- what kind of token a dockercfg secret holds (OpenShift 4.16+ bound tokens) ----------

BINDING_ANNOTATION = "openshift.io/internal-registry-auth-token.binding"
TOKEN_SA_ANNOTATION = "openshift.io/internal-registry-auth-token.service-account"
LEGACY_TOKEN_ANNOTATION = "openshift.io/token-secret.name"


def _jwt_claims(token):
    """The claims of a JWT (not verified: only to read ``exp``), or None."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")).decode("utf-8"))
    except (ValueError, TypeError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def token_kind(secret, password=None):
    """``bound`` (expires: OpenShift 4.16+), ``legacy`` (does not expire) or ``unknown``.

    From the annotations openshift-controller-manager writes (``...binding: bound`` or
    ``legacy``; ``openshift.io/token-secret.name`` before 4.16), else from the token: a
    JWT with an ``exp`` claim expires.
    """
    annotations = dig(secret, "metadata", "annotations", default={})
    binding = annotations.get(BINDING_ANNOTATION)
    if binding in ("bound", "legacy"):
        return binding
    claims = _jwt_claims(password)
    if claims is not None:
        return "bound" if claims.get("exp") else "legacy"
    if annotations.get(LEGACY_TOKEN_ANNOTATION):
        return "legacy"
    return "unknown"
