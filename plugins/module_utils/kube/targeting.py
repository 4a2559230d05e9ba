# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one targeting mechanism: which namespaces a module call works on.

Every module that acts on many namespaces takes the same options (doc fragment
``ibmcloud.registry.targeting``): a list of ``namespaces``, a ``namespace_selector``,
or ``all_namespaces`` with ``exclude_namespaces``. Reads are one LIST per resource
type for the whole target set (``find_named``), never a GET per namespace, unless
RBAC only allows namespaced reads.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import re

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import ArgumentSpec
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    describe_target,
)


def target_argument_spec():
    """Which namespaces a module acts in. Doc fragment: ibmcloud.registry.targeting."""
    return ArgumentSpec(dict(
        namespaces=dict(type="list", elements="str", aliases=["namespace"]),
        namespace_selector=dict(type="list", elements="str"),
        all_namespaces=dict(type="bool", default=False),
        exclude_namespaces=dict(type="list", elements="str", default=[]),
        include_system_namespaces=dict(type="bool", default=False),
        missing_namespaces=dict(type="str", choices=list(MISSING_NAMESPACES), default="fail"),
    ), mutually_exclusive=[("namespaces", "namespace_selector", "all_namespaces")])


# What a named namespace that does not exist gets: the task fails before any write, or
# the namespace is left out with a warning.
MISSING_NAMESPACES = ("fail", "skip")

# Namespaces that platform components own; all_namespaces and selectors skip them
# unless include_system_namespaces is set (IKS, OpenShift and common CNI ones).
SYSTEM_NAMESPACE_PATTERNS = (
    "kube-*", "openshift", "openshift-*", "ibm-*", "calico-*", "tigera-operator",
)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Matched against a stripped term, and the spaces before an operator are in each
# alternative: two adjacent runs of \s would backtrack quadratically on long inputs.
_SELECTOR_TERM = re.compile(
    r"^(!?[A-Za-z0-9][-A-Za-z0-9_./]*)"
    r"(\s*(==?|!=)\s*[A-Za-z0-9_.-]*|\s+(in|notin)\s+\([^()]*\))?$"
)


def namespace_name_error(name):
    """Why ``name`` is not a valid namespace name, or None."""
    if not isinstance(name, str) or not name:
        return "namespace name must be a non-empty string"
    if len(name) > 63 or not _DNS1123_LABEL.match(name):
        return ("%r is not a valid namespace name (lowercase letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters)" % name)
    return None


def object_name_error(name, what="name"):
    """Why ``name`` is not a valid Secret/ServiceAccount name, or None."""
    if not isinstance(name, str) or not name:
        return "%s must be a non-empty string" % what
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return ("%s %r is not a valid Kubernetes object name (lowercase letters, digits, "
                "'-' and '.', at most 253 characters)" % (what, name))
    return None


def validate_target_params(params, required=True):
    """Error messages for the targeting options, before any request."""
    errors = []
    chosen = [key for key in ("namespaces", "namespace_selector") if params.get(key)]
    if params.get("all_namespaces"):
        chosen.append("all_namespaces")
    if required and params.get("namespaces") == [] and not chosen:
        errors.append("namespaces is an empty list: name at least one namespace")
    elif required and not chosen:
        errors.append("one of namespaces, namespace_selector or all_namespaces is required")
    for name in params.get("namespaces") or []:
        problem = namespace_name_error(name)
        if problem:
            errors.append("namespaces: %s" % problem)
    for term in _selector_terms(params.get("namespace_selector")):
        if not _SELECTOR_TERM.match(term.strip()):
            errors.append("namespace_selector: %r is not a valid label selector term" % term)
    return errors


def _selector_terms(selectors):
    """Individual terms of a list of comma-separated selectors (commas in sets kept)."""
    terms = []
    for selector in selectors or []:
        terms.extend(t for t in re.split(r",(?![^()]*\))", selector) if t.strip())
    return terms


def is_system_namespace(name):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SYSTEM_NAMESPACE_PATTERNS)


