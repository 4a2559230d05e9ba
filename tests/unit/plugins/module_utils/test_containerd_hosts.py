# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of containerd_hosts: names, validation, rendering, semantic comparison,
redaction, the plan of one registry directory, kubespray translation and the cluster bundle.
config.toml: test_containerd_config_toml.py; cluster mode's objects, rollout and script:
test_containerd_cluster.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import tomllib

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd import plan as ch
from ansible_collections.ibmcloud.registry.plugins.module_utils.containerd.kubespray import from_kubespray

SEED = {
    "registry": "docker.io",
    "server": "https://docker.io",
    "hosts": [{"url": "https://registry-1.docker.io", "capabilities": ["pull", "resolve"]}],
}

# The seed's file as IBM Cloud documents it, with comments and other formatting.
SEED_TEXT = """\
# written by hand
server = "https://docker.io"
[host."https://registry-1.docker.io"]
  capabilities = ["resolve", "pull"]   # order does not matter to containerd
"""


def spec(**overrides):
    raw = dict(SEED)
    raw.update(overrides)
    return ch.normalize_spec(raw)


# --- names ---------------------------------------------------------------------------

@pytest.mark.parametrize("registry", ["docker.io", "myreg:5000", "127.0.0.1:5000", "[::1]:5000",
                                      "_default", "localhost", "us.icr.io"])
def test_registry_directory_accepts_namespaces(registry):
    assert ch.registry_directory(registry) == registry


@pytest.mark.parametrize("registry", ["https://docker.io", "docker.io/library", "", "myreg:99999",
                                      "_other", "my_reg", "../etc", "a b"])
def test_registry_directory_rejects_what_containerd_would_not_look_up(registry):
    with pytest.raises(ch.ContainerdHostsError, match="registry"):
        ch.registry_directory(registry)


def test_configmap_keys_are_valid_and_distinct():
    assert ch.configmap_key("docker.io") == "docker.io.hosts.toml"
    assert ch.configmap_key("myreg:5000") == "myreg_5000.hosts.toml"
    assert ch.configmap_key("[::1]:5000") == "___1__5000.hosts.toml"
    assert ch.configmap_key("_default") == "_default.hosts.toml"


@pytest.mark.parametrize("url", ["https://registry-1.docker.io", "http://10.0.0.1:5000",
                                 "https://mirror.example.com/v2/proxy", "https://[::1]:5000"])
def test_urls_accepted(url):
    assert ch.validate_url(url, "x") == url


@pytest.mark.parametrize("url", ["registry-1.docker.io", "ftp://host", "https://u:p@host",
                                 "https://host/?q=1", "https://host#frag", "https://", "https://host:0"])
def test_malformed_urls_rejected_with_the_option_named(url):
    with pytest.raises(ch.ContainerdHostsError, match=r"hosts\[0\]\.url"):
        spec(hosts=[{"url": url}])


@pytest.mark.parametrize("text, version", [
    ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", (1, 6, 20)),
    ("containerd containerd.io 1.7.25 bcc810d6b9066471b0b6fa75f557a15a1cbf31bb", (1, 7, 25)),
    ("containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376",
     (2, 1, 4)),
    ("2.2", (2, 2, 0)),
    ("unknown", None),
])
def test_parse_version(text, version):
    assert ch.parse_version(text) == version


# --- validation ------------------------------------------------------------------------

def test_unknown_capability_is_an_error_naming_the_option():
    with pytest.raises(ch.ContainerdHostsError, match=r"hosts\[0\]\.capabilities.*fetch"):
        spec(hosts=[{"url": "https://m", "capabilities": ["pull", "fetch"]}])


def test_empty_capabilities_is_an_error():
    with pytest.raises(ch.ContainerdHostsError, match="must not be empty"):
        spec(hosts=[{"url": "https://m", "capabilities": []}])


def test_capabilities_are_lowercased_and_deduplicated():
    assert spec(hosts=[{"url": "https://m", "capabilities": ["Pull", "pull", "RESOLVE"]}])["hosts"][0][1] == {
        "capabilities": ["pull", "resolve"]}


def test_booleans_are_converted_like_the_module_does():
    # The filter path gets extra vars as strings; the module's argument spec converts them.
    assert spec(server_settings={"skip_verify": "yes"})["settings"] == {"skip_verify": True}
    assert spec(server_settings={"override_path": "false"})["settings"] == {"override_path": False}
    with pytest.raises(ch.ContainerdHostsError, match="skip_verify must be true or false"):
        spec(server_settings={"skip_verify": "maybe"})


