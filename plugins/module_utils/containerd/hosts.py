# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd registry host configuration (``<config_path>/<registry>/hosts.toml``).

Pure functions first: validate structured options, name the registry directory the way
containerd looks it up, build the TOML document, compare documents semantically,
redact header values, inspect containerd's own ``config.toml``, translate kubespray's
``containerd_registries_mirrors``, and build the cluster-mode bundle (ConfigMap data and
the init container script). ``run`` at the end is the only code that touches files; it
is what the ``containerd_hosts`` module calls.

Documents are written with ``tomli_w`` and read back with ``tomllib`` (``tomli`` before
Python 3.11): never with string templates, since containerd silently ignores a
malformed file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json
import os
import re
import tempfile
import traceback

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.ibmcloud.registry.plugins.module_utils.common.redaction import REDACTED

try:
    import tomli_w
    HAS_TOMLI_W = True
    TOMLI_W_IMPORT_ERROR = None
except ImportError:
    HAS_TOMLI_W = False
    TOMLI_W_IMPORT_ERROR = traceback.format_exc()

try:
    import tomllib as toml_reader
    HAS_TOML_READER = True
    TOML_READER_IMPORT_ERROR = None
except ImportError:
    try:
        import tomli as toml_reader
        HAS_TOML_READER = True
        TOML_READER_IMPORT_ERROR = None
    except ImportError:
        HAS_TOML_READER = False
        TOML_READER_IMPORT_ERROR = traceback.format_exc()

HOSTS_FILE = "hosts.toml"
# A sidecar file, not a comment: comments are not semantic, so a comment could not
# survive a semantic comparison or a hand edit, and containerd ignores this name.
MARKER_FILE = ".managed-by-ibmcloud.registry"
MARKER_TEXT = ("This registry directory is managed by the ibmcloud.registry collection "
               "(containerd_hosts).\nRemove this file to stop it from being pruned.\n")
DEFAULT_REGISTRY = "_default"
DEFAULT_CONFIG_PATH = "/etc/containerd/certs.d"
CAPABILITIES = ("pull", "resolve", "push", "referrers")
MODE_PLAIN = 0o644
MODE_WITH_HEADERS = 0o600  # header values are usually credentials
DIRECTORY_MODE = 0o755

# Features that older containerd releases do not understand. An unknown capability
# makes containerd ignore the whole file; an unknown key is merely ignored.
REFERRERS_SINCE = (2, 2)
DIAL_TIMEOUT_SINCE = (2, 0, 7)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = r"%s(?:\.%s)*" % (_LABEL, _LABEL)
_IPV6 = r"\[[0-9A-Fa-f:.]+\]"
_PORT = r"(?::(?P<port>[0-9]{1,5}))?"
_REGISTRY = re.compile(r"^(?P<host>%s|%s)%s$" % (_HOSTNAME, _IPV6, _PORT))
_URL = re.compile(r"^(?P<scheme>https?)://(?P<host>%s|%s)%s(?P<path>/[A-Za-z0-9._~/-]*)?$"
                  % (_HOSTNAME, _IPV6, _PORT))
_GO_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|\u00b5s|ms|s|m|h))+$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONFIGMAP_KEY_UNSAFE = re.compile(r"[^-._A-Za-z0-9]")
_VERSION = re.compile(r"(?<![\w.])v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?")

# containerd config.toml: where CRI's registry settings live, by config version.
CONFIG_REGISTRY_TABLES = {
    1: ("plugins", "cri", "registry"),
    2: ("plugins", "io.containerd.grpc.v1.cri", "registry"),
    3: ("plugins", "io.containerd.cri.v1.images", "registry"),
}


class ContainerdHostsError(ValueError):
    """Invalid options or files; the message names the option and what is wrong."""


# --- names -----------------------------------------------------------------------------