def filter_namespaces(names, params, skip=()):
    """Apply exclude_namespaces (globs) and the system-namespace rule to listed names.

    Names given explicitly in ``namespaces`` are never filtered: the user asked.
    """
    if params.get("namespaces"):
        return _unique(params["namespaces"])
    excluded = list(params.get("exclude_namespaces") or []) + list(skip)
    keep = []
    for name in sorted(names):
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in excluded):
            continue
        if not params.get("include_system_namespaces") and is_system_namespace(name):
            continue
        keep.append(name)
    return keep


def _unique(items):
    seen = set()
    return [x for x in items if not (x in seen or seen.add(x))]


def describe_targets(params):
    """Human text for error messages: what the targeting options asked for."""
    if params.get("namespaces"):
        return "namespaces %s" % ", ".join(params["namespaces"])
    if params.get("namespace_selector"):
        return "namespace_selector %s" % ",".join(params["namespace_selector"])
    return "all_namespaces (excluding %s)" % (", ".join(params.get("exclude_namespaces") or [])
                                              or "system namespaces")


def resolve_namespaces(client, params, skip=()):
    """The target namespace names, sorted; one LIST of namespaces.

    ``skip`` holds namespaces the caller never targets implicitly (the source of a
    copy). Raises KubeError when the options select no namespace at all.

    Names given in ``namespaces`` are used in their order; with state=present the same
    LIST finds those that do not exist, before anything is written: a KubeError naming
    them (missing_namespaces=fail), or left out with a warning each (skip). When RBAC
    forbids listing namespaces (namespaced Roles only) they are used as given.
    """
    if params.get("namespaces"):
        names = _unique(params["namespaces"])
        if params.get("state", "present") != "present":
            return names  # nothing is created; a missing namespace is just "absent"
        return _existing(client, names, params)
    selector = ",".join(params.get("namespace_selector") or []) or None
    kwargs = {"label_selector": selector} if selector else {}
    names = filter_namespaces(_list_namespaces(client, **kwargs), params, skip=skip)
    if not names:
        raise KubeError("%s matched no namespace" % describe_targets(params))
    return names


def _list_namespaces(client, **kwargs):
    return client.list_json(describe_target("list", "Namespace"), client.core.list_namespace,
                            keep=lambda ns: ns["metadata"]["name"], **kwargs)


def missing_namespace_error(missing):
    """The message for named namespaces that do not exist (option names included)."""
    return ("namespaces: %s do%s not exist; create %s first, or set missing_namespaces=skip to "
            "leave %s out with a warning" % (", ".join(missing), "es" if len(missing) == 1 else "",
                                             "it" if len(missing) == 1 else "them",
                                             "it" if len(missing) == 1 else "them"))


def require_namespaces(client, names):
    """KubeError (404) naming those of ``names`` that do not exist; one LIST of namespaces.

    For modules whose targets name their namespace (``<project>/<stream>``): a write into
    a namespace that does not exist is refused before the first write. Under namespaced
    RBAC (no LIST of namespaces) the names are taken as given.
    """
    missing = sorted(set(_missing(client, names)))
    if missing:
        raise KubeError("namespaces: %s do%s not exist; create %s first" % (
            ", ".join(missing), "es" if len(missing) == 1 else "", "it" if len(missing) == 1 else "them"), status=404)


def _missing(client, names):
    """Those of ``names`` that one LIST of namespaces does not hold; none when RBAC forbids the LIST."""
    try:
        known = set(_list_namespaces(client))
    except KubeError as exc:
        if exc.status == 403:
            return []
        raise
    return [name for name in names if name not in known]


def _existing(client, names, params):
    missing = _missing(client, names)
    if not missing:
        return names
    if params.get("missing_namespaces", "fail") != "skip":
        raise KubeError(missing_namespace_error(missing), status=404)
    for name in missing:
        client.warn("namespaces: %s does not exist; skipped (missing_namespaces=skip)" % name)
    return [name for name in names if name not in missing]
