"""Token auth like icr.io: docker-registry with token auth, the token service stand-in, IAM
stand-in keys and policies; validate_credentials over Bearer; pods pulling icr.io names.

Real: docker-registry (distribution 2.8, ``auth.token``), skopeo, the collection's modules
through ansible-playbook, the node cluster (``.cluster-node``: Kubernetes 1.37, kubelet,
containerd 2.x). Stand-ins: IBM Cloud IAM (tests/standins/iam_server.py) and the
registry's token service (tests/standins/token_service.py), which asks IAM over its HTTP
API. Registries and token service: tests/standins/token_registry.py.

No test resolves or connects to a real icr.io host: the module's Python runs in a private
mount namespace whose /etc/hosts maps the icr.io names to the stand-in registries
(resolver 127.0.0.1), the node's own /etc/hosts maps them to 127.0.0.1 and its hosts.toml
mirrors send every pull to the stand-in's loopback addresses; strace records every
connect() of the module and of containerd, and the tests fail if one leaves 127.0.0.0/8.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import node_pods
from playbook import REPO, Runner

sys.path.insert(0, os.path.join(REPO, "tests", "standins"))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))

import iam_server  # noqa: E402  pylint: disable=wrong-import-position
import localnode  # noqa: E402  pylint: disable=wrong-import-position
import token_registry  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

US, CP = token_registry.IAM_DOMAIN, token_registry.ENTITLED_DOMAIN
TEAM = "ibmreg-team"          # the registry namespace that holds the test image
OTHER = "ibmreg-other"        # a registry namespace with nothing for our keys
IMAGE = "%s/%s/busybox:1" % (US, TEAM)
ENTITLED_IMAGE = "%s/cp/busybox:1" % CP
POD_TIMEOUT = 90


# --- fixtures -----------------------------------------------------------------------------


class Keys:
    """IAM stand-in identities for the tests: one per case, made over IAM's HTTP API."""

    def __init__(self, iam, admin_key):
        self.iam = iam
        self.client = token_registry.IamClient(iam.url, admin_key, iam_server.DEFAULT_ACCOUNT)

    def service_id(self, name, policies=()):
        sid = self.client.service_id("%s-%s" % (name, secrets.token_hex(3)))
        for roles, region, namespace in policies:
            self.client.policy(sid["iam_id"], roles, region, namespace)
        return sid

    def key(self, name, policies=()):
        sid = self.service_id(name, policies)
        key_id, value = self.client.api_key(sid["iam_id"], name + "-key")
        return {"service_id": sid, "id": key_id, "value": value}


@pytest.fixture(scope="module")
def admin_key():
    return "ADMIN-ibmcloud-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def iam(admin_key):
    server = iam_server.IamStandIn().start()
    server.add_admin_key(admin_key)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(iam, admin_key):
    return Keys(iam, admin_key)


@pytest.fixture(scope="module")
def registries(iam, admin_key, keys, tmp_path_factory):
    regs = token_registry.TokenRegistries(str(tmp_path_factory.mktemp("token-registry")), iam.url, admin_key).start()
    try:
        layout = localnode.app_layout()
        # Content: the image pushed by an IAM key with Writer (the push path), and the
        # entitled image by the stand-in's publisher (IBM publishes cp.icr.io).
        pusher = keys.key("pusher", [(["Writer"], "us-south", TEAM)])
        pushed = regs.push(layout, "1", US, TEAM + "/busybox", "iamapikey", pusher["value"])
        assert pushed.returncode == 0, pushed.stderr
        regs.publish(layout, "1", CP, "cp/busybox")
        yield regs
    finally:
        regs.stop()


@pytest.fixture(scope="module")
def reader(keys):
    return keys.key("reader", [(["Reader"], "us-south", TEAM)])


def _https(regs, url, headers=None, data=None, method=None):
    """(status, headers, parsed body) trusting only the stand-in CA, never through a proxy."""
    context = ssl.create_default_context(cafile=regs.pki["ca"])
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(url, headers=headers or {}, data=data, method=method)
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, response.headers, json.loads(response.read() or b"null"), response.reason
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read() or b"null"), exc.reason