def registry_directory(registry, where="registry"):
    """The directory name containerd looks up for a registry host namespace.

    ``host``, ``host:port``, ``[v6]:port`` or ``_default``. containerd also tries
    ``host_port_``; this collection always writes the ``host:port`` form.
    """
    if not isinstance(registry, str) or not registry:
        raise ContainerdHostsError("%s must be a registry host such as docker.io, myreg:5000 "
                                   "or _default" % where)
    if registry == DEFAULT_REGISTRY:
        return registry
    match = _REGISTRY.match(registry)
    if not match or not _valid_port(match.group("port")):
        raise ContainerdHostsError(
            "%s %r is not a registry host namespace: use host, host:port, [ipv6]:port or "
            "_default, without scheme or path" % (where, registry))
    return registry


def configmap_key(directory):
    """A ConfigMap key for a registry directory (keys allow only ``-._A-Za-z0-9``)."""
    return _CONFIGMAP_KEY_UNSAFE.sub("_", directory) + "." + HOSTS_FILE


def _valid_port(port):
    return port is None or 0 < int(port) < 65536


def validate_url(url, where):
    """An http(s) URL of a registry host, with an optional path; returned unchanged."""
    match = _URL.match(url) if isinstance(url, str) else None
    if not match or not _valid_port(match.group("port")):
        raise ContainerdHostsError(
            "%s %r is not a registry URL: use http(s)://host[:port][/path] without "
            "credentials, query or fragment" % (where, url))
    return url


def parse_version(text):
    """(major, minor, patch) from a version string or ``containerd --version`` output."""
    match = _VERSION.search(text or "")
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


# --- options -> canonical settings ------------------------------------------------------

def _string_list(value, where):
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not values:
        raise ContainerdHostsError("%s must be a path or a non-empty list of paths" % where)
    for item in values:
        if not isinstance(item, str) or not item:
            raise ContainerdHostsError("%s must contain non-empty strings, got %r" % (where, item))
    return list(values)


def _client_entries(value, where):
    """Client certificates: paths to combined files, or [cert, key] pairs, not mixed."""
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ContainerdHostsError("%s must be a list of paths or of {cert, key} pairs" % where)
    entries = []
    for item in items:
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"cert", "key"})
            if unknown or not item.get("cert"):
                raise ContainerdHostsError("%s entries must be {cert, key}, got keys %s"
                                           % (where, ", ".join(sorted(item))))
            item = [item["cert"], item["key"]] if item.get("key") else item["cert"]
        if isinstance(item, (list, tuple)):
            if len(item) != 2 or not all(isinstance(p, str) and p for p in item):
                raise ContainerdHostsError("%s pairs must be [certificate, key], got %r" % (where, item))
            entries.append(list(item))
        elif isinstance(item, str) and item:
            entries.append(item)
        else:
            raise ContainerdHostsError("%s entries must be paths or {cert, key}, got %r" % (where, item))
    if len(set(isinstance(e, list) for e in entries)) > 1:
        raise ContainerdHostsError("%s mixes single files and cert/key pairs; containerd before 2.0 "
                                   "cannot read such an array, use one form" % where)
    return entries


def _headers(value, where):
    if not isinstance(value, dict):
        raise ContainerdHostsError("%s must be a mapping of header name to value(s)" % where)
    headers = {}
    for name, values in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ContainerdHostsError("%s has an invalid header name %r" % (where, name))
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, (list, tuple)) or not values or not all(
                isinstance(v, str) and "\n" not in v and "\r" not in v for v in values):
            # The value is never echoed: headers usually carry credentials.
            raise ContainerdHostsError("%s[%s] must be a string or a list of single-line strings"
                                       % (where, name))
        headers[name] = list(values)
    return headers


