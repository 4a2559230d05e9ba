# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubespray's ``containerd_registries_mirrors`` as registry declarations (pure)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd.plan import ContainerdHostsError


def _with_scheme(host):
    # containerd reads a scheme-less host as https; this collection writes the scheme.
    return host if isinstance(host, str) and re.match(r"^https?://", host) else "https://%s" % host


def from_kubespray(entries):
    """Translate kubespray's ``containerd_registries_mirrors`` into registry declarations.

    kubespray writes ``server = item.server | default("https://" + prefix)`` and one
    ``[host]`` table per mirror; this keeps that meaning.
    """
    registries = []
    for index, entry in enumerate(entries or []):
        if not isinstance(entry, dict) or not entry.get("prefix"):
            raise ContainerdHostsError("containerd_registries_mirrors[%d] must have a prefix" % index)
        hosts = []
        for mirror in entry.get("mirrors") or []:
            if not isinstance(mirror, dict) or not mirror.get("host"):
                raise ContainerdHostsError("containerd_registries_mirrors[%d] (%s): every mirror needs "
                                           "a host" % (index, entry["prefix"]))
            host = {"url": _with_scheme(mirror["host"])}
            for key in ("capabilities", "ca", "skip_verify", "override_path", "dial_timeout"):
                if mirror.get(key) is not None:
                    host[key] = mirror[key]
            if mirror.get("client") is not None:
                host["client"] = mirror["client"]
            if mirror.get("header") is not None:
                host["headers"] = mirror["header"]
            hosts.append(host)
        registries.append({
            "registry": entry["prefix"],
            "server": _with_scheme(entry.get("server") or entry["prefix"]),
            "hosts": hosts,
        })
    return registries
