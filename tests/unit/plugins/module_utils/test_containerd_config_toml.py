# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd's config.toml: the registry config_path checks and the edit that keeps the file.

Besides small hand-written files, the checks run on the real default configurations that
`containerd config default` prints: Debian's containerd 1.6 (config version 2) and
containerd 2.4.2 built by tests/cluster/build-go.sh (version 4, which 2.4 also migrates
version 3 files to). Each is generated here,
never committed; the edited file is loaded back by the same containerd
(`containerd --config <file> config dump`), which must report the config_path we set.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import os
import shutil
import subprocess
import tomllib

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd import config_toml as ct
from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd.plan import ContainerdHostsError

ROOT = "/etc/containerd/certs.d"
CACHE = os.environ.get("IBMREG_CACHE", os.path.expanduser("~/.cache/ibmcloud-registry"))
CONTAINERD_2 = os.path.join(CACHE, "containerd", "v2.4.2", "bin", "containerd")
DEBIAN_CONTAINERD = "/usr/bin/containerd"


def _binary(path):
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


BINARIES = {
    "debian-1.6": _binary(DEBIAN_CONTAINERD) or shutil.which("containerd"),
    "2.4.2": _binary(CONTAINERD_2),
}


def _version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return out


def default_config(name):
    binary = BINARIES[name]
    if not binary:
        pytest.skip("containerd %s is not installed (Debian's package, or tests/cluster/build-go.sh)" % name)
    if name == "debian-1.6" and " 1.6." not in _version(binary):
        pytest.skip("the containerd on PATH is not 1.6: %s" % _version(binary).strip())
    text = subprocess.run([binary, "config", "default"], capture_output=True, text=True, check=True).stdout
    # What an administrator adds: comments above and beside keys.
    return binary, "# node configuration, edited by hand\n" + text.replace(
        "\n", "  # keep this\n", 1)


def dumped_config_path(binary, path, tmp_path):
    """The registry config_path containerd itself reads from ``path`` (it migrates version 2)."""
    dump = subprocess.run([binary, "--config", str(path), "config", "dump"], capture_output=True,
                          text=True, check=True, cwd=str(tmp_path)).stdout
    document = tomllib.loads(dump)
    version = document.get("version", 1)
    return ct._dig(document, ct.CONFIG_REGISTRY_TABLES[version] + ("config_path",)), version