def normalize_settings(options, where):
    """Validated per-host settings from module-style options (None values dropped)."""
    options = dict(options or {})
    known = ("capabilities", "ca", "client", "skip_verify", "headers", "override_path", "dial_timeout")
    unknown = sorted(k for k in options if k not in known and k != "url")
    if unknown:
        raise ContainerdHostsError("%s has unknown option(s) %s; known: %s"
                                   % (where, ", ".join(unknown), ", ".join(known)))
    settings = {}
    capabilities = options.get("capabilities")
    if capabilities is not None:
        if isinstance(capabilities, str):
            capabilities = [capabilities]
        if not capabilities:
            raise ContainerdHostsError("%s.capabilities must not be empty; omit it for containerd's "
                                       "default (pull, resolve, push)" % where)
        wrong = [c for c in capabilities if not isinstance(c, str) or c.lower() not in CAPABILITIES]
        if wrong:
            raise ContainerdHostsError(
                "%s.capabilities has unknown value(s) %s (containerd would ignore the whole file); "
                "valid: %s" % (where, ", ".join(str(c) for c in wrong), ", ".join(CAPABILITIES)))
        settings["capabilities"] = _unique([c.lower() for c in capabilities])
    if options.get("ca") is not None:
        settings["ca"] = _string_list(options["ca"], where + ".ca")
    if options.get("client") is not None:
        settings["client"] = _client_entries(options["client"], where + ".client")
    for flag in ("skip_verify", "override_path"):
        if options.get(flag) is not None:
            try:  # the module's argument spec converts "yes"/"false"; so does the filter path
                settings[flag] = boolean(options[flag], strict=True)
            except TypeError:
                raise ContainerdHostsError("%s.%s must be true or false, got %r" % (where, flag, options[flag]))
    if options.get("headers"):
        settings["headers"] = _headers(options["headers"], where + ".headers")
    if options.get("dial_timeout") is not None:
        timeout = options["dial_timeout"]
        if not isinstance(timeout, str) or not _GO_DURATION.match(timeout):
            raise ContainerdHostsError("%s.dial_timeout %r is not a Go duration such as 3s or 500ms"
                                       % (where, timeout))
        settings["dial_timeout"] = timeout
    return settings


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def normalize_spec(spec):
    """Validate one registry declaration; returns the canonical form used everywhere.

    ``spec``: ``registry``, ``state`` (present|absent), ``server``, ``server_settings``
    (per-host settings for the server, written at the top level), ``hosts`` (ordered list
    of ``{url, <settings>}``).
    """
    if not isinstance(spec, dict):
        raise ContainerdHostsError("a registry declaration must be a mapping, got %r" % type(spec).__name__)
    unknown = sorted(set(spec) - {"registry", "state", "server", "server_settings", "hosts"})
    if unknown:
        raise ContainerdHostsError("registry %r has unknown key(s) %s"
                                   % (spec.get("registry"), ", ".join(unknown)))
    directory = registry_directory(spec.get("registry"))
    state = spec.get("state") or "present"
    if state not in ("present", "absent"):
        raise ContainerdHostsError("registry %s: state must be present or absent, got %r" % (directory, state))
    server = spec.get("server") or None
    if server is not None:
        validate_url(server, "registry %s: server" % directory)
    settings = normalize_settings(spec.get("server_settings"), "registry %s: server_settings" % directory)
    hosts = []
    for index, host in enumerate(spec.get("hosts") or []):
        where = "registry %s: hosts[%d]" % (directory, index)
        if not isinstance(host, dict) or not host.get("url"):
            raise ContainerdHostsError("%s must be a mapping with a url" % where)
        url = validate_url(host["url"], where + ".url")
        if url in [h[0] for h in hosts]:
            raise ContainerdHostsError("%s.url %s is listed twice" % (where, url))
        hosts.append((url, normalize_settings(host, where)))
    return {"registry": directory, "directory": directory, "state": state,
            "server": server, "settings": settings, "hosts": hosts}


# --- document ------------------------------------------------------------------------------

def _settings_to_toml(settings):
    table = {}
    if "capabilities" in settings:
        table["capabilities"] = list(settings["capabilities"])
    if "ca" in settings:
        ca = settings["ca"]
        table["ca"] = ca[0] if len(ca) == 1 else list(ca)
    if "client" in settings:
        client = settings["client"]
        table["client"] = client[0] if len(client) == 1 and isinstance(client[0], str) else [
            list(c) if isinstance(c, list) else c for c in client]
    for key in ("skip_verify", "override_path", "dial_timeout"):
        if key in settings:
            table[key] = settings[key]
    if settings.get("headers"):
        table["header"] = dict((name, values[0] if len(values) == 1 else list(values))
                               for name, values in settings["headers"].items())
    return table