def test_bad_dial_timeout():
    with pytest.raises(ch.ContainerdHostsError, match="dial_timeout"):
        spec(hosts=[{"url": "https://m", "dial_timeout": "3 seconds"}])
    assert spec(hosts=[{"url": "https://m", "dial_timeout": "1m30s"}])["hosts"][0][1]["dial_timeout"] == "1m30s"


def test_client_forms_and_mixing():
    pairs = spec(server_settings={"client": [{"cert": "c.pem", "key": "k.pem"}, ["c2.pem", "k2.pem"]]})
    assert pairs["settings"]["client"] == [["c.pem", "k.pem"], ["c2.pem", "k2.pem"]]
    assert spec(server_settings={"client": ["both.pem"]})["settings"]["client"] == ["both.pem"]
    with pytest.raises(ch.ContainerdHostsError, match="mixes"):
        spec(server_settings={"client": ["both.pem", {"cert": "c.pem", "key": "k.pem"}]})
    with pytest.raises(ch.ContainerdHostsError, match="pairs"):
        spec(server_settings={"client": [["only-one.pem"]]})


def test_header_value_with_newline_is_rejected_without_echoing_it():
    with pytest.raises(ch.ContainerdHostsError) as info:
        spec(hosts=[{"url": "https://m", "headers": {"Authorization": "Basic s3cret\nX: y"}}])
    assert "s3cret" not in str(info.value)


def test_unknown_keys_and_duplicate_hosts():
    with pytest.raises(ch.ContainerdHostsError, match="unknown option.*capability"):
        spec(hosts=[{"url": "https://m", "capability": ["pull"]}])
    with pytest.raises(ch.ContainerdHostsError, match="unknown key"):
        ch.normalize_spec(dict(SEED, mirrors=[]))
    with pytest.raises(ch.ContainerdHostsError, match="twice"):
        spec(hosts=[{"url": "https://m"}, {"url": "https://m"}])


# --- rendering ---------------------------------------------------------------------------

def test_seed_renders_and_parses_back():
    text = ch.render_spec(SEED)
    assert tomllib.loads(text) == {
        "server": "https://docker.io",
        "host": {"https://registry-1.docker.io": {"capabilities": ["pull", "resolve"]}},
    }


def test_a_file_without_hosts_still_has_a_host_table():
    # containerd 1.6/1.7 reject a hosts.toml without a host table ("invalid `host` tree").
    text = ch.render_spec({"registry": "r.example.com", "server_settings": {"ca": ["/ca.pem"]}})
    assert tomllib.loads(text) == {"ca": "/ca.pem", "host": {}}
    assert "[host]" in text


def test_every_field_renders_where_containerd_reads_it():
    text = ch.render_spec({
        "registry": "myreg:5000",
        "server": "https://myreg:5000",
        "server_settings": {"ca": ["a.pem", "b.pem"], "skip_verify": False},
        "hosts": [
            {"url": "https://m1:443/v2/x", "capabilities": ["pull"], "override_path": True,
             "client": [{"cert": "/c.pem", "key": "/k.pem"}], "dial_timeout": "3s",
             "headers": {"X-A": "1", "X-B": ["2", "3"]}},
            {"url": "http://m0", "skip_verify": True, "client": ["/both.pem"]},
        ],
    })
    document = tomllib.loads(text)
    assert document["ca"] == ["a.pem", "b.pem"]
    assert document["skip_verify"] is False
    assert list(document["host"]) == ["https://m1:443/v2/x", "http://m0"]  # order kept
    first = document["host"]["https://m1:443/v2/x"]
    assert first == {"capabilities": ["pull"], "override_path": True, "client": [["/c.pem", "/k.pem"]],
                     "dial_timeout": "3s", "header": {"X-A": "1", "X-B": ["2", "3"]}}
    assert document["host"]["http://m0"] == {"skip_verify": True, "client": "/both.pem"}


def test_render_escapes_what_a_template_would_not():
    text = ch.render_spec({"registry": "r.example.com", "hosts": [
        {"url": "https://m", "headers": {"X-Quote": 'a "quoted" \\ value'}}]})
    assert tomllib.loads(text)["host"]["https://m"]["header"]["X-Quote"] == 'a "quoted" \\ value'


# --- semantic comparison -------------------------------------------------------------------

def test_formatting_comments_and_order_of_capabilities_do_not_count():
    assert ch.same_document(tomllib.loads(SEED_TEXT), ch.build_document(spec()))