def _basic(username, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (username, password)).encode()).decode()}


def token_get(regs, service, username, password, scope=None):
    query = [("service", service)] + ([("scope", scope)] if scope else [])
    url = regs.token.realm + "?" + urllib.parse.urlencode(query)
    return _https(regs, url, _basic(username, password) if username is not None else {})


def assert_refused(regs, answer, status, code, *words):
    got_status, headers, body, reason = answer
    assert got_status == status, (got_status, body)
    assert body["errors"][0]["code"] == code, body
    message = body["errors"][0]["message"]
    assert message.startswith("token service stand-in: "), message
    for word in words:
        assert word in message, message
    assert code in reason  # containerd shows only the status line: it carries the reason too
    if status == 401:
        challenge = headers.get("WWW-Authenticate") or ""
        assert challenge.startswith('Bearer realm="%s",service="' % regs.token.realm), challenge
    return message


# --- the registry and the token service ----------------------------------------------------


def test_registry_challenges_with_bearer_realm_service_and_scope(registries):
    regs = registries
    status, headers, body, _reason = _https(regs, "https://%s/v2/" % regs.addresses[US])
    assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED"
    assert headers["WWW-Authenticate"] == 'Bearer realm="%s",service="%s"' % (regs.token.realm, US)
    status, headers, _body, _reason = _https(regs, "https://%s/v2/%s/busybox/manifests/1" % (regs.addresses[US], TEAM))
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="%s",service="%s",scope="repository:%s/busybox:pull"' % (
        regs.token.realm, US, TEAM)


def test_a_reader_key_gets_a_token_the_registry_accepts(registries, reader):
    regs = registries
    scope = "repository:%s/busybox:pull" % TEAM
    status, _headers, body, _reason = token_get(regs, US, "iamapikey", reader["value"], scope)
    assert status == 200 and body["token"] == body["access_token"] and body["expires_in"] > 0
    claims = json.loads(base64.urlsafe_b64decode(body["token"].split(".")[1] + "=="))
    assert claims["aud"] == US and claims["sub"] == reader["service_id"]["iam_id"]
    assert claims["access"] == [{"type": "repository", "name": TEAM + "/busybox", "actions": ["pull"]}]
    manifest = "https://%s/v2/%s/busybox/manifests/1" % (regs.addresses[US], TEAM)
    accept = "application/vnd.oci.image.manifest.v1+json"
    status, _headers, _body, _reason = _https(regs, manifest, {"Authorization": "Bearer " + body["token"],
                                                               "Accept": accept})
    assert status == 200
    # The OAuth2 form that containerd POSTs: access_token.
    form = urllib.parse.urlencode({"grant_type": "password", "username": "iamapikey", "password": reader["value"],
                                   "service": US, "scope": scope, "client_id": "containerd-client"}).encode()
    status, _headers, body, _reason = _https(regs, regs.token.realm, {
        "Content-Type": "application/x-www-form-urlencoded"}, data=form, method="POST")
    assert status == 200 and body["access_token"] and "token" not in body
    # A token for the entitled registry is not one for us.icr.io (audience).
    status, _h, body, _r = token_get(regs, CP, "cp", regs.entitlement_key, "repository:cp/busybox:pull")
    assert status == 200
    status, _headers, _body, _reason = _https(regs, manifest, {"Authorization": "Bearer " + body["token"],
                                                               "Accept": accept})
    assert status == 401