def build_document(spec):
    """The hosts.toml document (a dict for tomli_w) of a normalized declaration."""
    document = {}
    if spec["server"]:
        document["server"] = spec["server"]
    document.update(_settings_to_toml(spec["settings"]))
    # Always a host table, even an empty one: containerd 1.6/1.7 reject a file without it
    # ("invalid `host` tree") and fall back to defaults silently.
    document["host"] = dict((url, _settings_to_toml(settings)) for url, settings in spec["hosts"])
    return document


def render_toml(document):
    if not HAS_TOMLI_W:
        raise ContainerdHostsError("tomli_w is required to write hosts.toml")
    return tomli_w.dumps(document)


def parse_toml(text, where=HOSTS_FILE):
    if not HAS_TOML_READER:
        raise ContainerdHostsError("tomllib (Python 3.11+) or tomli is required to read TOML")
    try:
        return toml_reader.loads(text)
    except toml_reader.TOMLDecodeError as exc:
        raise ContainerdHostsError("%s is not valid TOML: %s" % (where, exc))


def render_spec(spec):
    """Render a declaration (raw or normalized) to hosts.toml text, checked by parsing back."""
    if "directory" not in spec:
        spec = normalize_spec(spec)
    text = render_toml(build_document(spec))
    parse_toml(text, "rendered hosts.toml for %s" % spec["directory"])
    return text


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _canonical_settings(table):
    """Settings of one parsed table in a form where equal meaning compares equal."""
    canonical = {}
    rest = {}
    for key, value in table.items():
        if key == "capabilities" and isinstance(value, list):
            canonical[key] = tuple(sorted(set(str(c).lower() for c in value)))
        elif key in ("ca",):
            canonical[key] = tuple(_as_list(value))
        elif key == "client":
            canonical[key] = tuple(tuple(v) if isinstance(v, list) else v for v in _as_list(value))
        elif key in ("skip_verify", "override_path"):
            if value is not False:  # false is containerd's default: same as absent
                canonical[key] = value
        elif key == "header" and isinstance(value, dict):
            if value:
                canonical[key] = tuple(sorted((k, tuple(_as_list(v))) for k, v in value.items()))
        elif key in ("host", "server"):
            continue
        else:
            rest[key] = json.dumps(value, sort_keys=True, default=str)
    canonical.update(rest)
    return tuple(sorted(canonical.items()))


def canonical_document(document):
    """A comparable form of a parsed hosts.toml: host order kept, formatting ignored."""
    hosts = document.get("host") or {}
    if not isinstance(hosts, dict):
        hosts = {"<invalid host tree>": {"value": hosts}}
    return (
        document.get("server") or None,
        _canonical_settings(document),
        tuple((url, _canonical_settings(table if isinstance(table, dict) else {"<invalid>": table}))
              for url, table in hosts.items()),
    )


def same_document(current, desired):
    return canonical_document(current) == canonical_document(desired)


def has_headers(document):
    if document.get("header"):
        return True
    hosts = document.get("host")
    return isinstance(hosts, dict) and any(
        isinstance(table, dict) and table.get("header") for table in hosts.values())


def file_mode(document):
    return MODE_WITH_HEADERS if has_headers(document) else MODE_PLAIN


def redact_document(document):
    """A copy with every header value replaced by ``********`` (names kept)."""
    redacted = copy.deepcopy(document)

    def _redact(table):
        if isinstance(table, dict) and isinstance(table.get("header"), dict):
            table["header"] = dict((name, REDACTED) for name in table["header"])

    _redact(redacted)
    if isinstance(redacted.get("host"), dict):
        for table in redacted["host"].values():
            _redact(table)
    return redacted


def certificate_paths(spec):
    """(option, path) of every ca and client file a declaration names."""
    paths = []
    tables = [("server_settings", spec["settings"])] + [
        ("hosts[%d]" % index, settings) for index, (_url, settings) in enumerate(spec["hosts"])]
    for where, settings in tables:
        for path in settings.get("ca", []):
            paths.append((where + ".ca", path))
        for entry in settings.get("client", []):
            for path in _as_list(entry):
                paths.append((where + ".client", path))
    return paths