def test_equivalent_spellings_do_not_count():
    current = tomllib.loads('ca = ["/ca.pem"]\nskip_verify = false\n'
                            '[host."https://m"]\nheader = { X-A = ["1"] }\nclient = ["/c.pem"]\n')
    desired = {"ca": "/ca.pem", "host": {"https://m": {"header": {"X-A": "1"}, "client": "/c.pem"}}}
    assert ch.same_document(current, desired)
    assert ch.same_document({}, {"host": {}})


@pytest.mark.parametrize("current", [
    # host order is the order containerd tries them
    '[host."https://b"]\n[host."https://a"]\n',
    # a different header value
    '[host."https://a"]\nheader = { X-A = "other" }\n[host."https://b"]\n',
    # a key this module does not write
    'unknown = 1\n[host."https://a"]\n[host."https://b"]\n',
    'server = "https://elsewhere"\n[host."https://a"]\n[host."https://b"]\n',
])
def test_real_differences_count(current):
    desired = ch.build_document(ch.normalize_spec({"registry": "r.io", "hosts": [
        {"url": "https://a", "headers": {"X-A": "v"}} if "X-A" in current else {"url": "https://a"},
        {"url": "https://b"}]}))
    assert not ch.same_document(tomllib.loads(current), desired)


def test_redaction_and_mode():
    document = ch.build_document(spec(server_settings={"headers": {"Authorization": "Basic c2VjcmV0"}},
                                      hosts=[{"url": "https://m", "headers": {"X-Token": ["t1", "t2"]}}]))
    redacted = ch.render_toml(ch.redact_document(document))
    assert "c2VjcmV0" not in redacted and "t1" not in redacted
    assert "Authorization" in redacted and "X-Token" in redacted and ch.REDACTED in redacted
    assert document["header"]["Authorization"] == "Basic c2VjcmV0"  # the original is untouched
    assert ch.file_mode(document) == 0o600
    assert ch.file_mode(ch.build_document(spec())) == 0o644


def test_certificate_paths_lists_every_file():
    paths = ch.certificate_paths(spec(server_settings={"ca": ["ca.pem"]}, hosts=[
        {"url": "https://m", "client": [{"cert": "/c.pem", "key": "/k.pem"}]}]))
    assert paths == [("server_settings.ca", "ca.pem"), ("hosts[0].client", "/c.pem"),
                     ("hosts[0].client", "/k.pem")]


def test_version_gating():
    referrers = spec(hosts=[{"url": "https://m", "capabilities": ["pull", "referrers"]}])
    errors, warnings = ch.version_problems(referrers, (1, 7, 0))
    assert errors and "2.2" in errors[0] and not warnings
    assert ch.version_problems(referrers, (2, 2, 0)) == ([], [])
    errors, warnings = ch.version_problems(referrers, None)
    assert not errors and warnings
    timeout = spec(hosts=[{"url": "https://m", "dial_timeout": "3s"}])
    assert ch.version_problems(timeout, (1, 6, 20))[1]
    assert ch.version_problems(timeout, (2, 1, 0)) == ([], [])


# --- kubespray ---------------------------------------------------------------------------------

def test_kubespray_shape_translates_with_its_defaults():
    registries = from_kubespray([
        {"prefix": "docker.io", "mirrors": [
            {"host": "https://mirror.gcr.io", "capabilities": ["pull", "resolve"], "skip_verify": False},
            {"host": "registry-1.docker.io", "capabilities": "pull",
             "header": {"Authorization": "Basic x"}, "client": [["/c.pem", "/k.pem"]], "ca": "/ca.pem"}]},
        {"prefix": "quay.io", "server": "https://quay.example.com", "mirrors": []},
    ])
    assert registries[0]["server"] == "https://docker.io"
    assert registries[0]["hosts"][1]["url"] == "https://registry-1.docker.io"
    assert registries[1]["server"] == "https://quay.example.com"
    document = tomllib.loads(ch.render_spec(registries[0]))
    second = document["host"]["https://registry-1.docker.io"]
    assert second == {"capabilities": ["pull"], "ca": "/ca.pem", "client": [["/c.pem", "/k.pem"]],
                      "header": {"Authorization": "Basic x"}}
    with pytest.raises(ch.ContainerdHostsError, match="prefix"):
        from_kubespray([{"mirrors": []}])


# --- cluster bundle --------------------------------------------------------------------------

REGISTRIES = [SEED, {"registry": "myreg:5000", "server": "https://myreg:5000",
                     "server_settings": {"skip_verify": True}}]


