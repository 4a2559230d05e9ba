# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import dockerconfig as dc


def test_all_regions_public_and_private_is_the_all_icr_io_shape():
    domains = dc.icr_domains()
    assert len(domains) == 2 * len(dc.ICR_REGION_DOMAINS)
    assert "icr.io" in domains and "private.icr.io" in domains
    assert "us.icr.io" in domains and "private.us.icr.io" in domains
    assert "ca2.icr.io" in domains
    assert not any("fr2" in d for d in domains)


def test_regions_and_endpoints_select_domains():
    assert dc.icr_domains(["us-south"], ["public"]) == ["us.icr.io"]
    assert dc.icr_domains(["global", "eu-de"], ["private"]) == ["private.icr.io", "private.de.icr.io"]


def test_unknown_region_lists_valid_ones():
    with pytest.raises(dc.DockerConfigError) as err:
        dc.icr_domains(["us-east-9"])
    assert "us-east-9" in str(err.value) and "us-south" in str(err.value) and "all" in str(err.value)


def test_auth_is_base64_of_user_colon_password():
    entry = dc.registry_entry("iamapikey", "s3cr:et", "a@b.c")
    assert base64.b64decode(entry["auth"]).decode() == "iamapikey:s3cr:et"
    assert entry["email"] == "a@b.c"


@pytest.mark.parametrize("user,password", [("", "x"), ("u", ""), ("a:b", "x"), ("u", None)])
def test_bad_credentials_are_rejected(user, password):
    with pytest.raises(dc.DockerConfigError):
        dc.registry_entry(user, password)


def test_roundtrip_through_secret_data():
    config = dc.build_dockerconfig(["us.icr.io", "icr.io"], "iamapikey", "k")
    data = dc.encode_secret_data(config)
    assert dc.decode_secret(dc.DOCKERCONFIGJSON_TYPE, data, "s") == config


def test_key_order_and_whitespace_do_not_matter():
    config = dc.build_dockerconfig(["a.io"], "u", "p")
    reordered = json.dumps({"auths": {"a.io": dict(reversed(list(config["auths"]["a.io"].items())))}},
                           indent=4).encode()
    data = {".dockerconfigjson": base64.b64encode(reordered).decode()}
    assert dc.decode_secret(dc.DOCKERCONFIGJSON_TYPE, data, "s") == config
    assert dc.fingerprint(dc.decode_secret(dc.DOCKERCONFIGJSON_TYPE, data, "s")) == dc.fingerprint(config)


def test_legacy_dockercfg_both_openshift_shapes():
    old = {"172.21.0.1:5000": {"username": "serviceaccount", "password": "tok", "email": "x",
                               "auth": base64.b64encode(b"serviceaccount:tok").decode()}}
    new = {"image-registry.openshift-image-registry.svc:5000": {
        "auth": base64.b64encode(b"<token>:bound.jwt").decode()}}
    for shape, expected in ((old, ("serviceaccount", "tok")), (new, ("<token>", "bound.jwt"))):
        data = {".dockercfg": base64.b64encode(json.dumps(shape).encode()).decode()}
        doc = dc.decode_secret(dc.DOCKERCFG_TYPE, data, "s")
        entry = list(doc["auths"].values())[0]
        assert dc.credentials(entry) == expected


@pytest.mark.parametrize("secret_type,data,fragment", [
    ("Opaque", {".dockerconfigjson": "e30="}, "type Opaque"),
    (dc.DOCKERCONFIGJSON_TYPE, {}, "no .dockerconfigjson"),
    (dc.DOCKERCONFIGJSON_TYPE, {".dockerconfigjson": "bm90IGpzb24="}, "not valid"),
    (dc.DOCKERCONFIGJSON_TYPE, {".dockerconfigjson": "W10="}, "not a JSON object"),
    (dc.DOCKERCONFIGJSON_TYPE, {".dockerconfigjson": "e30="}, "no \"auths\""),
])
def test_malformed_secrets_name_the_problem(secret_type, data, fragment):
    with pytest.raises(dc.DockerConfigError) as err:
        dc.decode_secret(secret_type, data, "Secret ns/x")
    assert fragment in str(err.value) and "Secret ns/x" in str(err.value)


def test_redact_hides_values_and_marks_changes():
    old = dc.build_dockerconfig(["a.io"], "u", "old-password")
    new = dc.build_dockerconfig(["a.io"], "u", "new-password")
    shown = json.dumps([dc.redact(old, new), dc.redact(new, old)])
    assert "password" in shown and "old-password" not in shown and "new-password" not in shown
    assert dc.redact(new, old)["auths"]["a.io"]["password"].endswith("(changed)")
    assert dc.redact(new, new)["auths"]["a.io"]["password"] == dc.REDACTED
    assert dc.redact(new)["auths"]["a.io"]["username"] == "u"