@pytest.mark.parametrize("name, version, key", [
    ("debian-1.6", 2, 'plugins."io.containerd.grpc.v1.cri".registry.config_path'),
    # containerd 2.4 writes version 4 (and migrates 3 to it); the key is the one of 3.
    ("2.4.2", 4, 'plugins."io.containerd.cri.v1.images".registry.config_path'),
])
def test_real_default_config_is_understood_and_edited_in_place(name, version, key, tmp_path):
    binary, text = default_config(name)
    report = ct.inspect_containerd_config(tomllib.loads(text), ROOT)
    assert report["version"] == version and report["key"] == key
    assert report["legacy_mirrors"] == [] and report["misplaced_key"] is None

    planned = ct.plan_config({"path": "/c.toml", "exists": True, "text": text, "mode": 0o644}, ROOT, "set", None)
    if report["ok"]:  # a default that already names /etc/containerd/certs.d
        assert planned["action"] == "unchanged"
        return
    assert planned["action"] == "updated" and planned["changed"]
    edited = planned["text"]
    # Only the config_path line changed: comments, quoting, order and blank lines are kept.
    changed = [line for line in difflib.unified_diff(text.splitlines(), edited.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 2 and all("config_path" in line for line in changed), changed
    assert "# node configuration, edited by hand" in edited and "  # keep this" in edited
    again = ct.plan_config({"path": "/c.toml", "exists": True, "text": edited, "mode": 0o644}, ROOT, "set", None)
    assert again["action"] == "unchanged" and again["ok"]

    # The same containerd reads the edited file and uses our directory.
    path = tmp_path / "config.toml"
    path.write_text(edited)
    value, dumped_version = dumped_config_path(binary, path, tmp_path)
    assert ROOT in value.split(":"), (dumped_version, value)


def test_containerd_2_migrates_a_version_2_file_with_the_config_path_we_set(tmp_path):
    if not BINARIES["2.4.2"]:
        pytest.skip("containerd 2.4.2 is not built (tests/cluster/build-go.sh containerd)")
    edited = ct.with_config_path('version = 2\n# mirrors go to hosts.toml\n', ROOT)
    path = tmp_path / "config.toml"
    path.write_text(edited)
    value, version = dumped_config_path(BINARIES["2.4.2"], path, tmp_path)
    assert version >= 3 and value == ROOT


def test_keys_by_version_and_other_entries_kept():
    v2 = tomllib.loads('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                       'config_path = "/etc/containerd/certs.d"\n')
    report = ct.inspect_containerd_config(v2, "/etc/containerd/certs.d/")
    assert report["ok"] and report["version"] == 2
    v3 = tomllib.loads("version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n"
                       "config_path = '/etc/docker/certs.d:/etc/containerd/certs.d'\n")
    assert ct.inspect_containerd_config(v3, ROOT)["ok"]
    v1 = tomllib.loads('[plugins.cri.registry]\nconfig_path = "/etc/containerd/certs.d"\n')
    assert ct.inspect_containerd_config(v1, ROOT)["ok"]


def test_version_3_file_as_the_node_writes_it_migrated_by_containerd_2(tmp_path):
    if not BINARIES["2.4.2"]:
        pytest.skip("containerd 2.4.2 is not built (tests/cluster/build-go.sh containerd)")
    text = ("version = 3\n\n# pulls through hosts.toml\n[plugins.'io.containerd.cri.v1.images'.registry]\n"
            "  config_path = '/etc/docker/certs.d'\n")
    edited = ct.with_config_path(text, ROOT)
    # Only the config_path line changes (tomlkit releases differ in the quotes they keep).
    changed = [(old, new) for old, new in zip(text.splitlines(), edited.splitlines()) if old != new]
    assert len(edited.splitlines()) == len(text.splitlines()) and len(changed) == 1, edited
    assert changed[0][1].strip() in ('config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"',
                                     "config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'")
    path = tmp_path / "config.toml"
    path.write_text(edited)
    value, version = dumped_config_path(BINARIES["2.4.2"], path, tmp_path)
    assert version == 4 and value == ROOT + ":/etc/docker/certs.d"


def test_version_2_key_in_a_version_3_file_is_reported():
    misplaced = tomllib.loads('version = 3\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                              'config_path = "/etc/containerd/certs.d"\n')
    report = ct.inspect_containerd_config(misplaced, ROOT)
    assert not report["ok"]
    assert report["misplaced_key"] == 'plugins."io.containerd.grpc.v1.cri".registry.config_path'
    planned = ct.plan_config({"path": "/c.toml", "exists": True, "mode": 0o644,
                              "text": 'version = 3\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                                      'config_path = "/etc/containerd/certs.d"\n'}, ROOT, "check", None)
    assert any("which containerd 2.x does not read there" in w for w in planned["warnings"])


def test_legacy_mirrors_are_reported_only_when_not_empty():
    text = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors]\n'
    assert ct.inspect_containerd_config(tomllib.loads(text), "/x")["legacy_mirrors"] == []
    text += '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://m"]\n'
    assert ct.inspect_containerd_config(tomllib.loads(text), "/x")["legacy_mirrors"] == ["docker.io"]
    with pytest.raises(ContainerdHostsError, match="legacy registry.mirrors"):
        ct.plan_config({"path": "/c.toml", "exists": True, "text": text, "mode": 0o644}, "/x", "set", None)


def test_setting_config_path_keeps_everything_else():
    text = ('version = 2\nroot = "/var/lib/containerd"  # on the data disk\n\n'
            '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/docker/certs.d"\n\n'
            '# CNI from the distribution\n[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/usr/lib/cni"\n')
    edited = ct.with_config_path(text, ROOT)
    assert edited == text.replace('config_path = "/etc/docker/certs.d"',
                                  'config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"')


def test_a_missing_table_is_added_and_read_back():
    text = 'version = 2\n# only this\n[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/usr/lib/cni"\n'
    edited = ct.with_config_path(text, ROOT)
    assert edited.startswith(text)
    document = tomllib.loads(edited)
    assert document["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == ROOT
    assert document["plugins"]["io.containerd.grpc.v1.cri"]["cni"] == {"bin_dir": "/usr/lib/cni"}


def test_new_config_follows_the_containerd_major_version():
    assert tomllib.loads(ct.new_containerd_config("/c", (2, 1, 0)))["plugins"] == {
        "io.containerd.cri.v1.images": {"registry": {"config_path": "/c"}}}
    assert tomllib.loads(ct.new_containerd_config("/c", (1, 7, 0)))["version"] == 2
    with pytest.raises(ContainerdHostsError, match="version"):
        ct.inspect_containerd_config({"version": 9}, "/c")


def test_plan_config_actions():
    missing = {"path": "/c.toml", "exists": False, "text": None, "mode": None}
    assert ct.plan_config(missing, ROOT, "check", None)["action"] == "absent"
    created = ct.plan_config(missing, ROOT, "set", (2, 4, 2))
    assert created["action"] == "created" and tomllib.loads(created["text"])["version"] == 3
    checked = ct.plan_config(dict(missing, exists=True, text="version = 2\n"), ROOT, "check", None)
    assert checked["action"] == "unchanged" and not checked["ok"] and "will not use" in checked["warnings"][0]
