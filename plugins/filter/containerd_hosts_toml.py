# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that expose the containerd_hosts renderer to roles and playbooks.

The containerd_hosts role's cluster mode and the containerd_hosts module share one
renderer (module_utils/containerd/hosts.py), so a ConfigMap holds exactly the bytes the
module would write on a node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd import hosts as containerd_hosts


def _guarded(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except containerd_hosts.ContainerdHostsError as exc:
        raise AnsibleFilterError(str(exc))


def containerd_hosts_toml(registry):
    """hosts.toml text for one registry declaration."""
    return _guarded(containerd_hosts.render_spec, registry)


def containerd_hosts_bundle(registries, prune=False):
    """ConfigMap data, init script and checksum for the role's cluster mode."""
    return _guarded(containerd_hosts.cluster_bundle, registries, prune=bool(prune))


def containerd_hosts_from_kubespray(entries):
    """Registry declarations from kubespray's containerd_registries_mirrors."""
    return _guarded(containerd_hosts.from_kubespray, entries)


class FilterModule(object):
    def filters(self):
        return {
            "containerd_hosts_toml": containerd_hosts_toml,
            "containerd_hosts_bundle": containerd_hosts_bundle,
            "containerd_hosts_from_kubespray": containerd_hosts_from_kubespray,
        }