def test_the_token_service_is_strict(registries, keys, reader, iam):
    regs = registries
    pull = "repository:%s/busybox:pull" % TEAM
    deleted = keys.key("deleted", [(["Reader"], "us-south", TEAM)])
    keys.client.delete_api_key(deleted["id"])
    nopolicy = keys.key("nopolicy")
    region = keys.key("eu", [(["Reader"], "eu-de", TEAM)])
    anywhere = keys.key("anywhere", [(["Reader"], None, None)])
    mark = regs.token.mark()
    iam_mark = iam.mark()
    assert_refused(regs, token_get(regs, US, None, None, pull), 401, "UNAUTHORIZED", "authentication required")
    assert_refused(regs, token_get(regs, US, "cp", reader["value"], pull), 401, "UNAUTHORIZED", "iamapikey")
    assert_refused(regs, token_get(regs, US, "iamapikey", "never-made-" + secrets.token_hex(8), pull), 401,
                   "UNAUTHORIZED", "IAM does not know this API key")
    assert_refused(regs, token_get(regs, US, "iamapikey", deleted["value"], pull), 401, "UNAUTHORIZED",
                   "deleted")
    assert_refused(regs, token_get(regs, US, "iamapikey", nopolicy["value"], pull), 403, "DENIED",
                   "has no IBM Cloud Container Registry access policy")
    # Login without a scope still needs a policy for the registry's region.
    assert_refused(regs, token_get(regs, US, "iamapikey", nopolicy["value"]), 403, "DENIED", "access policy")
    assert_refused(regs, token_get(regs, US, "iamapikey", region["value"], pull), 403, "DENIED",
                   "applies to region us-south")
    assert_refused(regs, token_get(regs, US, "iamapikey", region["value"]), 403, "DENIED", "region us-south")
    assert_refused(regs, token_get(regs, US, "iamapikey", reader["value"], "repository:%s/busybox:pull" % OTHER),
                   403, "DENIED", "covers namespace %s" % OTHER)
    assert_refused(regs, token_get(regs, US, "iamapikey", reader["value"], "repository:%s/busybox:pull,push" % TEAM),
                   403, "DENIED", "does not allow push")
    # No region and no namespace on the policy: every region and namespace.
    assert token_get(regs, US, "iamapikey", anywhere["value"], "repository:%s/x:pull" % OTHER)[0] == 200
    # The entitled registry: cp and an entitlement key, cp/ images, pull only.
    ent = regs.entitlement_key
    assert token_get(regs, CP, "cp", ent, "repository:cp/busybox:pull")[0] == 200
    assert_refused(regs, token_get(regs, CP, "iamapikey", ent, "repository:cp/busybox:pull"), 401, "UNAUTHORIZED",
                   "username cp")
    assert_refused(regs, token_get(regs, CP, "cp", "wrong-" + secrets.token_hex(8), "repository:cp/busybox:pull"),
                   401, "UNAUTHORIZED", "entitlement key is not valid")
    assert_refused(regs, token_get(regs, CP, "cp", ent, "repository:%s/busybox:pull" % TEAM), 403, "DENIED", "cp/")
    assert_refused(regs, token_get(regs, CP, "cp", ent, "repository:cp/busybox:pull,push"), 403, "DENIED", "push")
    status, _h, body, _r = token_get(regs, "registry.example", "cp", ent)
    assert status == 400 and body["errors"][0]["code"] == "UNSUPPORTED"
    # The log names users and scopes, never a key; asking IAM wrote nothing there.
    logged = json.dumps(regs.token.requests(mark))
    for value in (reader["value"], deleted["value"], nopolicy["value"], ent):
        assert value not in logged
    assert iam.writes(iam_mark) == []


def test_skopeo_pulls_through_the_token_flow(registries, reader, keys):
    regs = registries

    def inspect(domain, repository, username, password):
        return subprocess.run(["skopeo", "inspect", "--raw", "--cert-dir", regs.pki["cert_dir"],
                               "--creds", "%s:%s" % (username, password),
                               "docker://%s/%s:1" % (regs.addresses[domain], repository)],
                              capture_output=True, text=True, check=False, timeout=60,
                              env=token_registry._no_proxy_env())  # pylint: disable=protected-access

    assert inspect(US, TEAM + "/busybox", "iamapikey", reader["value"]).returncode == 0
    assert inspect(CP, "cp/busybox", "cp", regs.entitlement_key).returncode == 0
    refused = inspect(US, TEAM + "/busybox", "iamapikey", keys.key("nothing")["value"])
    assert refused.returncode != 0 and "403" in refused.stderr


