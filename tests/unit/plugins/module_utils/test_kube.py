# -*- coding: utf-8 -*-
"""The connection layer: kubernetes.core's options and K8S_AUTH_* variables, retries, errors."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from kubernetes.client.rest import ApiException
from urllib3.exceptions import ProtocolError

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import client as kube
from ansible_collections.ibmcloud.registry.tests.unit.plugins.module_utils import fake_module
from ansible_collections.ibmcloud.registry.tests.unit.plugins.module_utils.fake_module import Failed


class FakeModule(fake_module.FakeModule):
    DEFAULTS = {"api_retries": 2, "parallelism": 8}


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
- name: c2
  cluster: {server: "https://127.0.0.2:6443", insecure-skip-tls-verify: true}
users:
- name: u1
  user: {token: token-one}
contexts:
- name: one
  context: {cluster: c1, user: u1}
- name: two
  context: {cluster: c2, user: u1}
current-context: one
"""


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("K8S_AUTH_") or key == "KUBECONFIG":
            monkeypatch.delenv(key)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")


def config_of(client):
    return client.api_client.configuration


def test_kubeconfig_file_and_context(kubeconfig):
    assert config_of(kube.get_kube_client(FakeModule(kubeconfig=kubeconfig))).host == "https://127.0.0.1:6443"
    two = kube.get_kube_client(FakeModule(kubeconfig=kubeconfig, context="two"))
    assert config_of(two).host == "https://127.0.0.2:6443"


def test_k8s_auth_environment_variables(monkeypatch, kubeconfig):
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", kubeconfig)
    monkeypatch.setenv("K8S_AUTH_CONTEXT", "two")
    assert config_of(kube.get_kube_client(FakeModule())).host == "https://127.0.0.2:6443"


def test_host_and_api_key_without_kubeconfig(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_HOST", "https://127.0.0.9:7443/")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "env-token")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "no")
    config = config_of(kube.get_kube_client(FakeModule()))
    assert config.host == "https://127.0.0.9:7443"
    assert config.api_key == {"authorization": "Bearer env-token"}
    assert config.verify_ssl is False


def test_options_win_over_environment(monkeypatch, kubeconfig):
    monkeypatch.setenv("K8S_AUTH_CONTEXT", "two")
    client = kube.get_kube_client(FakeModule(kubeconfig=kubeconfig, context="one"))
    assert config_of(client).host == "https://127.0.0.1:6443"


def test_missing_kubeconfig_fails_clearly(tmp_path):
    with pytest.raises(Failed) as err:
        kube.get_kube_client(FakeModule(kubeconfig=str(tmp_path / "missing")))
    assert "Could not build a Kubernetes client" in str(err.value)


def test_unknown_context_fails_clearly(kubeconfig):
    with pytest.raises(Failed) as err:
        kube.get_kube_client(FakeModule(kubeconfig=kubeconfig, context="nope"))
    assert "nope" in str(err.value)


@pytest.mark.parametrize("key,value", [("api_retries", -1), ("api_retries", 21), ("parallelism", 0),
                                       ("parallelism", 65)])
def test_bad_shared_option_values(key, value):
    errors = kube.validate_kube_params({key: value})
    assert len(errors) == 1 and errors[0].startswith(key)


def api_error(status, message="boom", headers=None):
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"message": message})
    exc.headers = headers or {}
    return exc


class Flaky:
    def __init__(self, *failures):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def client(retries=3):
    sleeps = []
    c = kube.KubeClient.__new__(kube.KubeClient)
    c.retries, c._sleep = retries, sleeps.append
    return c, sleeps


def test_retries_429_and_5xx_then_succeeds_honouring_retry_after():
    c, sleeps = client()
    func = Flaky(api_error(429, headers={"Retry-After": "2"}), api_error(503), ProtocolError("reset"))
    assert c.call("list Secret", func) == "ok"
    assert func.calls == 4 and sleeps[0] == 2.0 and len(sleeps) == 3


def test_retries_are_bounded():
    c, sleeps = client(retries=2)
    func = Flaky(*[api_error(500)] * 5)
    with pytest.raises(kube.KubeError) as err:
        c.call("create Secret s in namespace n", func)
    assert func.calls == 3 and err.value.status == 500
    assert "create Secret s in namespace n" in str(err.value)


@pytest.mark.parametrize("status,fragment", [(401, "Unauthorized"), (403, "Forbidden"), (404, "Not found")])
def test_client_errors_are_not_retried_and_name_the_resource(status, fragment):
    c, sleeps = client()
    func = Flaky(api_error(status, 'secrets "s" is forbidden: User "u" cannot create resource'))
    with pytest.raises(kube.KubeError) as err:
        c.call(kube.describe_target("create", "Secret", "dev", "s"), func)
    assert func.calls == 1 and not sleeps
    assert fragment in str(err.value) and "Secret s in namespace dev" in str(err.value)
    if status == 403:
        assert "cannot create resource" in str(err.value)


def test_dropped_connections_give_up_with_a_clear_message():
    c, _sleeps = client(retries=1)
    with pytest.raises(kube.KubeError) as err:
        c.call("list Namespace", Flaky(ProtocolError("x"), ProtocolError("y")))
    assert "Could not reach the API server" in str(err.value) and err.value.status is None
