# -*- coding: utf-8 -*-
"""Fuzzing: dockerconfig secrets as a cluster may hold them (pull_secrets/dockerconfig).

Properties: decoding any secret data raises nothing but DockerConfigError; what decodes
can be compared, fingerprinted and redacted without an exception; build -> encode ->
decode gives back the credentials, for ``.dockerconfigjson`` and the legacy ``.dockercfg``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)
ENTRY_FIELDS = st.sampled_from(["username", "password", "auth", "email", "identitytoken", "registrytoken"])
B64_TEXT = st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode("ascii"))
ENTRIES = JSON_VALUES | st.dictionaries(ENTRY_FIELDS | st.text(max_size=6), JSON_SCALARS | B64_TEXT, max_size=5)
# Mostly {"auths": {server: entry}}, the shape that reaches the code behind the decoder.
DOCUMENTS = st.one_of(st.dictionaries(st.text(max_size=24), ENTRIES, min_size=1, max_size=4).map(lambda a: {"auths": a}),
                      st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4), JSON_VALUES)
SECRET_TYPES = st.sampled_from(["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg", "Opaque", ""])
KEYS = st.sampled_from([".dockerconfigjson", ".dockercfg"])
# Credentials as users give them: no ':' in the user name, no lone surrogates.
USERNAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=":"), min_size=1, max_size=24)
PASSWORDS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=48)
LABELS = st.text("abcz019-", min_size=1, max_size=8)
SERVERS = st.lists(st.builds(lambda labels, port: ".".join(labels) + (":%d" % port if port else ""),
                             st.lists(LABELS, min_size=1, max_size=3), st.none() | st.integers(1, 65535)),
                   min_size=1, max_size=4, unique=True)


def _encode(document):
    return base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")


def _use(fuzz, document, where):
    """Everything the modules do with a decoded document of an existing secret."""
    canonical = fuzz.find("pull_secrets", "canonical")
    assert isinstance(canonical(document), str)
    shown = fuzz.call(fuzz.find("pull_secrets", "fingerprint"), document)
    assert shown is None or isinstance(shown, str)
    fuzz.call(fuzz.find("pull_secrets", "redact"), document)
    fuzz.call(fuzz.find("pull_secrets", "redact"), document, compare_to=document)
    for entry in document["auths"].values():
        pair = fuzz.call(fuzz.find("pull_secrets", "credentials"), entry)
        assert pair is None or len(pair) == 2, where
    fuzz.call(fuzz.find("iam", "candidate_keys"), {"ns": document})


@given(secret_type=SECRET_TYPES, key=KEYS, raw=st.binary(max_size=200))
def test_any_bytes_decode_or_raise_dockerconfig_error(fuzz, secret_type, key, raw):
    decode = fuzz.find("pull_secrets", "decode_secret")
    document = fuzz.call(decode, secret_type, {key: base64.b64encode(raw).decode("ascii")}, "Secret ns/s")
    if document is not None:
        assert isinstance(document["auths"], dict)


@given(secret_type=SECRET_TYPES, key=KEYS, value=st.text(max_size=80) | st.none())
def test_any_text_as_data_value(fuzz, secret_type, key, value):
    # A value that is not base64 at all (a hand-made secret, stringData gone wrong).
    fuzz.call(fuzz.find("pull_secrets", "decode_secret"), secret_type, {key: value}, "Secret ns/s")


@given(document=DOCUMENTS, legacy=st.booleans())
def test_any_json_document_decodes_and_can_be_used(fuzz, document, legacy):
    decode = fuzz.find("pull_secrets", "decode_secret")
    if legacy:  # .dockercfg holds the auths object itself
        document = document.get("auths", document) if isinstance(document, dict) else document
        data = {".dockercfg": _encode(document)}
    else:
        data = {".dockerconfigjson": _encode(document)}
    secret_type = "kubernetes.io/dockercfg" if legacy else "kubernetes.io/dockerconfigjson"
    decoded = fuzz.call(decode, secret_type, data, "Secret ns/s")
    if decoded is not None:
        _use(fuzz, decoded, "Secret ns/s")


@given(servers=SERVERS, username=USERNAMES, password=PASSWORDS, email=st.none() | st.text(max_size=12))
def test_build_encode_decode_gives_back_the_credentials(fuzz, servers, username, password, email):
    build = fuzz.find("pull_secrets", "build_dockerconfig")
    encode = fuzz.find("pull_secrets", "encode_secret_data")
    decode = fuzz.find("pull_secrets", "decode_secret")
    credentials = fuzz.find("pull_secrets", "credentials")
    config = build(servers, username, password, email)
    data = encode(config)
    decoded = decode("kubernetes.io/dockerconfigjson", data, "Secret ns/s")
    assert decoded == config
    assert sorted(decoded["auths"]) == sorted(servers)
    for server in servers:
        assert credentials(decoded["auths"][server]) == (username, password)
        # OpenShift 4.16+ entries carry only "auth": the same pair comes back from it.
        assert credentials({"auth": decoded["auths"][server]["auth"]}) == (username, password)
    for entry in fuzz.find("pull_secrets", "redact")(decoded)["auths"].values():
        assert entry["password"] == entry["auth"] == fuzz.find("common", "REDACTED")


@given(servers=SERVERS, username=USERNAMES, password=PASSWORDS)
def test_legacy_dockercfg_round_trip(fuzz, servers, username, password):
    build = fuzz.find("pull_secrets", "build_dockerconfig")
    decode = fuzz.find("pull_secrets", "decode_secret")
    credentials = fuzz.find("pull_secrets", "credentials")
    auths = build(servers, username, password)["auths"]
    decoded = decode("kubernetes.io/dockercfg", {".dockercfg": _encode(auths)}, "Secret ns/s-dockercfg-x")
    assert decoded == {"auths": auths}
    assert set(credentials(entry) for entry in decoded["auths"].values()) == {(username, password)}


@given(username=st.text(max_size=12), password=st.text(max_size=12) | st.none(), email=st.none() | st.text(max_size=8))
def test_registry_entry_rejects_with_its_own_error(fuzz, username, password, email):
    entry = fuzz.call(fuzz.find("pull_secrets", "registry_entry"), username, password, email)
    if entry is not None:
        assert base64.b64decode(entry["auth"]).decode("utf-8") == "%s:%s" % (username, password)


@given(server=st.text(max_size=80) | st.builds("".join, st.lists(st.sampled_from(
    ["https://", "http://", "a", "-", ".", ":", "5000", "99999", "/", "[", "::1", "]", "_"]), max_size=12)))
def test_server_error_is_text_or_none(fuzz, server):
    problem = fuzz.find("pull_secrets", "server_error")(server)
    assert problem is None or isinstance(problem, str)
