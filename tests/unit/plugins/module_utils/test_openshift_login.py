# -*- coding: utf-8 -*-
"""username/password login at OpenShift's OAuth server: when it runs, proxies, messages."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os

import pytest
from kubernetes.client import Configuration
from openshift.helper.userpassauth import OCPLoginRequestException

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import openshift_login as login
from ansible_collections.ibmcloud.registry.tests.unit.plugins.module_utils import fake_module
from ansible_collections.ibmcloud.registry.tests.unit.plugins.module_utils.fake_module import Failed

PASSWORD = "CANARY-pw-" + "x" * 12


class FakeModule(fake_module.FakeModule):
    DEFAULTS = {"api_retries": 0, "parallelism": 1}


@pytest.mark.parametrize("auth, wanted", [
    ({"username": "apikey", "password": PASSWORD}, True),
    ({"username": "apikey", "password": PASSWORD, "api_key": "t"}, False),  # a token wins, as in oc
    ({"username": "apikey"}, False),
    ({"password": PASSWORD}, False),
    ({"username": "", "password": PASSWORD}, False),
    ({}, False),
])
def test_login_only_for_username_and_password_without_api_key(auth, wanted):
    assert login.wants_login(auth) is wanted


def test_no_login_leaves_the_configuration_alone():
    configuration = Configuration(host="https://127.0.0.1:1")
    configuration.api_key = {"authorization": "Bearer t"}
    module = FakeModule()
    assert login.login_with_password(module, {"api_key": "t", "username": "u", "password": "p"},
                                     configuration) is configuration
    assert configuration.api_key == {"authorization": "Bearer t"} and not module.no_log_values


def test_proxy_environment_from_kubernetes_core_options():
    assert login.proxy_environment(None, "x") == {}
    env = login.proxy_environment("http://127.0.0.1:3128", "127.0.0.2,.internal")
    assert env["HTTPS_PROXY"] == env["http_proxy"] == "http://127.0.0.1:3128"
    assert env["NO_PROXY"] == env["no_proxy"] == "127.0.0.2,.internal"
    # kubernetes.core's proxy_headers.proxy_basic_auth becomes the proxy URL's user part.
    headers = {"proxy-authorization": "Basic " + base64.b64encode(b"us er:p@ss:w").decode()}
    env = login.proxy_environment("http://127.0.0.1:3128", None, headers)
    assert env["HTTPS_PROXY"] == "http://us%20er:p%40ss%3Aw@127.0.0.1:3128" and env["NO_PROXY"] == ""


def test_the_proxy_environment_is_put_back_after_the_login(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.9:1")
    monkeypatch.delenv("NO_PROXY", raising=False)
    with login._environment({"HTTPS_PROXY": "http://127.0.0.1:2", "NO_PROXY": "a"}):
        assert os.environ["HTTPS_PROXY"] == "http://127.0.0.1:2" and os.environ["NO_PROXY"] == "a"
    assert os.environ["HTTPS_PROXY"] == "http://127.0.0.9:1" and "NO_PROXY" not in os.environ


def failure(step, status, method="GET"):
    return OCPLoginRequestException(step, method=method, url="https://127.0.0.1:6443/x", reason="r",
                                    status_code=status)


def test_no_oauth_server_names_the_options_to_use_instead():
    message = login.describe_failure(failure("Couldn't find OpenShift's OAuth API", 403),
                                     "https://127.0.0.1:6443", "apikey")
    assert message.startswith("username/password need an OpenShift OAuth server; use api_key")
    assert "https://127.0.0.1:6443/.well-known/oauth-authorization-server answered 403" in message


def test_refused_login_names_user_and_hint_never_the_password():
    message = login.describe_failure(failure("Authorization failed.", 401), "https://h:1", "apikey")
    assert "refused the login of user apikey (401 Unauthorized)" in message
    assert "username apikey, password an IBM Cloud API key" in message and PASSWORD not in message
    other = login.describe_failure(failure("Authorization failed.", 400), "https://h:1", "apikey")
    assert "status 400, expected a 302 redirect with a code" in other
    token = login.describe_failure(failure("Failed to obtain an authorization token.", 400, "POST"),
                                   "https://h:1", "apikey")
    assert token == "The OpenShift OAuth server of https://h:1 did not issue a token for user apikey (status 400)"


def test_unreachable_oauth_server_is_a_clear_error_without_the_password():
    module = FakeModule()
    configuration = Configuration(host="https://127.0.0.1:9/")  # discard port: nothing listens
    with pytest.raises(Failed) as failed:
        login.login_with_password(module, {"username": "apikey", "password": PASSWORD}, configuration)
    message = str(failed.value)
    assert message.startswith("Could not reach the OpenShift OAuth server of https://127.0.0.1:9 ")
    assert "check host, ca_cert, validate_certs and proxy" in message and PASSWORD not in message


def test_missing_openshift_package_is_missing_required_lib(monkeypatch):
    monkeypatch.setattr(login, "HAS_OPENSHIFT", False)
    monkeypatch.setattr(login, "OPENSHIFT_IMPORT_ERROR", ImportError("No module named 'openshift'"))
    with pytest.raises(Failed) as failed:
        login.login_with_password(FakeModule(), {"username": "apikey", "password": PASSWORD},
                                  Configuration(host="https://127.0.0.1:9"))
    assert "Failed to import the required Python library (openshift)" in str(failed.value)
    assert "username/password login at the OpenShift OAuth server" in str(failed.value)
    # Without username/password nobody needs it.
    assert login.login_with_password(FakeModule(), {"api_key": "t"}, Configuration()) is not None
