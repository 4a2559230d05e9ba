# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster mode of the containerd_hosts role, pure: drift of the objects it applies,
Pod Security admission of its namespace, and the rollout of its DaemonSet.

The role reads the objects once (kubernetes.core.k8s_info) and writes only what these
functions say differs: kubernetes.core.k8s sends a PATCH for an unchanged DaemonSet
(its client-side apply always patches lists), so comparing here keeps a rerun free of
writes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

CHECKSUM_ANNOTATION = "ibmcloud.registry/hosts-checksum"
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
# Exact maps: a key the declaration dropped must go (a ConfigMap's files).
EXACT_KEYS = ("data",)


def _string_data_as_data(desired):
    """A Secret declared with stringData compares as the API returns it (base64 data)."""
    if desired.get("kind") != "Secret" or "stringData" not in desired:
        return desired
    converted = dict((k, v) for k, v in desired.items() if k != "stringData")
    converted["data"] = dict((key, base64.b64encode(value.encode("utf-8")).decode("ascii"))
                             for key, value in (desired["stringData"] or {}).items())
    return converted


def drift(desired, actual, path=""):
    """Where ``actual`` differs from ``desired``: a list of dotted paths, empty when in sync.

    Every field of ``desired`` must be in ``actual`` with an equal value; fields the API
    server adds (defaults, status, other labels) do not count. Lists compare item by item
    and must have the same length; ``data`` maps must be equal.
    """
    if not path:
        if actual is None:
            return ["(missing)"]
        desired = _string_data_as_data(desired)
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return [path or "."]
        found = []
        for key, value in desired.items():
            where = "%s.%s" % (path, key) if path else key
            if key in EXACT_KEYS and path == "":
                if (actual.get(key) or {}) != (value or {}):
                    found.append(where)
                continue
            if key not in actual:
                if value not in (None, {}, []):
                    found.append(where)
                continue
            found.extend(drift(value, actual[key], where))
        return found
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return [path]
        found = []
        for index, (want, have) in enumerate(zip(desired, actual)):
            found.extend(drift(want, have, "%s[%d]" % (path, index)))
        return found
    return [] if desired == actual else [path]


def namespace_problem(namespace, name):
    """Why Pod Security admission would refuse the DaemonSet's pods in ``namespace``, or None.

    The pods mount the node's config_path (hostPath) and run as root: only the
    ``privileged`` level admits them. A namespace without an enforce label gets the
    cluster's default level; the rollout check reports it when that refuses the pods.
    """
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(PSA_ENFORCE)
    if level is None or level == "privileged":
        return None
    return ("namespace %s enforces Pod Security level %r (label %s): the DaemonSet's pods mount the "
            "node's containerd config_path (hostPath) and run as root, which only the privileged level "
            "admits, so no node would get the hosts.toml files. Label the namespace %s=privileged or "
            "choose another containerd_hosts_cluster_namespace" % (name, level, PSA_ENFORCE, PSA_ENFORCE))


def _pod_ready(pod):
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _pod_reason(pod):
    """The first waiting or failed container's reason and message, or the pod phase."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            state = container.get("state") or {}
            for kind in ("waiting", "terminated"):
                detail = state.get(kind)
                if detail and (kind == "waiting" or detail.get("exitCode")):
                    text = detail.get("reason") or kind
                    if detail.get("message"):
                        text += ": " + detail["message"]
                    return "container %s %s" % (container.get("name"), text)
    return "phase %s" % status.get("phase", "Pending")


def _node_not_ready(node):
    """Why a Node object is not Ready ("" when it is): the Ready condition's status and reason."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return ""
            detail = ": ".join(p for p in (condition.get("reason"), condition.get("message")) if p)
            return "Ready=%s%s" % (condition.get("status"), ", " + detail if detail else "")
    return "no Ready condition"


def rollout(daemonset, pods, checksum, events=None, nodes=None):
    """Has the DaemonSet rolled out ``checksum`` to every node it should run on?

    Returns ``{"done": bool, "desired": n, "updated": n, "ready": n, "message": str}``;
    the message names each node whose pod is old, not ready (with the container's
    reason), still being deleted (a node whose kubelet does not answer never confirms
    it, and the DaemonSet waits for it before it creates the new pod) or missing, each
    such node that is NotReady (``nodes``: the Node objects, when they could be read),
    and the DaemonSet's latest FailedCreate event (Pod Security admission refusing the
    pods, for example).
    """
    status = (daemonset or {}).get("status") or {}
    metadata = (daemonset or {}).get("metadata") or {}
    desired = status.get("desiredNumberScheduled", 0)
    observed = status.get("observedGeneration", 0) >= metadata.get("generation", 1)
    problems, updated, ready, old = [], 0, 0, 0
    live, leaving, named = set(), {}, []
    for pod in sorted(pods or [], key=lambda p: ((p.get("spec") or {}).get("nodeName") or "")):
        node = (pod.get("spec") or {}).get("nodeName") or "(not scheduled)"
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            leaving.setdefault(node, pod["metadata"]["name"])  # an old pod on its way out
            continue
        live.add(node)
        if annotations.get(CHECKSUM_ANNOTATION) != checksum:
            problems.append("node %s still runs pod %s with the previous hosts.toml files"
                            % (node, pod["metadata"]["name"]))
            named.append(node)
            old += 1
            continue
        updated += 1
        if _pod_ready(pod):
            ready += 1
        else:
            problems.append("node %s: pod %s is not ready (%s)" % (node, pod["metadata"]["name"], _pod_reason(pod)))
            named.append(node)
    for node in sorted(set(leaving) - live):
        problems.append("node %s: pod %s is being deleted and the node has not confirmed it, so the "
                        "DaemonSet has not started the new pod there" % (node, leaving[node]))
        named.append(node)
    missing = desired - updated - old - len(set(leaving) - live)
    if missing > 0:
        problems.append("%d of %d nodes have no pod of DaemonSet %s" % (missing, desired, metadata.get("name")))
    by_name = dict(((n.get("metadata") or {}).get("name"), n) for n in nodes or [])
    not_ready = dict((name, _node_not_ready(node)) for name, node in by_name.items() if _node_not_ready(node))
    # The nodes named above, and when pods are missing, every NotReady node without one.
    for name in sorted(set(named) | (set(not_ready) - live - set(leaving) if missing > 0 else set())):
        if name in not_ready:
            problems.append("node %s is NotReady (%s)" % (name, not_ready[name]))
    failed_create = [e for e in events or [] if e.get("reason") == "FailedCreate"]
    if failed_create and (problems or not observed):
        latest = sorted(failed_create, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")[-1]
        problems.append("the DaemonSet controller reports: %s" % latest.get("message"))
    done = observed and desired == updated == ready and not problems
    return {"done": done, "desired": desired, "updated": updated, "ready": ready,
            "message": "; ".join(problems) if problems else ("rolled out on %d node(s)" % desired)}