def test_bundle_keys_checksum_and_sensitivity():
    bundle = ch.cluster_bundle(REGISTRIES)
    assert sorted(bundle["data"]) == ["docker.io.hosts.toml", "manifest", "myreg_5000.hosts.toml"]
    assert bundle["data"]["manifest"] == ("install docker.io.hosts.toml docker.io 0644\n"
                                          "install myreg_5000.hosts.toml myreg:5000 0644\n")
    assert bundle["marker"] == ch.MARKER_FILE
    assert bundle["directories"] == {"docker.io": "docker.io.hosts.toml", "myreg:5000": "myreg_5000.hosts.toml"}
    assert bundle["data"]["docker.io.hosts.toml"] == ch.render_spec(SEED)
    assert not bundle["sensitive"]
    assert ch.cluster_bundle(REGISTRIES)["checksum"] == bundle["checksum"]
    changed = [SEED, dict(REGISTRIES[1], server_settings={"skip_verify": False})]
    assert ch.cluster_bundle(changed)["checksum"] != bundle["checksum"]
    assert ch.cluster_bundle(REGISTRIES, prune=True)["checksum"] != bundle["checksum"]
    assert ch.cluster_bundle(REGISTRIES, script="#!/bin/sh\n")["checksum"] != bundle["checksum"]
    secret = [dict(SEED, hosts=[dict(SEED["hosts"][0], headers={"Authorization": "x"})])]
    assert ch.cluster_bundle(secret)["sensitive"]
    with pytest.raises(ch.ContainerdHostsError, match="twice"):
        ch.cluster_bundle([SEED, SEED])


def test_bundle_manifest_lists_removals_and_prune():
    bundle = ch.cluster_bundle([dict(SEED, state="absent"), REGISTRIES[1]], prune=True)
    assert bundle["data"]["manifest"] == ("remove docker.io\n"
                                          "install myreg_5000.hosts.toml myreg:5000 0644\n"
                                          "prune\n")
    assert "docker.io.hosts.toml" not in bundle["data"]


# --- the plan of one registry directory ------------------------------------------------------

def observed(**overrides):
    found = {"directory": "/etc/containerd/certs.d/docker.io", "path": "/etc/containerd/certs.d/docker.io/hosts.toml",
             "exists": False, "text": None, "mode": None, "managed": False, "files": {}}
    found.update(overrides)
    return found


def test_plan_vocabulary_created_unchanged_updated():
    assert ch.plan_registry(spec(), observed(), None)["action"] == "created"
    same = observed(exists=True, text=SEED_TEXT, mode=0o644, managed=True)
    assert ch.plan_registry(spec(), same, None)["action"] == "unchanged"
    assert ch.plan_registry(spec(), dict(same, mode=0o600), None)["action"] == "updated"
    assert ch.plan_registry(spec(), dict(same, managed=False), None)["action"] == "updated"
    other = dict(same, text='server = "https://elsewhere"\n[host]\n')
    planned = ch.plan_registry(spec(), other, None)
    assert planned["action"] == "updated" and planned["content_changed"]


def test_plan_absent_is_deleted_or_absent():
    gone = ch.normalize_spec({"registry": "docker.io", "state": "absent"})
    assert ch.plan_registry(gone, observed(), None)["action"] == "absent"
    assert ch.plan_registry(gone, observed(managed=True), None)["action"] == "deleted"
    assert ch.plan_registry(gone, observed(exists=True, text="[host]\n", mode=0o644), None)["action"] == "deleted"


def test_plan_unparsable_file_is_replaced_with_a_warning():
    planned = ch.plan_registry(spec(), observed(exists=True, text="server = [", mode=0o644, managed=True), None)
    assert planned["action"] == "updated"
    assert planned["warnings"] and "will be replaced" in planned["warnings"][0]
    assert ch.diff_text(planned["current"]) == "# the existing file is not valid TOML\n"


def test_plan_collects_relative_certificate_errors_and_absolute_warnings():
    declared = spec(server_settings={"ca": ["ca.pem", "/etc/pki/missing.pem"]})
    planned = ch.plan_registry(declared, observed(), None)
    assert planned["errors"] == ["registry docker.io: server_settings.ca path ca.pem is relative to "
                                 "/etc/containerd/certs.d/docker.io and does not exist there"]
    assert any("/etc/pki/missing.pem does not exist" in w for w in planned["warnings"])
    present = observed(files={"/etc/containerd/certs.d/docker.io/ca.pem": True, "/etc/pki/missing.pem": True})
    planned = ch.plan_registry(declared, present, None)
    assert planned["errors"] == [] and planned["warnings"] == []


def test_plan_prune_only_managed_and_not_kept():
    listing = {"docker.io": True, "by-hand.example.com": False, "old.example.com": True}
    assert ch.plan_prune(listing, {"docker.io"}) == ["old.example.com"]
    assert ch.plan_prune(listing, set()) == ["docker.io", "old.example.com"]
