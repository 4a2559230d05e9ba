# -*- coding: utf-8 -*-
"""Plain regression tests for what the fuzzing found (one example each).

All the bugs found so far are fixed; a new one is marked ``xfail(strict=True)`` and
listed in conftest.KNOWN_BUGS until it is fixed: then the test passes, strict xfail
reports that as a failure, and the marker and the KNOWN_BUGS entry are removed together. The property each test states is
the one of the fuzz tests: a parser raises only the collection's own error types, within
a bounded time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import importlib
import json
import pkgutil
import time

import pytest

from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import dockerconfig


def _find(name, part):
    # Same lookup as the fuzz tests (modules are being split), without the fixture.
    package = importlib.import_module("ansible_collections.ibmcloud.registry.plugins.module_utils." + part)
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(package.__name__ + "." + info.name)
        if name in vars(module):
            return getattr(module, name)
    raise LookupError(name)


def _data(document):
    return {".dockerconfigjson": base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")}


@pytest.mark.parametrize("entry", ["y", None, 5, ["a"]])
def test_auths_entry_that_is_not_an_object_is_a_dockerconfig_error(entry):
    # A hand-made secret {"auths": {"x": "y"}}: decode_secret returns it, then
    # credentials() and redact() (and so fingerprint(), the diff and IAM's key lookup)
    # fail with AttributeError instead of naming the secret.
    with pytest.raises(dockerconfig.DockerConfigError):
        document = dockerconfig.decode_secret(dockerconfig.DOCKERCONFIGJSON_TYPE, _data({"auths": {"x": entry}}),
                                              "Secret ns/s")
        dockerconfig.redact(document)
        dockerconfig.credentials(document["auths"]["x"])


def test_deeply_nested_json_is_a_dockerconfig_error():
    # 100 000 '[' fit well inside the 1 MiB Secret limit.
    data = {".dockerconfigjson": base64.b64encode(b"[" * 100000).decode("ascii")}
    with pytest.raises(dockerconfig.DockerConfigError):
        dockerconfig.decode_secret(dockerconfig.DOCKERCONFIGJSON_TYPE, data, "Secret ns/s")


def test_deeply_nested_toml_is_a_containerd_hosts_error():
    with pytest.raises(_find("ContainerdHostsError", "containerd")):
        _find("parse_toml", "containerd")("a = " + "[" * 100000)


def test_config_toml_version_that_is_a_list_is_a_containerd_hosts_error():
    observed = {"path": "/etc/containerd/config.toml", "exists": True, "text": "version = [2]\n", "mode": 0o644}
    with pytest.raises(_find("ContainerdHostsError", "containerd")):
        _find("plan_config", "containerd")(observed, "/etc/containerd/certs.d", "check", None)


def test_config_path_that_is_not_a_string_is_reported():
    document = {"version": 2, "plugins": {"io.containerd.grpc.v1.cri": {"registry": {"config_path": 5}}}}
    try:
        report = _find("inspect_containerd_config", "containerd")(document, "/etc/containerd/certs.d")
    except _find("ContainerdHostsError", "containerd"):
        return
    assert report["ok"] is False


def test_selector_check_is_linear():
    validate = _find("validate_target_params", "kube")
    started = time.time()
    errors = validate({"namespace_selector": ["a" + " " * 6000 + "!"]})
    elapsed = time.time() - started
    assert errors and elapsed < 0.25, elapsed
