# -*- coding: utf-8 -*-
"""Fuzzing: hosts.toml and containerd's config.toml as a node may hold them (containerd/).

Properties: the pure plans read any file text, valid TOML or not, and any declaration,
raising nothing but ContainerdHostsError; a rendered hosts.toml parses back to the same
document, so planning against it gives ``unchanged`` (the idempotence of the module);
``config_path`` set by the plan is then found by the check.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import tomli_w
from hypothesis import assume, given
from hypothesis import strategies as st

ROOT = "/etc/containerd/certs.d"
TOML_SCALARS = st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1) | st.text(max_size=12)
TOML_VALUES = st.recursive(TOML_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
TABLE_KEYS = st.sampled_from(["version", "plugins", "cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images",
                              "registry", "config_path", "mirrors", "server", "host", "capabilities", "ca", "client",
                              "skip_verify", "header", "override_path", "dial_timeout"])


def _nested(depth):
    """TOML documents built from the keys containerd and hosts.toml use."""
    leaf = TOML_VALUES | st.sampled_from([1, 2, 3, "2", ROOT, ROOT + ":/x", "https://a", ["pull", "resolve"]])
    if depth == 0:
        return leaf
    return leaf | st.dictionaries(TABLE_KEYS | st.text(max_size=6), _nested(depth - 1), max_size=4)


TOML_DOCUMENTS = st.dictionaries(TABLE_KEYS, _nested(3), max_size=4)
# Text near TOML: fragments glued together, so that the parser meets half-valid files.
TOML_TEXT = st.text(max_size=120) | st.lists(st.sampled_from([
    "version = 2\n", "version = 3\n", "[plugins]\n", '[plugins."io.containerd.grpc.v1.cri".registry]\n',
    '[plugins."io.containerd.cri.v1.images".registry]\n', "config_path = '%s'\n" % ROOT, "config_path = 5\n",
    '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n', 'server = "https://a"\n',
    '[host."https://m"]\n', "capabilities = ['pull']\n", "[[host]]\n", "x = [\n", "= 1\n", '"\n', "\n",
]), max_size=8).map("".join)
HOSTNAMES = st.lists(st.text("abz09-", min_size=1, max_size=6), min_size=1, max_size=3).map(".".join)
REGISTRIES = st.one_of(st.just("_default"), HOSTNAMES, st.builds("{}:{}".format, HOSTNAMES, st.integers(0, 70000)),
                       st.text(max_size=20))
URLS = st.one_of(st.builds("{}://{}".format, st.sampled_from(["https", "http", "ftp"]), HOSTNAMES),
                 st.builds("https://{}:{}/{}".format, HOSTNAMES, st.integers(0, 70000), st.text("ab/", max_size=6)),
                 st.text(max_size=20))
SETTING_VALUES = {
    "capabilities": st.lists(st.sampled_from(["pull", "resolve", "push", "referrers", "PULL", "fetch"]), max_size=4)
    | st.text(max_size=6),
    "ca": st.text("ab/.", max_size=8) | st.lists(st.text("ab/.", max_size=8), max_size=2),
    "client": st.text("ab/.", max_size=8) | st.lists(st.lists(st.text("ab/", max_size=4), max_size=3), max_size=2)
    | st.dictionaries(st.sampled_from(["cert", "key", "other"]), st.text("ab", max_size=3), max_size=3),
    "skip_verify": st.sampled_from([True, False, "yes", "no", "maybe", 1, None]),
    "override_path": st.sampled_from([True, False, "true", None, 2]),
    "headers": st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.lists(st.text(max_size=6), max_size=2),
                               max_size=2),
    "dial_timeout": st.sampled_from(["3s", "500ms", "1h2m", "3", "s", "", "1.5\u00b5s"]) | st.text(max_size=5),
}
SETTINGS = st.fixed_dictionaries({}, optional=SETTING_VALUES)
DECLARATIONS = st.fixed_dictionaries({"registry": REGISTRIES}, optional={
    "state": st.sampled_from(["present", "absent", "gone"]),
    "server": URLS,
    "server_settings": SETTINGS,
    "hosts": st.lists(st.builds(lambda url, settings: dict(settings, url=url), URLS, SETTINGS), max_size=3),
})
VALID_HOSTNAMES = st.lists(st.text("abz09", min_size=1, max_size=6), min_size=1, max_size=3).map(".".join)
# Declarations the module accepts, for the round trip (invalid ones are the other tests').
VALID_SETTINGS = st.fixed_dictionaries({}, optional={
    "capabilities": st.lists(st.sampled_from(["pull", "resolve", "push", "referrers"]), min_size=1, max_size=4),
    "ca": st.lists(st.sampled_from(["/etc/ca.pem", "ca.crt", "/x/y.pem"]), min_size=1, max_size=2),
    "client": st.lists(st.sampled_from(["/c.pem", "c.pem"]), min_size=1, max_size=2)
    | st.lists(st.tuples(st.just("/c.cert"), st.just("/c.key")).map(list), min_size=1, max_size=2),
    "skip_verify": st.booleans(), "override_path": st.booleans(),
    "headers": st.dictionaries(st.text("Xab-", min_size=1, max_size=6), st.text("ab c", max_size=6), max_size=2),
    "dial_timeout": st.sampled_from(["3s", "500ms", "1h2m"]),
})
VALID_DECLARATIONS = st.fixed_dictionaries({"registry": VALID_HOSTNAMES | st.just("_default")}, optional={
    "state": st.sampled_from(["present", "absent"]),
    "server": st.builds("https://{}".format, VALID_HOSTNAMES),
    "server_settings": VALID_SETTINGS,
    "hosts": st.lists(st.builds(lambda url, settings: dict(settings, url=url),
                                st.builds("https://{}:{}".format, VALID_HOSTNAMES, st.integers(1, 65535)), VALID_SETTINGS),
                      max_size=3, unique_by=lambda host: host["url"]),
})
VERSIONS = st.none() | st.tuples(st.integers(1, 2), st.integers(0, 9), st.integers(0, 9))


def _observed(fuzz, spec, text, exists=True, managed=True, mode=0o644):
    directory = os.path.join(ROOT, spec["directory"])
    files = dict((fuzz.find("containerd", "relative_directory")(directory, path), True)
                 for _where, path in fuzz.find("containerd", "certificate_paths")(spec))
    return {"directory": directory, "path": os.path.join(directory, "hosts.toml"), "exists": exists,
            "text": text, "mode": mode, "managed": managed, "files": files}


@given(declaration=VALID_DECLARATIONS, version=VERSIONS)
def test_declarations_normalize_render_and_plan_unchanged(fuzz, declaration, version):
    spec = fuzz.find("containerd", "normalize_spec")(declaration)
    build, parse = fuzz.find("containerd", "build_document"), fuzz.find("containerd", "parse_toml")
    text = fuzz.find("containerd", "render_spec")(spec)
    # Round trip: what is written reads back as the same document.
    assert fuzz.find("containerd", "same_document")(parse(text), build(spec))
    if spec["state"] == "present":
        mode = fuzz.find("containerd", "file_mode")(build(spec))
        plan = fuzz.find("containerd", "plan_registry")(spec, _observed(fuzz, spec, text, mode=mode), version)
        assert plan["action"] == "unchanged" or plan["errors"], plan["action"]
    redacted = fuzz.find("containerd", "redact_document")(parse(text))
    assert not fuzz.find("containerd", "has_headers")(redacted) or "********" in str(redacted)


@given(declaration=DECLARATIONS, text=TOML_TEXT | TOML_DOCUMENTS.map(tomli_w.dumps), exists=st.booleans(),
       managed=st.booleans(), version=VERSIONS)
def test_plan_registry_reads_any_existing_file(fuzz, declaration, text, exists, managed, version):
    spec = fuzz.call(fuzz.find("containerd", "normalize_spec"), declaration)
    assume(spec is not None)
    plan = fuzz.call(fuzz.find("containerd", "plan_registry"), spec,
                     _observed(fuzz, spec, text if exists else None, exists, managed), version)
    if plan is not None:
        assert plan["action"] in ("created", "updated", "unchanged", "deleted", "absent")


@given(text=TOML_TEXT | TOML_DOCUMENTS.map(tomli_w.dumps), check=st.sampled_from(["check", "set"]),
       version=VERSIONS)
def test_plan_config_reads_any_config_toml(fuzz, text, check, version):
    observed = {"path": "/etc/containerd/config.toml", "exists": True, "text": text, "mode": 0o644}
    plan = fuzz.call(fuzz.find("containerd", "plan_config"), observed, ROOT, check, version)
    if plan is not None and plan.get("text") is not None:
        # What the plan writes is TOML that the check then finds pointing at ROOT.
        written = fuzz.find("containerd", "parse_toml")(plan["text"])
        report = fuzz.call(fuzz.find("containerd", "inspect_containerd_config"), written, ROOT)
        assert report is None or report["ok"]


@given(document=TOML_DOCUMENTS)
def test_inspect_any_parsed_config(fuzz, document):
    report = fuzz.call(fuzz.find("containerd", "inspect_containerd_config"), document, ROOT)
    if report is not None:
        assert report["version"] in (1, 2, 3)


@given(text=TOML_TEXT)
def test_parse_toml_raises_only_its_error(fuzz, text):
    document = fuzz.call(fuzz.find("containerd", "parse_toml"), text)
    assert document is None or isinstance(document, dict)


@given(text=st.text(max_size=40) | st.builds("containerd github.com/containerd/containerd/v2 v{}.{}.{} x".format,
                                             st.integers(0, 10 ** 6), st.integers(0, 99), st.integers(0, 99)))
def test_parse_version(fuzz, text):
    version = fuzz.find("containerd", "parse_version")(text)
    assert version is None or (len(version) == 3 and all(isinstance(p, int) for p in version))


@given(registry=REGISTRIES, url=URLS)
def test_registry_and_url_checks(fuzz, registry, url):
    directory = fuzz.call(fuzz.find("containerd", "registry_directory"), registry)
    if directory is not None:
        assert fuzz.find("containerd", "configmap_key")(directory).endswith(".hosts.toml")
    fuzz.call(fuzz.find("containerd", "validate_url"), url, "hosts[0].url")


@given(entries=st.lists(st.fixed_dictionaries({}, optional={
    "prefix": REGISTRIES, "server": URLS | HOSTNAMES,
    "mirrors": st.lists(st.fixed_dictionaries({}, optional=dict(SETTING_VALUES, host=HOSTNAMES | URLS,
                                                                header=SETTING_VALUES["headers"])), max_size=2)})
                        | TOML_VALUES, max_size=3), prune=st.booleans())
def test_kubespray_translation_and_cluster_bundle(fuzz, entries, prune):
    registries = fuzz.call(fuzz.find("containerd", "from_kubespray"), entries)
    if registries is not None:
        bundle = fuzz.call(fuzz.find("containerd", "cluster_bundle"), registries, prune)
        if bundle is not None:
            assert bundle["checksum"].startswith("scrypt:")
            assert set(bundle["directories"].values()) <= set(bundle["data"])
