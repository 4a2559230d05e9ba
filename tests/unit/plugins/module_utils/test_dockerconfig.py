# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
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


def test_fingerprint_is_sha256_of_canonical_json():
    config = dc.build_dockerconfig(["a.io"], "u", "p")
    assert dc.fingerprint(config).startswith("sha256:") and len(dc.fingerprint(config)) == 71
