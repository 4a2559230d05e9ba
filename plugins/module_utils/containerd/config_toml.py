# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd's own ``config.toml``: does the CRI plugin read our ``config_path``?

Pure functions on text and plain dicts. Reading uses ``tomllib``; the one edit
(``with_config_path``) uses ``tomlkit``, which changes the ``config_path`` value and
keeps every comment, blank line, quoting style and table order of the file.

Where CRI's registry settings live, by config version:

- 1 (containerd 1.x without ``version``): ``plugins.cri.registry``;
- 2 (containerd 1.6/1.7, also read by 2.x, which migrates it): ``plugins."io.containerd.grpc.v1.cri".registry``;
- 3 (containerd 2.0 to 2.3) and 4 (what containerd 2.4 writes and migrates 3 to):
  ``plugins."io.containerd.cri.v1.images".registry``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd.plan import (
    ContainerdHostsError, parse_toml)

try:
    import tomlkit
    HAS_TOMLKIT = True
    TOMLKIT_IMPORT_ERROR = None
except ImportError:
    HAS_TOMLKIT = False
    TOMLKIT_IMPORT_ERROR = traceback.format_exc()

CONFIG_REGISTRY_TABLES = {
    1: ("plugins", "cri", "registry"),
    2: ("plugins", "io.containerd.grpc.v1.cri", "registry"),
    3: ("plugins", "io.containerd.cri.v1.images", "registry"),
    4: ("plugins", "io.containerd.cri.v1.images", "registry"),
}
# In a version 3 file containerd 2.x does not read the version 2 table: a key left there
# by a hand migration is ignored.
STALE_TABLES = {3: CONFIG_REGISTRY_TABLES[2], 4: CONFIG_REGISTRY_TABLES[2]}


def config_version(document):
    version = document.get("version", 1)
    # bool is an int: `version = true` is not version 1.
    if not isinstance(version, int) or isinstance(version, bool) or version not in CONFIG_REGISTRY_TABLES:
        raise ContainerdHostsError("containerd config version %r is not supported (1 to 4)" % (version,))
    return version


def _dig(document, keys):
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def _paths_in(config_path_value):
    if not isinstance(config_path_value, str):
        return []  # not a path list containerd would use: reported as not pointing here
    return [os.path.normpath(p) for p in config_path_value.split(":") if p]


def _key_name(keys):
    return ".".join('"%s"' % k if "." in k else k for k in keys)


def inspect_containerd_config(document, hosts_root):
    """Does a parsed config.toml point CRI's registry ``config_path`` at ``hosts_root``?"""
    version = config_version(document)
    table_keys = CONFIG_REGISTRY_TABLES[version]
    registry = _dig(document, table_keys) or {}
    value = registry.get("config_path") if isinstance(registry, dict) else None
    mirrors = registry.get("mirrors") if isinstance(registry, dict) else None
    report = {
        "version": version,
        "key": "%s.config_path" % _key_name(table_keys),
        "config_path": value,
        "ok": os.path.normpath(hosts_root) in _paths_in(value),
        "legacy_mirrors": sorted(mirrors) if isinstance(mirrors, dict) and mirrors else [],
        "misplaced_key": None,
    }
    stale_keys = STALE_TABLES.get(version)
    stale = _dig(document, stale_keys) if stale_keys else None
    if isinstance(stale, dict) and stale.get("config_path"):
        report["misplaced_key"] = "%s.config_path" % _key_name(stale_keys)
    return report


def with_config_path(text, hosts_root):
    """``text`` with ``hosts_root`` first in CRI's registry config_path, all else kept.

    Comments, formatting and the other ``config_path`` entries stay; a missing table is
    appended at the end of the file.
    """
    if not HAS_TOMLKIT:
        raise ContainerdHostsError("tomlkit is required to edit containerd's config.toml")
    version = config_version(parse_toml(text, "containerd config"))
    document = tomlkit.parse(text)
    table = document
    for index, key in enumerate(CONFIG_REGISTRY_TABLES[version]):
        if key not in table:
            # The last level holds the value; the levels above only name it.
            table[key] = tomlkit.table(is_super_table=index < len(CONFIG_REGISTRY_TABLES[version]) - 1)
        table = table[key]
        if not isinstance(table, dict):
            raise ContainerdHostsError("containerd config: %s is not a table" % key)
    others = [p for p in str(table.get("config_path") or "").split(":")
              if p and os.path.normpath(p) != os.path.normpath(hosts_root)]
    table["config_path"] = ":".join([hosts_root] + others)
    return tomlkit.dumps(document)


def new_containerd_config(hosts_root, containerd_version):
    """A minimal config.toml for when none exists: version 3 for containerd 2.x (2.4 reads
    it and migrates it to 4), else 2."""
    version = 3 if containerd_version and containerd_version[0] >= 2 else 2
    return with_config_path("version = %d\n" % version, hosts_root)


def plan_config(observed, hosts_root, check, version):
    """What to do with config.toml; pure.

    ``observed``: ``path``, ``exists``, ``text``, ``mode``. ``check``: ``check`` or ``set``.
    Returns the report the module returns (``path``, ``exists``, ``version``, ``key``,
    ``config_path``, ``ok``, ``legacy_mirrors``, ``action`` created|updated|unchanged,
    ``changed``) plus ``text`` (the new file) and ``warnings``; raises
    ContainerdHostsError when ``set`` cannot work.
    """
    path = observed["path"]
    warnings = []
    if not observed["exists"]:
        if check == "check":
            warnings.append("%s does not exist: containerd's CRI plugin does not read %s" % (path, hosts_root))
            return {"path": path, "exists": False, "ok": False, "changed": False, "action": "absent",
                    "warnings": warnings}
        return {"path": path, "exists": False, "ok": False, "changed": True, "action": "created",
                "text": new_containerd_config(hosts_root, version), "warnings": warnings}
    report = inspect_containerd_config(parse_toml(observed["text"], path), hosts_root)
    report.update(path=path, exists=True, changed=False, action="unchanged", warnings=warnings)
    if report["legacy_mirrors"]:
        message = ("%s sets legacy registry.mirrors (%s) under %s; containerd refuses config_path "
                   "together with mirrors: move them to hosts.toml" % (
                       path, ", ".join(report["legacy_mirrors"]), report["key"].rsplit(".", 1)[0]))
        if check == "set" and not report["ok"]:
            raise ContainerdHostsError(message)
        warnings.append(message)
    if report["misplaced_key"]:
        warnings.append("%s is version %d but sets %s, which containerd 2.x does not read there; "
                        "the key is %s" % (path, report["version"], report["misplaced_key"], report["key"]))
    if not report["ok"]:
        if check == "check":
            current = "%r" % report["config_path"] if report["config_path"] else "not set"
            warnings.append("%s: %s is %s, which does not include %s: the CRI plugin (kubelet pulls) "
                            "will not use these hosts.toml files" % (path, report["key"], current, hosts_root))
        else:
            report.update(changed=True, action="updated", text=with_config_path(observed["text"], hosts_root))
    return report