# --- validate_credentials over Bearer, check_login directly --------------------------------


def _check_login():
    from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets import (  # pylint: disable=import-outside-toplevel
        registry_login,
    )
    return registry_login


def test_check_login_against_the_token_registry(registries, reader, keys):
    """By address (nothing resolves a name here); the module runs by name further down."""
    rl = _check_login()
    regs = registries
    us = regs.addresses[US]
    rl.check_login(us, "iamapikey", reader["value"], ca_path=regs.pki["ca"])
    rl.check_login(regs.addresses[CP], "cp", regs.entitlement_key, ca_path=regs.pki["ca"])
    cases = [
        ("iamapikey", keys.key("gone", [(["Reader"], "us-south", None)]), "IAM does not know this API key", True),
        ("iamapikey", keys.key("bare"), "has no IBM Cloud Container Registry access policy", False),
        ("iamapikey", keys.key("tokyo", [(["Reader"], "jp-tok", None)]), "applies to region us-south", False),
        ("someone", reader, "takes username iamapikey", False),
    ]
    for username, key, words, delete in cases:
        if delete:
            keys.client.delete_api_key(key["id"])
        with pytest.raises(rl.LoginError) as err:
            rl.check_login(us, username, key["value"], ca_path=regs.pki["ca"])
        assert words in str(err.value) and key["value"] not in str(err.value)
        assert "token service %s" % regs.token.realm in str(err.value)


# --- the module, by the real names, in a namespace that maps them to loopback ----------------


@pytest.fixture
def namespaces(core):
    with node_pods.namespace_maker(core, "tokreg-", timeout=POD_TIMEOUT) as create:
        yield create


class Plays:
    """ansible-playbook against the node cluster and the IAM stand-in; the module's Python
    in a mount namespace with the icr.io names on loopback, its connect()s traced."""

    def __init__(self, cluster, iam, admin_key, regs, workdir):
        self.runner = Runner(cluster.kubeconfig, workdir=workdir)
        self.iam = iam
        self.admin_key = admin_key
        self.trace = os.path.join(workdir, "connect.trace")
        self.python = regs.interpreter(os.path.join(workdir, "ns"), sys.executable, self.trace)

    def run(self, tasks, **kwargs):
        plays = [{"name": "token registry", "hosts": "localhost", "connection": "local", "gather_facts": False,
                  "module_defaults": {"group/ibmcloud.registry.kube": {"kubeconfig": self.runner.kubeconfig},
                                      "group/ibmcloud.registry.iam": {"iam_url": self.iam.url}},
                  "tasks": tasks}]
        env = {"IC_API_KEY": self.admin_key, "ANSIBLE_PYTHON_INTERPRETER": self.python}
        return self.runner.run(tasks, plays=plays, env=env, **kwargs)

    def connects(self):
        with open(self.trace, encoding="utf-8", errors="replace") as src:
            return token_registry.connect_targets(src.read())


@pytest.fixture
def plays(cluster, iam, admin_key, registries, tmp_path):
    """On the suite's cluster: validate_credentials needs no node."""
    return Plays(cluster, iam, admin_key, registries, str(tmp_path))


@pytest.fixture
def node_plays(node_cluster, iam, admin_key, registries, tmp_path):
    return Plays(node_cluster, iam, admin_key, registries, str(tmp_path))


def _validate(ns, source, **extra):
    args = {"name": "checked", "namespaces": [ns], "validate_credentials": True, **source, **extra}
    return {"name": "t", "ibmcloud.registry.icr_pull_secret": args}