def version_problems(spec, version):
    """(errors, warnings) for features the node's containerd version lacks (None: unknown)."""
    errors, warnings = [], []
    tables = [("server_settings", spec["settings"])] + [
        ("hosts[%d] (%s)" % (index, url), settings) for index, (url, settings) in enumerate(spec["hosts"])]
    shown = ".".join(str(p) for p in version) if version else None
    for where, settings in tables:
        if "referrers" in settings.get("capabilities", []):
            if version is None:
                warnings.append("registry %s: %s uses capability referrers, which containerd before "
                                "2.2 does not know and then ignores the whole file"
                                % (spec["directory"], where))
            elif version < REFERRERS_SINCE:
                errors.append("registry %s: %s uses capability referrers, which containerd %s does not "
                              "know (2.2 or later): it would ignore the whole file"
                              % (spec["directory"], where, shown))
        if "dial_timeout" in settings and version is not None and version < DIAL_TIMEOUT_SINCE:
            warnings.append("registry %s: %s sets dial_timeout, which containerd %s ignores "
                            "(2.0.7 or later)" % (spec["directory"], where, shown))
    return errors, warnings


# --- containerd config.toml -------------------------------------------------------------

def config_version(document):
    version = document.get("version", 1)
    if version not in CONFIG_REGISTRY_TABLES:
        raise ContainerdHostsError("containerd config version %r is not supported (1, 2 or 3)" % (version,))
    return version


def _dig(document, keys):
    for key in keys:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def _paths_in(config_path_value):
    return [os.path.normpath(p) for p in (config_path_value or "").split(":") if p]


def inspect_containerd_config(document, hosts_root):
    """Does containerd's config.toml point CRI's registry ``config_path`` at ``hosts_root``?"""
    version = config_version(document)
    table_keys = CONFIG_REGISTRY_TABLES[version]
    registry = _dig(document, table_keys) or {}
    value = registry.get("config_path") if isinstance(registry, dict) else None
    mirrors = registry.get("mirrors") if isinstance(registry, dict) else None
    return {
        "version": version,
        "key": "%s.config_path" % ".".join('"%s"' % k if "." in k else k for k in table_keys),
        "config_path": value,
        "ok": os.path.normpath(hosts_root) in _paths_in(value),
        "legacy_mirrors": sorted(mirrors) if isinstance(mirrors, dict) and mirrors else [],
    }


def with_config_path(document, hosts_root):
    """A copy of config.toml with ``hosts_root`` first in CRI's registry config_path."""
    version = config_version(document)
    updated = copy.deepcopy(document)
    table = updated
    for key in CONFIG_REGISTRY_TABLES[version]:
        table = table.setdefault(key, {})
        if not isinstance(table, dict):
            raise ContainerdHostsError("containerd config: %s is not a table" % key)
    others = [p for p in (table.get("config_path") or "").split(":")
              if p and os.path.normpath(p) != os.path.normpath(hosts_root)]
    table["config_path"] = ":".join([hosts_root] + others)
    return updated


def new_containerd_config(hosts_root, containerd_version):
    """A minimal config.toml for when none exists: version 3 for containerd 2.x, else 2."""
    version = 3 if containerd_version and containerd_version[0] >= 2 else 2
    return with_config_path({"version": version}, hosts_root)


# --- kubespray migration -----------------------------------------------------------------

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


# --- cluster mode: ConfigMap data and the init container script --------------------------

def _shell_quote(text):
    return "'%s'" % text.replace("'", "'\"'\"'")