@pytest.mark.parametrize("server", ["icr.io", "us.icr.io", "registry.example.com:5000", "127.0.0.1:5000",
                                    "https://quay.io", "r.example.com/path/x", "[::1]:5000"])
def test_valid_servers(server):
    assert dc.server_error(server) is None


@pytest.mark.parametrize("server", ["", "  ", "ftp://x", "bad host", "a..b", "host:99999", "host:port",
                                    "-x.io"])
def test_invalid_servers(server):
    assert dc.server_error(server)


def test_fingerprint_is_stable_and_tells_documents_apart():
    config = dc.build_dockerconfig(["a.io"], "u", "p")
    assert dc.fingerprint(config) == "scrypt:" + hashlib.scrypt(
        dc.canonical(config).encode(), n=2 ** 14, r=8, p=1, maxmem=64 * 2 ** 20, dklen=32,
        salt=hashlib.sha256(b"ibmcloud.registry fingerprint v2\0" + dc.canonical(dc.redact(config)).encode()).digest(),
    ).hex()
    # Key order and re-encoding are no change; any other difference is.
    reordered = json.loads(json.dumps(config, sort_keys=False))
    assert dc.fingerprint(reordered) == dc.fingerprint(config)
    for other in (dc.build_dockerconfig(["a.io"], "u", "q"), dc.build_dockerconfig(["b.io"], "u", "p"),
                  dc.build_dockerconfig(["a.io"], "v", "p"), dc.build_dockerconfig(["a.io"], "u", "p", "e@x")):
        assert dc.fingerprint(other) != dc.fingerprint(config)


WEAK = ["123456", "password", "p", "robot", "registry", "letmein", "qwerty"]


def _plain_hashes(config, guess):
    """What a guesser tries cheaply: sha256/sha1/md5 over the guess and the whole document."""
    guessed = dc.build_dockerconfig(list(config["auths"]), "u", guess)
    texts = [guess, dc.canonical(guessed), json.dumps(guessed), json.dumps(guessed, sort_keys=True)]
    return set(getattr(hashlib, algorithm)(text.encode()).hexdigest()
               for text in texts for algorithm in ("sha256", "sha1", "md5"))


def test_no_password_is_recovered_by_hashing_guesses():
    config = dc.build_dockerconfig(["a.io"], "u", "p")
    shown = dc.fingerprint(config)
    digest = shown.split(":", 1)[1]
    # The old fingerprint (sha256 of the canonical document) let a weak password be
    # guessed offline at billions of tries a second; none of those hashes matches now.
    for guess in WEAK:
        assert digest not in _plain_hashes(config, guess)
    # A guess can only be checked by paying scrypt's cost for this very document:
    # the salt comes from servers, usernames and emails, so no table serves two targets.
    same_password_elsewhere = dc.build_dockerconfig(["b.io"], "u", "p")
    assert dc.fingerprint(same_password_elsewhere).split(":", 1)[1] != digest


def test_fingerprint_costs_memory_and_time_per_guess():
    # The cost parameters are what makes each guess expensive; a cheaper setting would
    # make this test fail (16 MiB per computation, N=2^14).
    assert dc._FINGERPRINT_COST["n"] >= 2 ** 14 and dc._FINGERPRINT_COST["r"] >= 8
    assert 128 * dc._FINGERPRINT_COST["n"] * dc._FINGERPRINT_COST["r"] >= 16 * 2 ** 20


def test_fingerprint_of_a_plain_value():
    assert dc.fingerprint("an-api-key").startswith("scrypt:")
    assert dc.fingerprint("an-api-key") != dc.fingerprint("another-key")
    assert "an-api-key" not in dc.fingerprint("an-api-key")


def test_size_error_at_the_secret_limit():
    small = dc.build_dockerconfig(["a.io"], "u", "p")
    assert dc.size_error(small) is None
    big = dc.build_dockerconfig(["a.io"], "u", "x" * dc.MAX_SECRET_BYTES)
    message = dc.size_error(big, "registry.password")
    assert message.startswith("registry.password: the secret would hold ") and "1 MiB" in message
    assert "xxxx" not in message
    # Just under: base64 of user:password plus the password itself make ~2.33 bytes a character.
    fits = dc.build_dockerconfig(["a.io"], "u", "x" * 440000)
    assert dc.size_error(fits) is None
