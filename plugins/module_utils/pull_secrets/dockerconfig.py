# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one dockerconfig builder, and the IBM Cloud Container Registry domain table.

Pure functions: build the ``{"auths": {...}}`` document of a
``kubernetes.io/dockerconfigjson`` secret, parse what a cluster holds (also the
legacy ``.dockercfg`` shape of OpenShift's ``*-dockercfg-*`` secrets), compare
semantically, fingerprint, and redact for diffs. Nothing here returns or logs a
password except ``encode_secret_data``, whose output goes only to the API server.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import json
import re

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.redaction import REDACTED

# IAM region -> public registry domain (private domain is "private." + public).
ICR_REGION_DOMAINS = {
    "global": "icr.io",
    "au-syd": "au.icr.io",
    "br-sao": "br.icr.io",
    "ca-mon": "ca2.icr.io",
    "ca-tor": "ca.icr.io",
    "eu-de": "de.icr.io",
    "eu-es": "es.icr.io",
    "eu-gb": "uk.icr.io",
    "in-che": "in.icr.io",
    "in-mum": "in2.icr.io",
    "jp-osa": "jp2.icr.io",
    "jp-tok": "jp.icr.io",
    "us-south": "us.icr.io",
}
ICR_ENDPOINTS = ("public", "private")
IAM_API_KEY_USERNAME = "iamapikey"
ENTITLED_REGISTRY = "cp.icr.io"
ENTITLED_USERNAME = "cp"
DOCKERCONFIGJSON_TYPE = "kubernetes.io/dockerconfigjson"
DOCKERCONFIGJSON_KEY = ".dockerconfigjson"
DOCKERCFG_TYPE = "kubernetes.io/dockercfg"
DOCKERCFG_KEY = ".dockercfg"

# host[:port][/path] with an optional http(s):// prefix, as docker and kubectl accept.
_SERVER = re.compile(
    r"^(https?://)?"
    r"(?P<host>[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])"
    r"(:(?P<port>[0-9]{1,5}))?"
    r"(/[A-Za-z0-9._~/-]*)?$"
)


class DockerConfigError(ValueError):
    """A dockerconfig that cannot be built or parsed; the message names the problem."""


def icr_domains(regions=None, endpoints=None):
    """Registry domains for IAM regions ('all' or None: every region) and endpoints.

    Raises DockerConfigError listing the valid regions when one is unknown.
    """
    regions = list(regions or ["all"])
    endpoints = list(endpoints or ICR_ENDPOINTS)
    if "all" in regions:
        regions = sorted(ICR_REGION_DOMAINS)
    unknown = [r for r in regions if r not in ICR_REGION_DOMAINS]
    if unknown:
        raise DockerConfigError("unknown IAM region(s) %s; valid regions are: all, %s"
                                % (", ".join(unknown), ", ".join(sorted(ICR_REGION_DOMAINS))))
    bad = [e for e in endpoints if e not in ICR_ENDPOINTS]
    if bad:
        raise DockerConfigError("unknown endpoint(s) %s; valid endpoints are: public, private"
                                % ", ".join(bad))
    domains = []
    for region in regions:
        public = ICR_REGION_DOMAINS[region]
        if "public" in endpoints:
            domains.append(public)
        if "private" in endpoints:
            domains.append("private." + public)
    return domains


def server_error(server):
    """Why ``server`` is not a usable registry server, or None."""
    if not isinstance(server, str) or not server.strip():
        return "registry server must be a non-empty string"
    match = _SERVER.match(server)
    if not match:
        return ("%r is not a registry server (expected host[:port][/path], optionally "
                "with http:// or https://)" % server)
    if match.group("port") and not 0 < int(match.group("port")) < 65536:
        return "%r has an invalid port" % server
    return None


def registry_entry(username, password, email=None):
    """One ``auths`` entry; ``auth`` is always base64 of ``username:password``."""
    if not username:
        raise DockerConfigError("registry username must not be empty")
    if password is None or password == "":
        raise DockerConfigError("registry password must not be empty")
    if ":" in username:
        raise DockerConfigError("registry username must not contain ':'")
    token = base64.b64encode(("%s:%s" % (username, password)).encode("utf-8")).decode("ascii")
    entry = {"username": username, "password": password, "auth": token}
    if email:
        entry["email"] = email
    return entry


def build_dockerconfig(servers, username, password, email=None):
    """``{"auths": {server: entry}}`` with the same credentials for every server."""
    entry = registry_entry(username, password, email)
    return {"auths": dict((server, dict(entry)) for server in servers)}


# The API server refuses a Secret whose data values add up to more than 1 MiB.
MAX_SECRET_BYTES = 1024 * 1024


def size_error(config, option=None):
    """Why a secret holding ``config`` would be refused for its size, or None.

    ``option`` names what made it large (for example ``registry.password``).
    """
    size = len(canonical(config).encode("utf-8"))
    if size <= MAX_SECRET_BYTES:
        return None
    return "%sthe secret would hold %d bytes, more than the %d bytes (1 MiB) a Secret may hold" % (
        "%s: " % option if option else "", size, MAX_SECRET_BYTES)


def encode_secret_data(config):
    """Secret ``data`` for a dockerconfigjson secret (compact, key-sorted JSON)."""
    raw = json.dumps(config, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return {DOCKERCONFIGJSON_KEY: base64.b64encode(raw).decode("ascii")}


def decode_secret(secret_type, data, where):
    """The ``{"auths": ...}`` document held by a secret's ``data`` (base64 values).

    Accepts dockerconfigjson and the legacy dockercfg shape (no ``auths`` wrapper).
    ``where`` names the secret in error messages; values never appear in them.
    """
    key = DOCKERCFG_KEY if secret_type == DOCKERCFG_TYPE else DOCKERCONFIGJSON_KEY
    if secret_type not in (DOCKERCONFIGJSON_TYPE, DOCKERCFG_TYPE):
        raise DockerConfigError("%s has type %s, not %s" % (where, secret_type, DOCKERCONFIGJSON_TYPE))
    encoded = (data or {}).get(key)
    if not encoded:
        raise DockerConfigError("%s has no %s key" % (where, key))
    try:
        document = json.loads(base64.b64decode(encoded).decode("utf-8"))
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise DockerConfigError("%s: %s is not valid base64-encoded JSON" % (where, key))
    if not isinstance(document, dict):
        raise DockerConfigError("%s: %s is not a JSON object" % (where, key))
    if key == DOCKERCFG_KEY:
        document = {"auths": document}
    if not isinstance(document.get("auths"), dict):
        raise DockerConfigError("%s: %s has no \"auths\" object" % (where, key))
    for server, entry in document["auths"].items():
        if not isinstance(entry, dict):
            raise DockerConfigError("%s: %s: the entry for %s is not an object" % (where, key, server))
    return document


def credentials(entry):
    """(username, password) of one ``auths`` entry, from its fields or its ``auth``.

    OpenShift 4.16+ dockercfg entries carry only ``auth``.
    """
    username, password = entry.get("username"), entry.get("password")
    if (not username or password is None) and entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"]).decode("utf-8")
        except (ValueError, TypeError, UnicodeDecodeError):
            raise DockerConfigError("an auths entry has an auth field that is not base64")
        username, _sep, password = decoded.partition(":")
    if not username or not password:
        raise DockerConfigError("an auths entry has no username and password")
    return username, password


def canonical(config):
    """Compact, key-sorted JSON: equal documents give equal text."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


# The fingerprint's cost: scrypt with N=2^14, r=8 (16 MiB and about 0.1 s of CPU per
# computation), so that each password guess against a published fingerprint costs as much.
_FINGERPRINT_COST = dict(n=2 ** 14, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
_FINGERPRINT_CONTEXT = b"ibmcloud.registry fingerprint v2\0"


def fingerprint(config):
    """``scrypt:<hex>`` of the canonical document, safe to show in results.

    The same document gives the same fingerprint in every cluster and run, so results
    compare secrets without showing them. Not a plain hash of the secret: the salt is
    the document without its secret values (servers, usernames, emails), so one guess
    checks one target only, and scrypt makes every guess cost memory and CPU time.
    ``config`` is a dockerconfig document or any other JSON value (an API key).
    """
    public = canonical(redact(config) if isinstance(config, dict) and "auths" in config else None)
    salt = hashlib.sha256(_FINGERPRINT_CONTEXT + public.encode("utf-8")).digest()
    digest = hashlib.scrypt(canonical(config).encode("utf-8"), salt=salt, **_FINGERPRINT_COST)
    return "scrypt:" + binascii.hexlify(digest).decode("ascii")


SECRET_FIELDS = ("password", "auth", "identitytoken", "registrytoken")


def redact(config, compare_to=None):
    """The document with secret values hidden: servers, usernames and emails only.

    With ``compare_to`` (the other side of a diff), a hidden value that differs from
    the other side's is shown as ``REDACTED + " (changed)"`` so a diff still tells
    that a password changed without telling what it is.
    """
    if config is None:
        return None
    others = (compare_to or {}).get("auths") or {}
    auths = {}
    for server, entry in sorted((config.get("auths") or {}).items()):
        other = others.get(server) or {}
        shown = {}
        for field, value in sorted(entry.items()):
            if field in SECRET_FIELDS:
                changed = compare_to is not None and other.get(field) != value
                shown[field] = REDACTED + (" (changed)" if changed else "")
            else:
                shown[field] = value
        auths[server] = shown
    return {"auths": auths}