_SCRIPT_HEAD = """\
#!/bin/sh
# Written by the ibmcloud.registry containerd_hosts role. Copies hosts.toml files from
# the mounted configuration into containerd's config_path on the node; each file is
# renamed into place so containerd never reads half a file.
set -eu
src="${CONTAINERD_HOSTS_SOURCE:-/config}"
dst="${CONTAINERD_HOSTS_TARGET:-/etc/containerd/certs.d}"
marker=%(marker)s

install_hosts() {  # <key in the ConfigMap> <registry directory> <mode>
  mkdir -p "$dst/$2"
  cp "$src/$1" "$dst/$2/.hosts.toml.new"
  chmod "$3" "$dst/$2/.hosts.toml.new"
  mv -f "$dst/$2/.hosts.toml.new" "$dst/$2/hosts.toml"
  printf '%%s' %(marker_text)s > "$dst/$2/$marker"
  echo "installed $dst/$2/hosts.toml"
}

remove_hosts() {  # <registry directory>
  if [ -e "$dst/$1/hosts.toml" ] || [ -e "$dst/$1/$marker" ]; then
    rm -f "$dst/$1/hosts.toml" "$dst/$1/$marker"
    rmdir "$dst/$1" 2>/dev/null || true
    echo "removed $dst/$1/hosts.toml"
  fi
}

prune_hosts() {  # remove managed directories that are not declared
  for dir in "$dst"/*; do
    [ -f "$dir/$marker" ] || continue
    case "$(basename "$dir")" in
      %(declared)s) ;;
      *) remove_hosts "$(basename "$dir")" ;;
    esac
  done
}

"""


def cluster_bundle(registries, prune=False):
    """ConfigMap data, init container script and checksum for cluster mode.

    Returns ``{"data": {key: toml}, "script": str, "checksum": "sha256:...",
    "directories": {directory: key}, "sensitive": bool}``. ``sensitive`` is true when a
    header is set: the role then stores the data in a Secret instead of a ConfigMap.
    """
    specs = [normalize_spec(r) for r in registries or []]
    directories = [s["directory"] for s in specs]
    duplicates = sorted(set(d for d in directories if directories.count(d) > 1))
    if duplicates:
        raise ContainerdHostsError("registry %s is declared twice" % ", ".join(duplicates))
    data, keys, lines, sensitive = {}, {}, [], False
    for spec in specs:
        if spec["state"] == "absent":
            lines.append("remove_hosts %s" % _shell_quote(spec["directory"]))
            continue
        key = configmap_key(spec["directory"])
        if key in data:
            raise ContainerdHostsError("registries %s and %s map to the same ConfigMap key %s"
                                       % ([d for d, k in keys.items() if k == key][0], spec["directory"], key))
        document = build_document(spec)
        data[key] = render_spec(spec)
        keys[spec["directory"]] = key
        sensitive = sensitive or has_headers(document)
        lines.append("install_hosts %s %s %04o"
                     % (_shell_quote(key), _shell_quote(spec["directory"]), file_mode(document)))
    if prune:
        lines.append("prune_hosts")
    declared = "|".join(_shell_quote(d) for d in directories) or "''"
    script = _SCRIPT_HEAD % {"marker": _shell_quote(MARKER_FILE), "marker_text": _shell_quote(MARKER_TEXT),
                             "declared": declared}
    script += "\n".join(lines) + "\n"
    digest = hashlib.sha256(json.dumps({"data": data, "script": script}, sort_keys=True).encode("utf-8"))
    return {"data": data, "script": script, "checksum": "sha256:" + digest.hexdigest(),
            "directories": keys, "sensitive": sensitive}


# --- the module: plan, then apply ---------------------------------------------------------

def _read(path):
    with open(path, "r") as handle:
        return handle.read()


def _mode_of(path):
    return os.stat(path).st_mode & 0o7777


def _diff_text(document):
    return render_toml(redact_document(document)) if document is not None else ""


def _write_atomically(module, directory, path, text, mode):
    """Write ``text`` to ``path`` through a temp file in the same directory, mode set first."""
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


def _is_managed(directory):
    return os.path.isfile(os.path.join(directory, MARKER_FILE))


