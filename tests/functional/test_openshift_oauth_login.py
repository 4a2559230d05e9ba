"""username/password through OpenShift's OAuth server: ``oc login -u apikey -p <key>`` for modules.

Red Hat OpenShift on IBM Cloud logs CI and AWX in with the user name ``apikey`` and an IBM
Cloud API key as the password, which its OAuth server exchanges for a bearer token. The
modules do that exchange with the openshift package (kube/openshift_login.py) when given
kubernetes.core's ``username`` and ``password``, in module_defaults or as
K8S_AUTH_USERNAME / K8S_AUTH_PASSWORD.

The OAuth server is tests/standins/openshift_oauth.py, a LOCAL STAND-IN in front of the
real local kube-apiserver: the tokens it issues are TokenRequest tokens of a
ServiceAccount, so the API server itself authenticates and authorizes every request and
its audit log shows who wrote. IAM is tests/standins/iam_server.py (LOCAL STAND-IN).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import select
import socket
import socketserver
import sys
import threading

import jinja2.sandbox
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from playbook import REPO, Runner
from reliability import common

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "standins"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))

import audit as audit_log  # noqa: E402  pylint: disable=wrong-import-position
import iam_server  # noqa: E402  pylint: disable=wrong-import-position
from openshift_oauth import OAuthStandIn  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

CLUSTER_DIR = os.path.join(REPO, ".cluster-oauth")
SA_NAMESPACE = "oauth-login-users"
SA_NAME = "apikey-user"
IDENTITY = "system:serviceaccount:%s:%s" % (SA_NAMESPACE, SA_NAME)
ROLE = "ibmreg-oauth-login-pull-secrets"
SECRET = "private-registry"
REGISTRY_PASSWORD = "CANARY-registry-" + secrets.token_hex(8)
# The modules must get everything from what the test gives them, never from the caller.
NO_CALLER_CONNECTION = {"KUBECONFIG": "/nonexistent/kubeconfig", "K8S_AUTH_KUBECONFIG": "",
                        "K8S_AUTH_HOST": "", "K8S_AUTH_API_KEY": "", "K8S_AUTH_SSL_CA_CERT": "",
                        "K8S_AUTH_USERNAME": "", "K8S_AUTH_PASSWORD": ""}


@pytest.fixture(scope="module")
def oauth_cluster():
    with common.own_cluster(CLUSTER_DIR) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def fixture_api(oauth_cluster):
    api_client = k8s_config.new_client_from_config(config_file=oauth_cluster.fixture_kubeconfig)
    core, rbac = k8s.CoreV1Api(api_client), k8s.RbacAuthorizationV1Api(api_client)
    core.create_namespace({"metadata": {"name": SA_NAMESPACE}})
    core.create_namespaced_service_account(SA_NAMESPACE, {"metadata": {"name": SA_NAME}})
    # What icr_pull_secret needs in the namespaces it is given (docs/rbac.md, pull-secrets-namespaced).
    rbac.create_cluster_role({"metadata": {"name": ROLE}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "create", "update", "patch"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "patch", "update"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]})
    yield core, rbac
    rbac.delete_cluster_role(ROLE)
    core.delete_namespace(SA_NAMESPACE)
    api_client.close()


@pytest.fixture(scope="module")
def iam():
    with iam_server.IamStandIn() as standin:
        yield standin


@pytest.fixture(scope="module")
def oauth(oauth_cluster, fixture_api, iam):
    del fixture_api
    pki = os.path.join(oauth_cluster.state_dir, "pki")
    key = "CANARY-apikey-" + secrets.token_urlsafe(16)
    iam_key = iam.fresh_admin_key()
    with OAuthStandIn(oauth_cluster.server, oauth_cluster.ca, os.path.join(pki, "apiserver.crt"),
                      os.path.join(pki, "apiserver.key"), oauth_cluster.fixture_kubeconfig,
                      users={("apikey", key): (SA_NAMESPACE, SA_NAME)}, iam=iam,
                      iam_service_account=(SA_NAMESPACE, SA_NAME)) as standin:
        standin.key, standin.iam_key = key, iam_key
        yield standin


@pytest.fixture
def namespace(fixture_api):
    core, rbac = fixture_api
    name = "t-oauth-" + secrets.token_hex(3)
    core.create_namespace({"metadata": {"name": name}})
    rbac.create_namespaced_role_binding(name, {
        "metadata": {"name": "oauth-login"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}]})
    yield name
    core.delete_namespace(name)


def pull_secret_task(namespace):
    return {"name": "t", "ibmcloud.registry.icr_pull_secret": {
        "name": SECRET, "namespaces": [namespace],
        "registry": {"server": "registry.example.com", "username": "robot", "password": REGISTRY_PASSWORD}}}


def play(tasks, module_defaults=None):
    return [{"name": "oauth login", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "module_defaults": {"group/ibmcloud.registry.kube": module_defaults} if module_defaults else {},
             "tasks": tasks}]


def secret_exists(core, namespace):
    try:
        core.read_namespaced_secret(SECRET, namespace)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def writes(log, mark, user, namespace):
    return [(r["verb"], r["resource"], r["name"]) for r in log.requests(mark, user=user) if
            r["namespace"] == namespace and r["verb"] in audit_log.WRITE_VERBS]


def no_write_of_the_secret(log, mark, namespace):
    """Nobody wrote the pull secret (the controller-manager's own writes in a new namespace aside)."""
    return [r for r in log.requests(mark, user=audit_log.ANY_USER) if r["namespace"] == namespace
            and r["verb"] in audit_log.WRITE_VERBS and r["resource"] == "secrets" and r["name"] == SECRET] == []


def assert_nothing_secret(result, *values):
    for value in values:
        assert value not in result.stdout and value not in result.stderr


def test_apikey_login_from_module_defaults_writes_as_the_mapped_identity(
        oauth, oauth_cluster, fixture_api, namespace, tmp_path):
    core = fixture_api[0]
    log = audit_log.AuditLog(oauth_cluster.audit_log)
    mark = log.mark()
    defaults = {"host": oauth.url, "username": "apikey", "password": oauth.key, "ca_cert": oauth_cluster.ca}
    result = Runner(None, workdir=str(tmp_path)).run(
        [], plays=play([pull_secret_task(namespace)], defaults), env=NO_CALLER_CONNECTION)
    assert result.rc == 0, result.stdout[-3000:]
    assert result["t"]["changed"] and result["t"]["results"][0]["action"] == "created"
    assert secret_exists(core, namespace)
    # The API server authenticated the OAuth token as the ServiceAccount the user maps to.
    assert writes(log, mark, IDENTITY, namespace) == [("create", "secrets", SECRET)]
    assert writes(log, mark, "admin", namespace) == []
    assert [e["outcome"] for e in oauth.log[-2:]] == ["code", "token for " + IDENTITY]
    assert_nothing_secret(result, oauth.key, REGISTRY_PASSWORD)

    # A rerun logs in again (a new code; codes are single-use) and writes nothing.
    mark = log.mark()
    again = Runner(None, workdir=str(tmp_path)).run(
        [], plays=play([pull_secret_task(namespace)], defaults), env=NO_CALLER_CONNECTION)
    assert again.rc == 0 and not again["t"]["changed"], again.stdout[-3000:]
    assert writes(log, mark, IDENTITY, namespace) == []


def test_apikey_login_from_k8s_auth_environment_with_a_key_iam_knows(
        oauth, oauth_cluster, fixture_api, namespace, tmp_path):
    core = fixture_api[0]
    log = audit_log.AuditLog(oauth_cluster.audit_log)
    mark = log.mark()
    env = dict(NO_CALLER_CONNECTION, K8S_AUTH_HOST=oauth.url, K8S_AUTH_USERNAME="apikey",
               K8S_AUTH_PASSWORD=oauth.iam_key, K8S_AUTH_SSL_CA_CERT=oauth_cluster.ca)
    result = Runner(None, workdir=str(tmp_path)).run([], plays=play([pull_secret_task(namespace)]), env=env)
    assert result.rc == 0, result.stdout[-3000:]
    assert secret_exists(core, namespace)
    assert writes(log, mark, IDENTITY, namespace) == [("create", "secrets", SECRET)]
    assert_nothing_secret(result, oauth.iam_key, REGISTRY_PASSWORD)


def test_wrong_key_fails_clearly_and_writes_nothing(oauth, oauth_cluster, fixture_api, namespace, tmp_path):
    core = fixture_api[0]
    log = audit_log.AuditLog(oauth_cluster.audit_log)
    mark = log.mark()
    wrong = "CANARY-wrong-" + secrets.token_urlsafe(16)
    defaults = {"host": oauth.url, "username": "apikey", "password": wrong, "ca_cert": oauth_cluster.ca}
    result = Runner(None, workdir=str(tmp_path)).run(
        [], plays=play([pull_secret_task(namespace)], defaults), env=NO_CALLER_CONNECTION)
    assert result.rc != 0
    message = result["t"]["msg"]
    assert "refused the login of user apikey (401 Unauthorized)" in message, message
    assert "username apikey, password an IBM Cloud API key" in message
    assert oauth.log[-1] == {"path": "/oauth/authorize", "user": "apikey", "outcome": "unauthorized"}
    assert not secret_exists(core, namespace)
    assert log.requests(mark, user=IDENTITY) == []
    assert no_write_of_the_secret(log, mark, namespace)
    assert_nothing_secret(result, wrong, REGISTRY_PASSWORD)


def test_a_server_without_oauth_server_names_the_options_to_use(oauth_cluster, fixture_api, namespace, tmp_path):
    core = fixture_api[0]
    log = audit_log.AuditLog(oauth_cluster.audit_log)
    mark = log.mark()
    password = "CANARY-plain-" + secrets.token_urlsafe(12)
    # The plain kube-apiserver: no /.well-known/oauth-authorization-server.
    defaults = {"host": oauth_cluster.server, "username": "apikey", "password": password,
                "ca_cert": oauth_cluster.ca}
    result = Runner(None, workdir=str(tmp_path)).run(
        [], plays=play([pull_secret_task(namespace)], defaults), env=NO_CALLER_CONNECTION)
    assert result.rc != 0
    message = result["t"]["msg"]
    assert message.startswith("username/password need an OpenShift OAuth server; use api_key"), message
    assert "/.well-known/oauth-authorization-server answered" in message
    assert not secret_exists(core, namespace)
    assert no_write_of_the_secret(log, mark, namespace)
    assert_nothing_secret(result, password)


def test_the_stand_in_codes_are_single_use_and_expire(oauth, oauth_cluster):
    """The stand-in is strict like the real server: a code buys one token, for a short time."""
    import requests  # pylint: disable=import-outside-toplevel

    def authorize(password):
        return requests.get(oauth.url + "/oauth/authorize", allow_redirects=False, verify=oauth_cluster.ca,
                            params={"client_id": "openshift-challenging-client", "response_type": "code"},
                            headers={"X-CSRF-Token": "1"}, auth=("apikey", password), timeout=10)

    def exchange(code):
        return requests.post(oauth.url + "/oauth/token", verify=oauth_cluster.ca, timeout=30,
                             auth=("openshift-challenging-client", ""),
                             data={"grant_type": "authorization_code", "code": code})

    refused = authorize("not-the-key")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="openshift"'
    granted = authorize(oauth.key)
    assert granted.status_code == 302
    code = granted.headers["Location"].split("code=", 1)[1].split("&")[0]
    first = exchange(code)
    assert first.status_code == 200 and first.json()["token_type"] == "Bearer"
    assert exchange(code).status_code == 400  # used
    # The token is the real API server's: it knows who it is.
    review = requests.post(oauth.url + "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                           verify=oauth_cluster.ca, timeout=30,
                           headers={"Authorization": "Bearer " + first.json()["access_token"]},
                           json={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                 "spec": {"resourceAttributes": {"verb": "create", "resource": "secrets",
                                                                 "namespace": SA_NAMESPACE}}})
    assert review.status_code == 201 and review.json()["status"]["allowed"] is False
    oauth.code_ttl, saved = 0, oauth.code_ttl
    try:
        stale = authorize(oauth.key).headers["Location"].split("code=", 1)[1].split("&")[0]
    finally:
        oauth.code_ttl = saved
    assert exchange(stale).status_code == 400  # expired


def awx_credential_type():
    """The inputs and injectors of the API key credential type of docs/awx.md."""
    with open(os.path.join(REPO, "docs", "awx.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("### Red Hat OpenShift on IBM Cloud: log in with an IBM Cloud API key", 1)[1]
    blocks = re.findall(r"```yaml\n(.*?)```", section.split("\n### ", 1)[0], re.S)
    return yaml.safe_load(blocks[0]), yaml.safe_load(blocks[1])


def test_the_awx_credential_type_of_the_docs_logs_in(oauth, oauth_cluster, fixture_api, namespace, tmp_path):
    """The credential type as AWX injects it: env templates, the CA as a file, unset fields empty."""
    inputs, injectors = awx_credential_type()
    fields = [field["id"] for field in inputs["fields"]]
    assert inputs["required"] == ["host", "apikey"] and "ca_cert" in fields
    with open(oauth_cluster.ca, encoding="ascii") as handle:
        values = dict.fromkeys(fields, "")
        values.update(host=oauth.url, apikey=oauth.key, ca_cert=handle.read())
    jinja = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    filenames = {}
    for key, template in injectors["file"].items():
        path = filenames[key.split(".", 1)[1]] = str(tmp_path / ("credential-" + key))
        with open(path, "w", encoding="ascii") as handle:
            handle.write(jinja.from_string(template).render(**values))
    env = {key: jinja.from_string(template).render(tower={"filename": filenames}, **values)
           for key, template in injectors["env"].items()}
    assert env["K8S_AUTH_USERNAME"] == "apikey" and env["K8S_AUTH_SSL_CA_CERT"] == filenames["ca_cert"]
    log = audit_log.AuditLog(oauth_cluster.audit_log)
    mark = log.mark()
    result = Runner(None, workdir=str(tmp_path)).run(
        [], plays=play([pull_secret_task(namespace)]), env=dict(NO_CALLER_CONNECTION, **env))
    assert result.rc == 0, result.stdout[-3000:]
    assert secret_exists(fixture_api[0], namespace)
    assert writes(log, mark, IDENTITY, namespace) == [("create", "secrets", SECRET)]
    assert_nothing_secret(result, oauth.key)


class TunnelProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy for HTTPS (CONNECT tunnels) on 127.0.0.1 that wants basic proxy credentials.

    It only tunnels to 127.0.0.1 and records each CONNECT (target, whether its credentials
    were right), so a test sees which requests went through it.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials):
        self.expected = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.tunnels = []
        super().__init__(("127.0.0.1", 0), TunnelHandler)
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class TunnelHandler(socketserver.StreamRequestHandler):
    def handle(self):
        request = self.rfile.readline().decode("latin-1").split()
        headers = {}
        for line in iter(self.rfile.readline, b"\r\n"):
            if not line:
                return
            name, _sep, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if len(request) != 3 or request[0] != "CONNECT" or not request[1].startswith("127.0.0.1:"):
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        authorized = headers.get("proxy-authorization") == self.server.expected
        self.server.tunnels.append((request[1], authorized))
        if not authorized:
            self.wfile.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"proxy\"\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", int(request[1].split(":")[1])), timeout=60)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _w, _x = select.select(sockets, [], [], 60)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()


