# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that expose the containerd_hosts renderer to roles and playbooks.

The containerd_hosts role's cluster mode and the containerd_hosts module share one
renderer (module_utils/containerd/plan.py), so a ConfigMap holds exactly the bytes the
module would write on a node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd import cluster, kubespray, plan


def _guarded(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except plan.ContainerdHostsError as exc:
        raise AnsibleFilterError(str(exc))


def containerd_hosts_toml(registry):
    """hosts.toml text for one registry declaration."""
    return _guarded(plan.render_spec, registry)


def containerd_hosts_bundle(registries, prune=False, script=""):
    """ConfigMap data, manifest and checksum for the role's cluster mode."""
    return _guarded(plan.cluster_bundle, registries, prune=bool(prune), script=script or "")


def containerd_hosts_from_kubespray(entries):
    """Registry declarations from kubespray's containerd_registries_mirrors."""
    return _guarded(kubespray.from_kubespray, entries)


def containerd_hosts_drift(desired, actual):
    """Dotted paths where a live object differs from its definition; empty when in sync."""
    return cluster.drift(desired, actual or None)


def containerd_hosts_namespace_problem(namespace, name):
    """Why Pod Security admission would refuse the DaemonSet's pods there ("" if nothing)."""
    return cluster.namespace_problem(namespace, name) or ""


def containerd_hosts_rollout(daemonset, pods, checksum, events=None, nodes=None):
    """Whether the DaemonSet rolled out the checksum, and which nodes did not (and why)."""
    return cluster.rollout(daemonset, pods, checksum, events, nodes)


class FilterModule(object):
    def filters(self):
        return {
            "containerd_hosts_toml": containerd_hosts_toml,
            "containerd_hosts_bundle": containerd_hosts_bundle,
            "containerd_hosts_from_kubespray": containerd_hosts_from_kubespray,
            "containerd_hosts_drift": containerd_hosts_drift,
            "containerd_hosts_namespace_problem": containerd_hosts_namespace_problem,
            "containerd_hosts_rollout": containerd_hosts_rollout,
        }