def _plan_registry(module, params, version, warnings):
    """What to do for ``registry``: compare the file on disk with the declaration."""
    spec = normalize_spec({
        "registry": params["registry"], "state": params["state"], "server": params["server"],
        "server_settings": params["server_settings"], "hosts": params["hosts"]})
    directory = os.path.join(params["config_path"], spec["directory"])
    path = os.path.join(directory, HOSTS_FILE)
    plan = {"spec": spec, "directory": directory, "path": path, "exists": os.path.isfile(path)}
    current = None
    if plan["exists"]:
        try:
            current = parse_toml(_read(path), path)
        except ContainerdHostsError as exc:
            warnings.append("%s; it will be replaced" % exc)
            current = {"<unparsable>": True}
    plan["current"] = current
    if spec["state"] == "absent":
        plan["action"] = "delete" if plan["exists"] or _is_managed(directory) else "none"
        return plan

    errors, version_warnings = version_problems(spec, version)
    warnings.extend(version_warnings)
    for where, cert_path in certificate_paths(spec):
        if os.path.isabs(cert_path):
            if not os.path.exists(cert_path):
                warnings.append("registry %s: %s file %s does not exist (yet)"
                                % (spec["directory"], where, cert_path))
        elif not os.path.exists(os.path.join(directory, cert_path)):
            errors.append("registry %s: %s path %s is relative to %s and does not exist there"
                          % (spec["directory"], where, cert_path, directory))
    if errors:
        raise ContainerdHostsError("; ".join(errors))

    desired = build_document(spec)
    text = render_spec(spec)
    mode = file_mode(desired)
    plan.update(desired=desired, text=text, mode=mode)
    content_changed = current is None or not same_document(current, desired)
    plan["content_changed"] = content_changed
    plan["mode_changed"] = plan["exists"] and _mode_of(path) != mode
    plan["marker_missing"] = not _is_managed(directory)
    changed = content_changed or plan["mode_changed"] or plan["marker_missing"]
    plan["action"] = ("create" if not plan["exists"] else "update") if changed else "none"
    return plan


def _apply_registry(module, plan, backup, result):
    directory, path = plan["directory"], plan["path"]
    if plan["action"] == "delete":
        if plan["exists"]:
            if backup:
                result["backup_file"] = module.backup_local(path)
            os.unlink(path)
        marker = os.path.join(directory, MARKER_FILE)
        if os.path.exists(marker):
            os.unlink(marker)
        _remove_if_empty(directory)
        return
    if not os.path.isdir(directory):
        os.makedirs(directory, DIRECTORY_MODE)
    if plan["content_changed"]:
        if backup and plan["exists"]:
            result["backup_file"] = module.backup_local(path)
        _write_atomically(module, directory, path, plan["text"], plan["mode"])
    elif plan["mode_changed"]:
        module.set_mode_if_different(path, plan["mode"], False)
    if plan["marker_missing"]:
        _write_atomically(module, directory, os.path.join(directory, MARKER_FILE), MARKER_TEXT, MODE_PLAIN)


def _remove_if_empty(directory):
    try:
        os.rmdir(directory)
    except OSError:
        pass  # something else lives there (certificates, backups): leave it


def _plan_prune(config_path, keep):
    """Managed registry directories under ``config_path`` that are not in ``keep``."""
    if not os.path.isdir(config_path):
        return []
    return sorted(name for name in os.listdir(config_path)
                  if name not in keep and _is_managed(os.path.join(config_path, name)))


def _prune(config_path, names):
    for name in names:
        directory = os.path.join(config_path, name)
        for leaf in (HOSTS_FILE, MARKER_FILE):
            if os.path.exists(os.path.join(directory, leaf)):
                os.unlink(os.path.join(directory, leaf))
        _remove_if_empty(directory)


def detect_containerd_version(module):
    binary = module.get_bin_path("containerd")
    if not binary:
        return None
    rc, out, _err = module.run_command([binary, "--version"])
    return parse_version(out) if rc == 0 else None


def _plan_containerd_config(params, version, warnings):
    path, check = params["containerd_config"], params["containerd_config_check"]
    root = params["config_path"]
    if not os.path.exists(path):
        if check == "check":
            warnings.append("%s does not exist: containerd's CRI plugin does not read %s"
                            % (path, root))
            return {"path": path, "exists": False, "ok": False, "changed": False}
        return {"path": path, "exists": False, "ok": False, "changed": True,
                "document": new_containerd_config(root, version)}
    current = parse_toml(_read(path), path)
    report = inspect_containerd_config(current, root)
    report.update(path=path, exists=True, changed=False)
    if report["legacy_mirrors"]:
        message = ("%s sets legacy registry.mirrors (%s) under %s; containerd refuses config_path "
                   "together with mirrors: move them to hosts.toml" % (
                       path, ", ".join(report["legacy_mirrors"]), report["key"].rsplit(".", 1)[0]))
        if check == "set" and not report["ok"]:
            raise ContainerdHostsError(message)
        warnings.append(message)
    if not report["ok"]:
        if check == "check":
            current = "%r" % report["config_path"] if report["config_path"] else "not set"
            warnings.append("%s: %s is %s, which does not include %s: the CRI plugin (kubelet pulls) "
                            "will not use these hosts.toml files" % (path, report["key"], current, root))
        else:
            report["changed"] = True
            report["document"] = with_config_path(current, root)
    return report