# The kubernetes client reads NO_PROXY itself; none here, so that the proxy option applies.
NO_PROXY_ENV = dict(NO_CALLER_CONNECTION, NO_PROXY="", no_proxy="")


def test_login_and_api_requests_go_through_the_proxy_option(oauth, oauth_cluster, fixture_api, namespace, tmp_path):
    """kubernetes.core's proxy and proxy_headers.proxy_basic_auth serve the login as they serve the API."""
    proxy = TunnelProxy("proxy-user:" + "CANARY-proxy-pw")
    try:
        defaults = {"host": oauth.url, "username": "apikey", "password": oauth.key, "ca_cert": oauth_cluster.ca,
                    "proxy": proxy.url, "proxy_headers": {"proxy_basic_auth": "proxy-user:CANARY-proxy-pw"}}
        before = len(oauth.log)
        result = Runner(None, workdir=str(tmp_path)).run(
            [], plays=play([pull_secret_task(namespace)], defaults), env=NO_PROXY_ENV)
        assert result.rc == 0, result.stdout[-3000:]
        assert secret_exists(fixture_api[0], namespace)
        target = oauth.url.split("//", 1)[1]
        # Tunnels for discovery, the OAuth session (authorize and token on one connection)
        # and the API client's connection.
        assert len(proxy.tunnels) >= 3 and set(proxy.tunnels) == {(target, True)}, proxy.tunnels
        assert [e["outcome"] for e in oauth.log[before:]] == ["code", "token for " + IDENTITY]
        assert_nothing_secret(result, oauth.key, "CANARY-proxy-pw")

        # Wrong proxy credentials: the login (the first request) is refused by the proxy.
        del proxy.tunnels[:]
        defaults["proxy_headers"] = {"proxy_basic_auth": "proxy-user:wrong"}
        refused = Runner(None, workdir=str(tmp_path)).run(
            [], plays=play([pull_secret_task(namespace)], defaults), env=NO_PROXY_ENV)
        assert refused.rc != 0 and proxy.tunnels == [(target, False)], proxy.tunnels
        assert "check host, ca_cert, validate_certs and proxy" in refused["t"]["msg"], refused["t"]["msg"]
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_certificate_checking_applies_to_the_login(oauth, oauth_cluster, fixture_api, namespace, tmp_path):
    """Without ca_cert the stand-in's certificate is not trusted; validate_certs: false skips the check."""
    defaults = {"host": oauth.url, "username": "apikey", "password": oauth.key}
    untrusted = Runner(None, workdir=str(tmp_path)).run(
        [], plays=play([pull_secret_task(namespace)], defaults), env=NO_CALLER_CONNECTION)
    assert untrusted.rc != 0
    assert untrusted["t"]["msg"].startswith("Could not reach the OpenShift OAuth server of %s " % oauth.url)
    assert "(check host, ca_cert, validate_certs and proxy): SSLError" in untrusted["t"]["msg"]
    assert not secret_exists(fixture_api[0], namespace)

    result = Runner(None, workdir=str(tmp_path)).run(
        [], plays=play([pull_secret_task(namespace)], dict(defaults, validate_certs=False)), env=NO_CALLER_CONNECTION)
    assert result.rc == 0, result.stdout[-3000:]
    assert secret_exists(fixture_api[0], namespace)