def test_validate_credentials_over_bearer_passes_good_keys_by_the_real_names(plays, registries, reader,
                                                                             unique_ns, kube_fixture_client):
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    core = client.CoreV1Api(kube_fixture_client)
    regs = registries
    ns = unique_ns()
    ca = {"registry_ca_path": regs.pki["ca"]}
    result = plays.run([
        dict(_validate(ns, {"iam_api_key": reader["value"], "regions": ["us-south"], "endpoints": ["public"]},
                       **ca), name="iam"),
        dict(_validate(ns, {"entitlement_key": regs.entitlement_key}, name="entitled", **ca), name="entitled"),
        dict(_validate(ns, {"registry": {"server": regs.addresses[US], "username": "iamapikey",
                                         "password": reader["value"]}}, name="any", **ca), name="any"),
    ])
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for task in ("iam", "entitled", "any"):
        assert result[task]["changed"], result[task]
    assert {s.metadata.name for s in core.list_namespaced_secret(ns).items} >= {"checked", "entitled", "any"}
    # The token service saw the three logins, by service and user.
    logins = [(e["service"], e["username"], e["status"]) for e in regs.token.requests()[-3:]]
    assert sorted(logins) == sorted([(US, "iamapikey", 200), (CP, "cp", 200), (US, "iamapikey", 200)])
    targets = plays.connects()
    assert regs.addresses[US] in targets and regs.addresses[CP] in targets and regs.addresses["token"] in targets
    assert token_registry.off_loopback(targets) == [], targets


@pytest.mark.parametrize("case, words", [
    ("deleted", "IAM does not know this API key (deleted"),
    ("no_policy", "has no IBM Cloud Container Registry access policy"),
    ("wrong_region", "no Container Registry policy of"),
])
def test_validate_credentials_says_why_and_writes_nothing(plays, registries, keys, iam, audit, unique_ns,
                                                          case, words):
    regs = registries
    key = {"deleted": lambda: keys.key("deleted", [(["Reader"], "us-south", None)]),
           "no_policy": lambda: keys.key("none"),
           "wrong_region": lambda: keys.key("frankfurt", [(["Reader"], "eu-de", None)])}[case]()
    if case == "deleted":
        keys.client.delete_api_key(key["id"])
    ns = unique_ns()
    mark, iam_mark = audit.mark(), iam.mark()
    result = plays.run([_validate(ns, {"iam_api_key": key["value"], "regions": ["us-south"],
                                       "endpoints": ["public"]}, registry_ca_path=regs.pki["ca"])])
    task = result["t"]
    assert result.rc != 0 and task.get("failed"), task
    assert words in task["msg"] and "nothing was written" in task["msg"], task["msg"]
    if case == "wrong_region":
        assert "applies to region us-south" in task["msg"]
    assert key["value"] not in result.stdout + result.stderr
    assert audit.writes(mark, namespace_prefix=ns) == []
    assert audit.count(mark)  # the module did read the cluster: the log is not silent
    assert iam.writes(iam_mark) == []
    assert token_registry.off_loopback(plays.connects()) == []


# --- pods on the node pull icr.io names through hosts.toml mirrors --------------------------


@pytest.fixture(scope="module")
def node_mirrors(node_cluster, registries):
    with registries.node_hosts(os.path.join(localnode.node_dir(node_cluster.state_dir), "certs.d")):
        yield registries


def wait_pull_refused(core, namespace, name="app"):
    """ErrImagePull; returns the pod's waiting message and events, where the reason is."""
    return node_pods.wait_pull_failed(core, namespace, name, without="a usable pull secret", timeout=POD_TIMEOUT)


class ConnectTrace:
    """strace -f attached to the node's containerd and kubelet: every connect() while it runs."""

    def __init__(self, cluster, path):
        argv = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", path]
        for name in ("containerd", "kubelet"):
            pid = cluster.pids[name]
            with open("/proc/%d/comm" % pid, encoding="ascii") as comm:
                assert comm.read().strip() == name
            argv += ["-p", str(pid)]
        self.path = path
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # attached to every thread

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)
        with open(self.path, encoding="utf-8", errors="replace") as src:
            return token_registry.connect_targets(src.read())