def _apply_containerd_config(module, plan, backup, result):
    path = plan["path"]
    directory = os.path.dirname(path) or "."
    if plan["exists"] and backup:
        result["containerd_config_backup_file"] = module.backup_local(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, DIRECTORY_MODE)
    mode = _mode_of(path) if plan["exists"] else MODE_PLAIN
    _write_atomically(module, directory, path, render_toml(plan["document"]), mode)


def _public_config_report(plan):
    return dict((k, v) for k, v in plan.items() if k != "document")


def run(module):
    """Plan everything (all validation before any write), then apply unless in check mode."""
    params = module.params
    warnings = []
    result = {"changed": False, "pruned": []}
    try:
        for option in ("config_path", "containerd_config"):
            if not os.path.isabs(params[option]):
                raise ContainerdHostsError("%s must be an absolute path, got %s" % (option, params[option]))
        version = parse_version(params["containerd_version"]) if params["containerd_version"] else None
        if params["containerd_version"] and version is None:
            raise ContainerdHostsError("containerd_version %r is not a version such as 1.7 or 2.1.4"
                                       % params["containerd_version"])
        if version is None and (params["registry"] or params["containerd_config_check"] == "set"):
            version = detect_containerd_version(module)
        plan = _plan_registry(module, params, version, warnings) if params["registry"] else None
        keep = None
        if params["prune_except"] is not None:
            keep = set(registry_directory(name, "prune_except entry") for name in params["prune_except"])
            if params["registry"]:
                keep.add(registry_directory(params["registry"]))
        config_plan = None
        if params["containerd_config_check"] != "none":
            config_plan = _plan_containerd_config(params, version, warnings)
    except ContainerdHostsError as exc:
        _warn_all(module, warnings)
        module.fail_json(msg=str(exc))

    to_prune = _plan_prune(params["config_path"], keep) if keep is not None else []
    if plan:
        spec = plan["spec"]
        result.update(path=plan["path"], registry=spec["directory"], action=plan["action"],
                      mode="%04o" % plan["mode"] if "mode" in plan else None)
        if plan["action"] != "none":
            result["changed"] = True
            before = None if not plan["exists"] else plan["current"]
            if before is not None and "<unparsable>" in before:
                before_text = "# the existing file is not valid TOML\n"
            else:
                before_text = _diff_text(before)
            result["diff"] = {"before": before_text,
                              "after": _diff_text(plan.get("desired")),
                              "before_header": plan["path"], "after_header": plan["path"]}
    if to_prune:
        result["changed"] = True
        result["pruned"] = to_prune
    if config_plan is not None:
        result["containerd_config"] = _public_config_report(config_plan)
        result["config_path_ok"] = config_plan["ok"] or (config_plan["changed"] and not module.check_mode)
        result["changed"] = result["changed"] or config_plan["changed"]

    if not module.check_mode:
        try:
            if plan and plan["action"] != "none":
                _apply_registry(module, plan, params["backup"], result)
            _prune(params["config_path"], to_prune)
            if config_plan is not None and config_plan["changed"]:
                _apply_containerd_config(module, config_plan, params["backup"], result)
        except (OSError, IOError) as exc:
            module.fail_json(msg="writing %s failed: %s" % (exc.filename or params["config_path"],
                                                            exc.strerror or exc), **result)
    _warn_all(module, warnings)
    module.exit_json(**result)


def _warn_all(module, warnings):
    for warning in warnings:
        module.warn(warning)
