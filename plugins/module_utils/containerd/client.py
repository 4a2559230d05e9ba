# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one client of the containerd part: the node's files and its containerd binary.

``observe_*`` read what the pure plan needs as plain dicts; the writers below are the
only code that changes a file, always atomically and with the final mode set first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd.plan import (
    DIRECTORY_MODE, HOSTS_FILE, MARKER_FILE, MARKER_TEXT, MODE_PLAIN, certificate_paths, parse_version,
    relative_directory)


def _read(path):
    with open(path, "r") as handle:
        return handle.read()


def _mode_of(path):
    return os.stat(path).st_mode & 0o7777


def is_managed(directory):
    return os.path.isfile(os.path.join(directory, MARKER_FILE))


def observe_registry(config_path, spec):
    """The registry directory of a normalized declaration, as ``plan.plan_registry`` reads it."""
    directory = os.path.join(config_path, spec["directory"])
    path = os.path.join(directory, HOSTS_FILE)
    exists = os.path.isfile(path)
    files = {}
    for _where, cert_path in certificate_paths(spec):
        resolved = relative_directory(directory, cert_path)
        files[resolved] = os.path.exists(resolved)
    return {"directory": directory, "path": path, "exists": exists,
            "text": _read(path) if exists else None, "mode": _mode_of(path) if exists else None,
            "managed": is_managed(directory), "files": files}


def observe_listing(config_path):
    """Registry directory name -> whether it carries the marker file."""
    if not os.path.isdir(config_path):
        return {}
    return dict((name, is_managed(os.path.join(config_path, name))) for name in os.listdir(config_path))


def observe_file(path):
    exists = os.path.exists(path)
    return {"path": path, "exists": exists, "text": _read(path) if exists else None,
            "mode": _mode_of(path) if exists else None}


def containerd_version(module):
    """The node's containerd version from ``containerd --version``, or None."""
    binary = module.get_bin_path("containerd")
    if not binary:
        return None
    rc, out, _err = module.run_command([binary, "--version"])
    return parse_version(out) if rc == 0 else None


def write_atomically(module, path, text, mode):
    """Write ``text`` to ``path`` through a temp file in the same directory, mode set first."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, DIRECTORY_MODE)
    handle, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temp, mode)
        # A new file gets 0666 & ~umask from atomic_move: choose the umask that gives `mode`,
        # so a file with credentials is never readable by others, not even for a moment.
        previous = os.umask(0o777 & ~mode & 0o666)
        try:
            module.atomic_move(temp, path, keep_dest_attrs=False)
        finally:
            os.umask(previous)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    module.set_mode_if_different(path, mode, False)


def set_mode(module, path, mode):
    module.set_mode_if_different(path, mode, False)


def write_marker(module, directory):
    write_atomically(module, os.path.join(directory, MARKER_FILE), MARKER_TEXT, MODE_PLAIN)


def remove_registry(directory):
    """hosts.toml and the marker; the directory too when nothing else is left in it."""
    for leaf in (HOSTS_FILE, MARKER_FILE):
        if os.path.exists(os.path.join(directory, leaf)):
            os.unlink(os.path.join(directory, leaf))
    try:
        os.rmdir(directory)
    except OSError:
        pass  # something else lives there (certificates, backups): leave it
