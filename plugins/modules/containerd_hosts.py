#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: containerd_hosts
short_description: Manage a containerd registry host configuration (hosts.toml) on a node
version_added: 0.1.0
description:
  - Ensures C(<config_path>/<registry>/hosts.toml) on a node from structured options, the
    file containerd reads to resolve, mirror and trust a registry.
  - The file is written by a TOML library, atomically, and read back to check that it
    parses, because containerd silently ignores a malformed file.
  - The existing file is compared semantically with the declaration, so a file that
    differs only in formatting, key order or comments is left alone.
  - An empty C([host]) table is always written, because containerd 1.6 and 1.7 ignore a
    file that has no C(host) table at all.
  - A registry directory this module writes gets a marker file
    C(.managed-by-ibmcloud.registry); O(prune_except) removes only directories that carry
    it.
  - Optionally checks, or sets, that containerd's C(config.toml) points the CRI plugin's
    registry C(config_path) at O(config_path).
  - For IBM Cloud Kubernetes Service, where workers cannot be reached over SSH, use the
    C(ibmcloud.registry.containerd_hosts) role in cluster mode instead; it renders the same
    content into a ConfigMap and a DaemonSet.
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
requirements:
  - tomli_w on the node (Debian/Ubuntu package C(python3-tomli-w), or C(pip install tomli-w))
  - tomli on the node when its Python is older than 3.11
  - tomlkit on the node for O(containerd_config_check=set) (Debian/Ubuntu package
    C(python3-tomlkit), or C(pip install tomlkit)), which edits C(config.toml) and keeps
    its comments and formatting
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the TOML documents with every header value replaced by C(********).
  platform:
    platforms: posix
