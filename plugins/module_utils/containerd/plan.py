# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure plan of containerd registry host configuration (``<config_path>/<registry>/hosts.toml``).

Plain data in, plain data out, no file access: validate a declaration, name the registry
directory the way containerd looks it up, build and render the TOML document, compare
documents semantically, redact header values, decide what to do with one registry
directory (``plan_registry``) and which managed directories to prune (``plan_prune``),
and build the cluster-mode bundle (ConfigMap data and the manifest the DaemonSet's
script reads). ``client.py`` observes and writes the node's files; ``runners.py`` joins
the two for the module.

Documents are written with ``tomli_w`` and read back with ``tomllib`` (``tomli`` before
Python 3.11): never with string templates, since containerd silently ignores a
malformed file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import traceback

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.ibmcloud.registry.plugins.module_utils.common.redaction import REDACTED
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import fingerprint

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
    return _matched(_REGISTRY, registry, "%s %r is not a registry host namespace: use host, host:port, "
                    "[ipv6]:port or _default, without scheme or path" % (where, registry))


def configmap_key(directory):
    """A ConfigMap key for a registry directory (keys allow only ``-._A-Za-z0-9``)."""
    return _CONFIGMAP_KEY_UNSAFE.sub("_", directory) + "." + HOSTS_FILE


def _matched(pattern, value, message):
    """``value`` if ``pattern`` matches it, its port (if any) 1 to 65535; else ContainerdHostsError."""
    match = pattern.match(value) if isinstance(value, str) else None
    port = match.group("port") if match else None
    if not match or not (port is None or 0 < int(port) < 65536):
        raise ContainerdHostsError(message)
    return value


def validate_url(url, where):
    """An http(s) URL of a registry host, with an optional path; returned unchanged."""
    return _matched(_URL, url, "%s %r is not a registry URL: use http(s)://host[:port][/path] without "
                    "credentials, query or fragment" % (where, url))


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
    except RecursionError:
        raise ContainerdHostsError("%s is not valid TOML: nested too deeply" % where)


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


# --- one registry directory: what to do ----------------------------------------------------

def relative_directory(directory, path):
    """Where containerd looks for a ``ca``/``client`` path: absolute, or beside hosts.toml."""
    return path if os.path.isabs(path) else os.path.join(directory, path)


def plan_registry(spec, observed, version):
    """What to do with one registry directory; pure.

    ``spec``: a normalized declaration. ``observed`` (from ``client.observe_registry``):
    ``directory``, ``path``, ``exists``, ``text`` (the file's content or None), ``mode``,
    ``managed`` (the marker file is there) and ``files`` (every ``ca``/``client`` path the
    declaration names, resolved, to whether it exists). ``version``: the node's containerd
    version or None.

    Returns ``{"action": created|updated|unchanged|deleted|absent, "warnings": [...],
    "errors": [...], ...}``; ``errors`` make the module fail before any write.
    """
    plan = {"spec": spec, "directory": observed["directory"], "path": observed["path"],
            "exists": observed["exists"], "warnings": [], "errors": []}
    current = None
    if observed["exists"]:
        try:
            current = parse_toml(observed["text"], observed["path"])
        except ContainerdHostsError as exc:
            plan["warnings"].append("%s; it will be replaced" % exc)
            current = {"<unparsable>": True}
    plan["current"] = current
    if spec["state"] == "absent":
        plan["action"] = "deleted" if observed["exists"] or observed["managed"] else "absent"
        return plan

    errors, warnings = version_problems(spec, version)
    plan["warnings"].extend(warnings)
    for where, cert_path in certificate_paths(spec):
        if observed["files"].get(relative_directory(observed["directory"], cert_path)):
            continue
        if os.path.isabs(cert_path):
            plan["warnings"].append("registry %s: %s file %s does not exist (yet)"
                                    % (spec["directory"], where, cert_path))
        else:
            errors.append("registry %s: %s path %s is relative to %s and does not exist there"
                          % (spec["directory"], where, cert_path, observed["directory"]))
    plan["errors"] = errors

    desired = build_document(spec)
    plan.update(desired=desired, text=render_spec(spec), mode=file_mode(desired))
    plan["content_changed"] = current is None or not same_document(current, desired)
    plan["mode_changed"] = observed["exists"] and observed["mode"] != plan["mode"]
    plan["marker_missing"] = not observed["managed"]
    if not observed["exists"]:
        plan["action"] = "created"
    elif plan["content_changed"] or plan["mode_changed"] or plan["marker_missing"]:
        plan["action"] = "updated"
    else:
        plan["action"] = "unchanged"
    return plan


def diff_text(document):
    """A document as TOML for ``--diff``, header values redacted; "" for no document."""
    if document is None:
        return ""
    if "<unparsable>" in document:
        return "# the existing file is not valid TOML\n"
    return render_toml(redact_document(document))


def plan_prune(listing, keep):
    """Managed registry directories that are not in ``keep``; ``listing``: name -> managed."""
    return sorted(name for name, managed in listing.items() if managed and name not in keep)


# --- cluster mode: ConfigMap data and the manifest of the DaemonSet's script -------------

MANIFEST_KEY = "manifest"


def cluster_bundle(registries, prune=False, script=""):
    """ConfigMap data and checksum for cluster mode.

    Returns ``{"data": {key: text}, "checksum": "scrypt:...", "directories":
    {directory: key}, "sensitive": bool, "marker": MARKER_FILE}``. ``data`` holds one
    hosts.toml per present registry and ``manifest``, the lines the role's init-container
    script (``roles/containerd_hosts/templates/``) follows: ``install <key> <directory>
    <mode>``, ``remove <directory>``, ``prune``. Directory names are validated, so they
    hold no blank or shell character. ``script`` is the rendered script: the checksum
    covers it too, so a new script rolls the DaemonSet as new data does. ``sensitive`` is
    true when a header is set: the role then stores the data in a Secret.
    """
    specs = [normalize_spec(r) for r in registries or []]
    directories = [s["directory"] for s in specs]
    duplicates = sorted(set(d for d in directories if directories.count(d) > 1))
    if duplicates:
        raise ContainerdHostsError("registry %s is declared twice" % ", ".join(duplicates))
    data, keys, lines, sensitive = {}, {}, [], False
    for spec in specs:
        if spec["state"] == "absent":
            lines.append("remove %s" % spec["directory"])
            continue
        key = configmap_key(spec["directory"])
        if key in data:
            raise ContainerdHostsError("registries %s and %s map to the same ConfigMap key %s"
                                       % ([d for d, k in keys.items() if k == key][0], spec["directory"], key))
        document = build_document(spec)
        data[key] = render_spec(spec)
        keys[spec["directory"]] = key
        sensitive = sensitive or has_headers(document)
        lines.append("install %s %s %04o" % (key, spec["directory"], file_mode(document)))
    if prune:
        lines.append("prune")
    data[MANIFEST_KEY] = "".join(line + "\n" for line in lines)
    # The checksum is an annotation anyone who may read DaemonSets sees, and the data can
    # hold header values (credentials): the collection's slow, salted fingerprint, not a hash
    # that a guessed header could be checked against.
    return {"data": data, "checksum": fingerprint({"data": data, "script": script or ""}), "directories": keys,
            "sensitive": sensitive, "marker": MARKER_FILE}