def _iam_secret_task(service_id, ns, policy=True):
    tasks = []
    if policy:
        tasks.append({"name": "policy", "ibmcloud.registry.iam_registry_policy": {
            "service_id": service_id, "roles": ["Reader"], "regions": ["us-south"], "resource_namespaces": [TEAM]}})
    tasks.append({"name": "key", "ibmcloud.registry.iam_pull_secret": {
        "service_id": service_id, "name": "icr-io", "regions": ["us-south"], "namespaces": [ns],
        "service_accounts": ["default"]}})
    return tasks


def test_pods_pull_icr_io_names_through_the_token_registry(node_mirrors, node_plays, keys, core, namespaces,
                                                           node_cluster, tmp_path):
    regs = node_mirrors
    minted, bare, nopolicy, deleted, entitled = (namespaces() for _unused in range(5))
    # The collection mints the key: a service ID with a Reader policy, iam_pull_secret.
    sid = keys.service_id("pods")["name"]
    result = node_plays.run(_iam_secret_task(sid, minted))
    assert result.rc == 0, result.stdout[-3000:]
    # A service ID without any policy: the key is real, the registry says no.
    result = node_plays.run(_iam_secret_task(keys.service_id("nopol")["name"], nopolicy, policy=False))
    assert result.rc == 0, result.stdout[-3000:]
    # A key that IAM deleted after it went into the secret.
    gone = keys.key("gone", [(["Reader"], "us-south", TEAM)])
    result = node_plays.run([
        {"name": "iam", "ibmcloud.registry.icr_pull_secret": {
            "name": "icr-io", "iam_api_key": gone["value"], "regions": ["us-south"], "endpoints": ["public"],
            "namespaces": [deleted], "service_accounts": ["default"]}},
        {"name": "cp", "ibmcloud.registry.icr_pull_secret": {
            "entitlement_key": regs.entitlement_key, "namespaces": [entitled], "service_accounts": ["default"]}}])
    assert result.rc == 0, result.stdout[-3000:]
    keys.client.delete_api_key(gone["id"])

    trace = ConnectTrace(node_cluster, str(tmp_path / "containerd.trace"))
    try:
        for ns in (minted, bare, nopolicy, deleted):
            node_pods.create_pod(core, ns, IMAGE)
        node_pods.create_pod(core, entitled, ENTITLED_IMAGE)
        node_pods.wait_running(core, minted, timeout=POD_TIMEOUT)
        node_pods.wait_running(core, entitled, timeout=POD_TIMEOUT)
        no_secret = wait_pull_refused(core, bare)
        no_policy = wait_pull_refused(core, nopolicy)
        deleted_key = wait_pull_refused(core, deleted)
    finally:
        targets = trace.stop()
    assert "authentication required" in no_secret, no_secret
    assert "has no IBM Cloud Container Registry access policy" in no_policy, no_policy
    assert "IAM does not know this API key" in deleted_key, deleted_key
    # containerd went to the stand-ins only, on loopback.
    assert regs.addresses[US] in targets and regs.addresses["token"] in targets, targets
    assert token_registry.off_loopback(targets) == [], targets
    assert token_registry.off_loopback(node_plays.connects()) == []
    # The token service saw the minted key's service ID pull, and cp pull cp/busybox.
    granted = {(e["service"], e["username"], tuple(e["scopes"])) for e in regs.token.requests() if e["status"] == 200}
    assert (US, "iamapikey", ("repository:%s/busybox:pull" % TEAM,)) in granted
    assert (CP, "cp", ("repository:cp/busybox:pull",)) in granted


def test_the_node_maps_the_icr_io_names_to_loopback(node_cluster):
    """The backstop: inside the node's mount namespace, the names the tests use are 127.0.0.1."""
    holder = node_cluster.pids["node-ns"]
    for name in (US, CP, "icr.io"):
        resolved = subprocess.run(["nsenter", "--mount=/proc/%d/ns/mnt" % holder, "--", "getent", "hosts", name],
                                  capture_output=True, text=True, check=False, timeout=30)
        assert resolved.returncode == 0 and resolved.stdout.split()[0] == "127.0.0.1", (name, resolved.stdout)