options:
  registry:
    description:
      - The registry host namespace, the first part of an image name, which is also the
        directory name under O(config_path).
      - C(host), C(host:port), C([ipv6]:port), or C(_default) for the configuration used
        by every registry that has no directory of its own.
      - Required unless the call only prunes (O(prune_except)) or only checks containerd's
        configuration (O(containerd_config_check)).
    type: str
  state:
    description:
      - V(present) writes the file; V(absent) removes it, the marker, and the directory
        when nothing else is left in it.
    type: str
    choices: [present, absent]
    default: present
  config_path:
    description:
      - containerd's registry configuration directory (the C(config_path) of its CRI
        registry settings, or C(ctr --hosts-dir)).
    type: path
    default: /etc/containerd/certs.d
  server:
    description:
      - The top-level C(server), tried after every O(hosts) entry.
      - When unset, containerd uses the namespace itself (C(registry-1.docker.io) for
        C(docker.io)).
      - An C(http://) or C(https://) URL with an optional path.
    type: str
  server_settings:
    description:
      - Settings for O(server), written at the top level of the file.
    type: dict
    suboptions:
      capabilities:
        description:
          - What this host may be used for. containerd's default is all of pull, resolve, push.
          - V(referrers) needs containerd 2.2 or later; an unknown capability makes containerd
            ignore the whole file, so this module refuses it for an older O(containerd_version).
        type: list
        elements: str
        choices: [pull, resolve, push, referrers]
      ca:
        description:
          - CA certificate file(s) to trust. A relative path is relative to the registry
            directory and must exist.
        type: list
        elements: path
      client:
        description:
          - Client certificates for TLS authentication. Each entry is a path to a file with
            certificate and key, or a mapping C({cert, key}) (also accepted as a two-item list).
          - Use one form for all entries. Relative paths are relative to the registry directory.
        type: list
        elements: raw
      skip_verify:
        description: Skip verification of the server certificate chain and host name.
        type: bool
      headers:
        description:
          - HTTP headers sent with every request to this host; a value is a string or a list.
          - Values are never logged and appear as C(********) in diffs; the file gets mode
            C(0600) when any header is set.
        type: dict
      override_path:
        description: The URL path is the registry API root (no C(/v2) is appended).
        type: bool
      dial_timeout:
        description: A Go duration such as C(3s); containerd 2.0.7 or later, ignored by older ones.
        type: str
  hosts:
    description:
      - Hosts tried in this order before O(server), each a C([host."<url>"]) table.
    type: list
    elements: dict
    default: []
    suboptions:
      url:
        description: C(http://) or C(https://) URL of the host, with an optional path.
        type: str
        required: true
      capabilities:
        description: As in O(server_settings.capabilities).
        type: list
        elements: str
        choices: [pull, resolve, push, referrers]
      ca:
        description: As in O(server_settings.ca).
        type: list
        elements: path
      client:
        description: As in O(server_settings.client).
        type: list
        elements: raw
      skip_verify:
        description: As in O(server_settings.skip_verify).
        type: bool
      headers:
        description: As in O(server_settings.headers); never logged.
        type: dict
      override_path:
        description: As in O(server_settings.override_path).
        type: bool
      dial_timeout:
        description: As in O(server_settings.dial_timeout).
        type: str
  backup:
    description:
      - Keep a timestamped copy of a file before it is replaced or removed (also of
        containerd's C(config.toml) when it is changed).
    type: bool
    default: false
  prune_except:
    description:
      - Remove every registry directory under O(config_path) that carries this module's
        marker and is neither listed here nor O(registry).
      - Directories without the marker (written by hand, by another tool, or by the IBM
        Cloud provisioning) are never touched.
      - An empty list removes every managed directory. When unset, nothing is pruned.
    type: list
    elements: str
  containerd_config:
    description: Path of containerd's C(config.toml).
    type: path
    default: /etc/containerd/config.toml
  containerd_config_check:
    description:
      - V(none) leaves C(config.toml) alone.
      - V(check) reports in RV(config_path_ok) whether the CRI plugin's registry
        C(config_path) includes O(config_path), and warns when it does not.
      - V(set) also puts O(config_path) first in it (keeping other entries) and reports
        C(changed); containerd must then be restarted, which the role's handler does.
        Only that value changes - comments, blank lines, quoting and the order of tables
        are kept (tomlkit). A missing file is created, version 3 for containerd 2.x,
        else version 2.
      - The key is C(plugins.cri.registry.config_path) for config version 1,
        C(plugins."io.containerd.grpc.v1.cri".registry.config_path) for version 2
        (containerd 1.6 and 1.7; containerd 2.x migrates it when it reads the file) and
        C(plugins."io.containerd.cri.v1.images".registry.config_path) for versions 3 and 4
        (containerd 2.x; 2.4 writes version 4 and migrates 3 to it). A version 3 or 4 file
        that sets the version 2 key gets a warning, since containerd 2.x does not read it there.
      - A legacy C(registry.mirrors) table gives a warning; V(set) fails then, because
        containerd refuses C(config_path) together with C(mirrors).
    type: str
    choices: [none, check, set]
    default: none
  containerd_version:
    description:
      - containerd version on the node, for example C(1.7) or C(2.1.4), used to refuse or
        warn about features it does not know.
      - When unset, the output of C(containerd --version) is used if the binary is found.
    type: str
notes:
  - containerd also looks up a directory named C(host_port_) before C(host:port); this
    module writes the C(host:port) form, so do not keep both.
  - Without C(hosts.toml), containerd loads C(*.crt), C(*.cert) and C(*.key) files from the
    registry directory; name CA files differently (for example C(ca.pem)) if removing
    C(hosts.toml) must really remove the trust.
  - No containerd restart is needed when C(hosts.toml) changes; it is read on every pull.
  - The C(hosts.toml) keys this module writes, and the containerd rules it applies, are
    described in the collection's C(docs/containerd.md).
  - The role C(ibmcloud.registry.containerd_hosts) applies this module to every node, or
    writes the same files through a DaemonSet.
"""

EXAMPLES = r"""
- name: The Docker Hub configuration of IBM Cloud's DaemonSet example, on a node
  ibmcloud.registry.containerd_hosts:
    registry: docker.io
    server: https://docker.io
    hosts:
      - url: https://registry-1.docker.io
        capabilities: [pull, resolve]

- name: Pull docker.io images through a private mirror with its own CA
  ibmcloud.registry.containerd_hosts:
    registry: docker.io
    server: https://registry-1.docker.io
    hosts:
      - url: https://mirror.example.com:5000
        capabilities: [pull, resolve]
        ca: [/etc/pki/mirror-ca.pem]
        headers:
          Authorization: "Basic {{ mirror_basic_auth }}"
    backup: true

- name: A private registry with client certificates, certificates beside hosts.toml
  ibmcloud.registry.containerd_hosts:
    registry: registry.internal:5000
    server: https://registry.internal:5000
    server_settings:
      ca: [ca.pem]
      client:
        - cert: client.pem
          key: client-key.pem

- name: Every other registry goes through a pull-through cache first
  ibmcloud.registry.containerd_hosts:
    registry: _default
    hosts:
      - url: https://cache.example.com
        capabilities: [pull, resolve]

- name: Remove directories this module wrote for registries no longer declared
  ibmcloud.registry.containerd_hosts:
    prune_except: [docker.io, registry.internal:5000, _default]

- name: Make sure the CRI plugin reads /etc/containerd/certs.d
  ibmcloud.registry.containerd_hosts:
    containerd_config_check: set
  notify: Restart containerd
"""

RETURN = r"""
path:
  description: The hosts.toml path of O(registry).
  returned: when O(registry) is set
  type: str
  sample: /etc/containerd/certs.d/docker.io/hosts.toml
registry:
  description: The registry directory name.
  returned: when O(registry) is set
  type: str
  sample: docker.io
action:
  description:
    - What happened to O(registry)'s file - V(created), V(updated), V(unchanged),
      V(deleted), or V(absent) (declared absent and nothing was there). In check mode,
      what would happen.
  returned: when O(registry) is set
  type: str
  sample: updated
registries:
  description:
    - The per-item results, one entry per registry directory this call handled -
      O(registry) and each directory removed by O(prune_except) (V(deleted)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The registry directory name.
      type: str
    path:
      description: Its hosts.toml.
      type: str
    action:
      description: V(created), V(updated), V(unchanged), V(deleted) or V(absent).
      type: str
  sample: [{name: docker.io, path: /etc/containerd/certs.d/docker.io/hosts.toml, action: created}]
mode:
  description: The file mode written (C(0600) when a header is set, else C(0644)).
  returned: when O(registry) is set and O(state=present)
  type: str
  sample: "0644"
backup_file:
  description: The backup of the replaced or removed hosts.toml.
  returned: when O(backup=true) and the file was replaced or removed
  type: str
pruned:
  description: Registry directories removed by O(prune_except).
  returned: always
  type: list
  elements: str
  sample: [old-mirror.example.com]
config_path_ok:
  description: Whether containerd's CRI registry C(config_path) includes O(config_path)
    (after the change, with O(containerd_config_check=set)).
  returned: when O(containerd_config_check) is not V(none)
  type: bool
containerd_config:
  description: What was found in containerd's C(config.toml).
  returned: when O(containerd_config_check) is not V(none)
  type: dict
  contains:
    path:
      description: The file.
      type: str
    exists:
      description: Whether it exists.
      type: bool
    version:
      description: Its config version (1 to 4).
      type: int
    key:
      description: The key that holds the registry config_path for that version.
      type: str
    config_path:
      description: Its value before any change.
      type: str
    ok:
      description: Whether it included O(config_path) before any change.
      type: bool
    legacy_mirrors:
      description: Registries configured in the legacy C(registry.mirrors) table.
      type: list
      elements: str
    misplaced_key:
      description: A version 2 C(config_path) key found in a version 3 file, where
        containerd 2.x does not read it.
      type: str
    action:
      description: V(created), V(updated), V(unchanged), or V(absent) (no file, only checked).
      type: str
    changed:
      description: Whether the file is (or in check mode would be) changed.
      type: bool
containerd_config_backup_file:
  description: The backup of containerd's C(config.toml).
  returned: when O(backup=true) and the file was changed
  type: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import ArgumentSpec
from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd import plan as containerd_plan
from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd import runners


def _settings_spec(with_url):
    spec = dict(
        capabilities=dict(type="list", elements="str", choices=list(containerd_plan.CAPABILITIES)),
        ca=dict(type="list", elements="path"),
        client=dict(type="list", elements="raw"),
        skip_verify=dict(type="bool"),
        headers=dict(type="dict", no_log=True),
        override_path=dict(type="bool"),
        dial_timeout=dict(type="str"),
    )
    if with_url:
        spec["url"] = dict(type="str", required=True)
    return spec


def argument_spec():
    """The options documented above (this module shares no option group)."""
    return ArgumentSpec(dict(
        registry=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        config_path=dict(type="path", default=containerd_plan.DEFAULT_CONFIG_PATH),
        server=dict(type="str"),
        server_settings=dict(type="dict", options=_settings_spec(with_url=False)),
        hosts=dict(type="list", elements="dict", default=[], options=_settings_spec(with_url=True)),
        backup=dict(type="bool", default=False),
        prune_except=dict(type="list", elements="str"),
        containerd_config=dict(type="path", default="/etc/containerd/config.toml"),
        containerd_config_check=dict(type="str", choices=["none", "check", "set"], default="none"),
        containerd_version=dict(type="str"),
    ))


def main():
    module = argument_spec().create_ansible_module(supports_check_mode=True)
    if not containerd_plan.HAS_TOMLI_W:
        module.fail_json(msg=missing_required_lib("tomli_w"), exception=containerd_plan.TOMLI_W_IMPORT_ERROR)
    if not containerd_plan.HAS_TOML_READER:
        module.fail_json(msg=missing_required_lib("tomli"), exception=containerd_plan.TOML_READER_IMPORT_ERROR)
    if not module.params["registry"] and module.params["prune_except"] is None \
            and module.params["containerd_config_check"] == "none":
        module.fail_json(msg="nothing to do: set registry, prune_except or containerd_config_check")
    runners.run(module)


if __name__ == "__main__":
    main()
