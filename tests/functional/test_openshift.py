"""The OpenShift modules against the real local kube-apiserver, through ansible-playbook.

There is no OpenShift here. The cluster is ``<repo>/.cluster-ocp``, Kubernetes 1.37
(localcluster.py --node), so that the real Route and image registry Config CRDs of
openshift/api, with their CEL rules, are enforced. tests/standins/openshift_flavour.py
installs those CRDs and the objects of an OpenShift 4 cluster (LOCAL STAND-IN),
tests/standins/openshift_apiserver.py writes ImageStreams and BuildConfigs as
openshift-apiserver does (LOCAL STAND-IN), and tests/standins/router.py admits
Routes the way the router does (LOCAL STAND-IN). Each module is run in check mode
(zero writes), for real, again (``changed: false`` and zero writes in the audit log),
and in check mode again. The plain-Kubernetes test starts a second local cluster
without the CRDs.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "standins"))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))

import audit as audit_log  # noqa: E402  pylint: disable=wrong-import-position
import localcluster  # noqa: E402  pylint: disable=wrong-import-position
import openshift_flavour as flavour  # noqa: E402  pylint: disable=wrong-import-position
from image_importer import ImageImporterStandIn  # noqa: E402  pylint: disable=wrong-import-position
from openshift_apiserver import OpenShiftAPIServerStandIn  # noqa: E402  pylint: disable=wrong-import-position
from registry_operator import RegistryOperatorStandIn  # noqa: E402  pylint: disable=wrong-import-position
from route_admission import RouteAdmissionStandIn  # noqa: E402  pylint: disable=wrong-import-position
from router import DEFAULT_DOMAIN, IGNORE_LABEL, RouterStandIn  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

ROUTES = ("route.openshift.io", "v1", "routes")
STREAMS = ("image.openshift.io", "v1", "imagestreams")
BUILDS = ("build.openshift.io", "v1", "buildconfigs")


def tls_pair(tmp_path, host, name="tls"):
    """(certificate, key, canary): a real self-signed certificate for ``host`` and its key (openssl);
    the canary is a line of the key that must never appear in output."""
    cert, key = tmp_path / (name + ".crt"), tmp_path / (name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=" + host,
                    "-addext", "subjectAltName=DNS:" + host, "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    key_text = key.read_text()
    return cert.read_text(), key_text, key_text.splitlines()[3]


OCP_CLUSTER_DIR = os.path.join(REPO, ".cluster-ocp")


@pytest.fixture(scope="module")
def cluster():
    """This file's own 1.37 cluster (CEL rules of the real CRDs need 1.25 or later)."""
    return localcluster.ensure_running(OCP_CLUSTER_DIR, node=True)


@pytest.fixture(scope="module")
def openshift(cluster, kube_fixture_client):
    """The OpenShift 4 stand-in objects, openshift-apiserver's write semantics and a running router stand-in."""
    flavour.install(cluster.fixture_kubeconfig, kube_fixture_client)
    with RouteAdmissionStandIn(cluster.fixture_kubeconfig), OpenShiftAPIServerStandIn(cluster.fixture_kubeconfig), \
            RouterStandIn(cluster.fixture_kubeconfig) as router:
        yield router


@pytest.fixture
def core(kube_fixture_client):
    return k8s.CoreV1Api(kube_fixture_client)


@pytest.fixture
def custom(kube_fixture_client):
    return k8s.CustomObjectsApi(kube_fixture_client)


@pytest.fixture
def ocp(runner, cluster):
    """run(module, args, check=False, diff=False, kubeconfig=None) -> (PlayResult, task result)."""

    def run(module, args, check=False, diff=False, kubeconfig=None):
        task = {"name": "t", "ibmcloud.registry." + module: dict(args, kubeconfig=kubeconfig or cluster.kubeconfig)}
        played = runner.run([task], check=check, diff=diff)
        return played, played.tasks.get("t", {})

    return run


CONFIG_SCOPE = "(the cluster-scoped image registry Config)"


def writes(audit, mark, scope):
    """The client's (user admin) writes since mark in namespaces starting with ``scope``,
    or to the operator Config with CONFIG_SCOPE. Scoped, so that tests running at the same
    time in other namespaces do not count."""
    if scope == CONFIG_SCOPE:
        return [w for w in audit.writes(mark) if w["resource"].startswith("configs")]
    return [w for w in audit.writes(mark) if w["namespace"].startswith(scope)]


def converge(ocp, audit, scope, module, args, diff=False):
    """Check mode, real run, rerun, check-mode rerun; asserts changed flags and write counts."""
    runs = {}
    for label, check in (("check", True), ("first", False), ("second", False), ("check_again", True)):
        mark = audit.mark()
        played, result = ocp(module, args, check=check, diff=diff)
        assert played.rc == 0, (label, played.stdout[-3000:], played.stderr[-2000:])
        made = writes(audit, mark, scope)
        if label == "first":
            assert made, "the first run wrote nothing"
            assert result["changed"] is True
        else:
            assert made == [], (label, made)
        if label in ("second", "check_again"):
            assert result["changed"] is False, (label, result)
        runs[label] = result
        runs[label + "_stdout"] = played.stdout
    assert runs["check"]["changed"] is True
    return runs


def service(core, namespace, name="image-registry", port_name="5000-tcp"):
    core.create_namespaced_service(namespace, {"metadata": {"name": name}, "spec": {
        "selector": {"app": name}, "ports": [{"name": port_name, "port": 5000, "targetPort": 5000}]}})


def get_route(custom, namespace, name):
    return custom.get_namespaced_custom_object(ROUTES[0], ROUTES[1], namespace, ROUTES[2], name)


def delete_route(custom, namespace, name):
    try:
        custom.delete_namespaced_custom_object(ROUTES[0], ROUTES[1], namespace, ROUTES[2], name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def wait_admitted(custom, namespace, name, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        route = get_route(custom, namespace, name)
        for entry in (route.get("status") or {}).get("ingress") or []:
            if any(c["type"] == "Admitted" and c["status"] == "True" for c in entry.get("conditions") or []):
                return route
        time.sleep(0.2)
    raise AssertionError("route %s/%s not admitted by the router stand-in" % (namespace, name))


# --- 1. route --------------------------------------------------------------------------

def test_route_for_the_internal_registry_like_the_seed(openshift, ocp, audit, custom):
    """Seed steps 1-4 with every default: reencrypt route, balance=source, admitted host."""
    delete_route(custom, flavour.REGISTRY_NS, "image-registry")
    runs = converge(ocp, audit, flavour.REGISTRY_NS, "ocp_registry_route", {"wait_timeout": 30}, diff=True)
    expected_host = "image-registry-openshift-image-registry." + DEFAULT_DOMAIN
    first = runs["first"]
    assert (first["result"]["action"], first["host"], first["admitted"], first["router"], first["flavour"]) == \
        ("created", expected_host, True, "default", "openshift4")
    assert (runs["check"]["result"]["action"], runs["check"]["admitted"]) == ("created", False)
    # The router-assigned host is kept and is no difference on later runs.
    assert runs["second"]["host"] == expected_host and runs["second"]["result"]["action"] == "unchanged"
    assert runs["check_again"]["host"] == expected_host
    route = get_route(custom, flavour.REGISTRY_NS, "image-registry")
    assert route["metadata"]["annotations"] == {"haproxy.router.openshift.io/balance": "source"}
    assert route["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "ibmcloud.registry"}
    assert route["spec"]["to"] == {"kind": "Service", "name": "image-registry", "weight": 100}
    assert route["spec"]["port"] == {"targetPort": "5000-tcp"}
    assert route["spec"]["tls"] == {"termination": "reencrypt"}
    assert route["spec"]["host"] == expected_host


def test_route_custom_host_certificates_redacted_and_updates(openshift, ocp, audit, unique_ns, core, custom,
                                                             tmp_path):
    namespace = unique_ns("reg")
    service(core, namespace, "registry")
    host = "registry-%s.example.com" % unique_ns.prefix.strip("-")[-12:]
    cert_pem, key_pem, canary = tls_pair(tmp_path, host)
    ca_pem = cert_pem
    args = {"namespace": namespace, "service": "registry", "hostname": host,
            "tls": {"certificate": cert_pem, "key": key_pem, "ca_certificate": ca_pem}}
    runs = converge(ocp, audit, unique_ns.prefix, "ocp_registry_route", args, diff=True)
    assert runs["first"]["host"] == host and runs["first"]["admitted"] is True
    for label in ("check", "first", "second", "check_again"):
        assert canary not in runs[label + "_stdout"], label
    tls = runs["first"]["diff"]["after"]["tls"]
    assert tls["key"] == "********" and tls["certificate"].startswith("sha256:")
    route = get_route(custom, namespace, "registry")
    assert route["spec"]["tls"] == {"termination": "reencrypt", "certificate": cert_pem, "key": key_pem,
                                    "caCertificate": ca_pem}
    assert route["spec"]["host"] == host

    # A new key (and its certificate) and another balance: one conditional patch, the diff
    # says the key changed.
    new_cert, new_key, new_canary = tls_pair(tmp_path, host, "new")
    mark = audit.mark()
    played, result = ocp("ocp_registry_route", dict(args, balance="roundrobin",
                                                    tls=dict(args["tls"], certificate=new_cert, key=new_key)),
                         diff=True)
    assert played.rc == 0, played.stdout[-2000:]
    assert result["result"] == {"namespace": namespace, "name": "registry", "action": "updated"} and result["changed"] is True
    assert result["diff"]["after"]["tls"]["key"] == "******** (changed)"
    assert [w["verb"] for w in writes(audit, mark, unique_ns.prefix)] == ["patch"]
    assert new_canary not in played.stdout
    route = get_route(custom, namespace, "registry")
    assert route["metadata"]["annotations"]["haproxy.router.openshift.io/balance"] == "roundrobin"
    assert route["spec"]["tls"]["key"] == new_key and route["spec"]["tls"]["caCertificate"] == ca_pem


def test_router_standin_extended_validation_and_shared_hosts(openshift, ocp, unique_ns, core, custom, tmp_path):
    """The router rejects certificates that do not match their key; one namespace may share a
    host between paths, another namespace may not (the oldest route keeps it)."""
    namespace = unique_ns("ev")
    service(core, namespace)
    host = "ev-%s.example.com" % unique_ns.prefix.strip("-")[-12:]
    cert, _key, _canary = tls_pair(tmp_path, host)
    _cert, other_key, canary = tls_pair(tmp_path, host, "other")
    played, result = ocp("ocp_registry_route", {"namespace": namespace, "hostname": host, "wait_timeout": 30,
                                                "tls": {"certificate": cert, "key": other_key}})
    assert played.rc != 0 and "ExtendedValidationFailed" in result["msg"]
    assert "private key does not match public key" in result["msg"] and canary not in played.stdout

    shared = "shared-%s.example.com" % unique_ns.prefix.strip("-")[-12:]
    other = unique_ns("other")
    body = {"apiVersion": "route.openshift.io/v1", "kind": "Route",
            "spec": {"host": shared, "to": {"kind": "Service", "name": "image-registry"}}}
    for ns, name, path in ((namespace, "root", None), (namespace, "api", "/api"), (other, "thief", None)):
        route = json.loads(json.dumps(body))
        route["metadata"] = {"name": name}
        if path:
            route["spec"]["path"] = path
        custom.create_namespaced_custom_object(ROUTES[0], ROUTES[1], ns, ROUTES[2], route)
        time.sleep(1.1)  # creation timestamps have a resolution of one second
    wait_admitted(custom, namespace, "root")
    wait_admitted(custom, namespace, "api")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ingress = (get_route(custom, other, "thief").get("status") or {}).get("ingress") or []
        if ingress:
            break
        time.sleep(0.2)
    (entry,) = ingress
    assert (entry["conditions"][0]["status"], entry["conditions"][0]["reason"]) == ("False", "HostAlreadyClaimed")
    assert entry["routerCanonicalHostname"] == "router-default." + DEFAULT_DOMAIN


def test_route_wait_is_bounded_and_rejection_is_reported(openshift, ocp, audit, unique_ns, core):
    silent = unique_ns("silent")
    service(core, silent)
    core.patch_namespace(silent, {"metadata": {"labels": {IGNORE_LABEL: "true"}}})  # no router answers there
    started = time.monotonic()
    played, result = ocp("ocp_registry_route", {"namespace": silent, "wait_timeout": 2})
    assert played.rc != 0
    assert "was not admitted by a router within 2s" in result["msg"]
    assert result["changed"] is True  # the route was created; only admission is missing
    assert time.monotonic() - started < 100  # far below the default wait_timeout of 120 s, on a loaded machine too

    first, second = unique_ns("a"), unique_ns("b")
    host = "claimed-%s.example.com" % unique_ns.prefix.strip("-")[-12:]
    for namespace in (first, second):
        service(core, namespace)
    played, result = ocp("ocp_registry_route", {"namespace": first, "hostname": host})
    assert played.rc == 0 and result["host"] == host
    played, result = ocp("ocp_registry_route", {"namespace": second, "hostname": host, "wait_timeout": 30})
    assert played.rc != 0
    assert "rejected Route %s/image-registry" % second in result["msg"]
    assert "HostAlreadyClaimed" in result["msg"]


def test_route_validates_before_writing(openshift, ocp, audit, unique_ns, core):
    bare = unique_ns("bare")
    mark = audit.mark()
    played, result = ocp("ocp_registry_route", {"namespace": bare})
    assert played.rc != 0 and "Service image-registry not found in namespace %s" % bare in result["msg"]
    service(core, bare, port_name="http")
    played, result = ocp("ocp_registry_route", {"namespace": bare})
    assert played.rc != 0 and "target_port 5000-tcp matches no port of Service" in result["msg"]
    played, result = ocp("ocp_registry_route", {"namespace": bare, "tls": {"certificate": "cert.pem",
                                                                           "key": "key.pem"}})
    assert played.rc != 0 and "must be PEM content" in result["msg"]
    played, result = ocp("ocp_registry_route", {"namespace": bare, "hostname": "https://x.example.com"})
    assert played.rc != 0 and "not a valid host name" in result["msg"]
    # OpenShift's host rules, checked before any request (the admission stand-in enforces them too).
    long_label = "a" * 64
    for host, message in (("registry.example.com.", "must not end with a dot"),
                          (long_label + ".example.com", "has a label longer than 63 characters")):
        started = audit.mark()
        played, result = ocp("ocp_registry_route", {"namespace": bare, "hostname": host})
        assert played.rc != 0 and message in result["msg"], result["msg"]
        assert audit.requests(started, namespace_prefix=unique_ns.prefix) == []
    assert writes(audit, mark, unique_ns.prefix) == []


def test_route_admission_standin_enforces_host_rules(openshift, unique_ns, custom):
    """LOCAL STAND-IN check: the API server refuses what openshift-apiserver refuses. The real
    CRD's host pattern refuses a trailing dot and long labels before the webhook is asked;
    upper case passes the pattern and is refused by the admission stand-in."""
    namespace = unique_ns("adm")
    for host, message in (("x.example.com.", "spec.host: Invalid value"),
                          ("a" * 64 + ".example.com", "spec.host: Invalid value"),
                          ("X.example.com", "a lowercase RFC 1123 subdomain")):
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(ROUTES[0], ROUTES[1], namespace, ROUTES[2], {
                "apiVersion": "route.openshift.io/v1", "kind": "Route", "metadata": {"name": "r"},
                "spec": {"host": host, "to": {"kind": "Service", "name": "s"}}})
        assert refused.value.status == 422 and message in refused.value.body


# --- 2. storage and state -----------------------------------------------------------------

def test_registry_config_volume_emptydir_state_and_default_route(openshift, cluster, ocp, audit, kube_fixture_client,
                                                                 custom):
    # An IBM Cloud Satellite-like start: PVC storage, operator Unmanaged.
    flavour.reset_config(kube_fixture_client, dict(flavour.BASELINE_CONFIG, managementState="Unmanaged"))
    delete_route(custom, flavour.REGISTRY_NS, "default-route")
    try:
        # Viewing volume details: a read, no write.
        mark = audit.mark()
        played, result = ocp("ocp_registry_config", {})
        assert played.rc == 0 and result["changed"] is False
        assert result["volume"]["name"] == "image-registry-storage"
        assert (result["volume"]["size"], result["volume"]["storage_class"], result["volume"]["phase"]) == \
            ("100Gi", "ibmc-file-gold", "Pending")
        assert result["storage"] == {"type": "pvc", "persistent": True}
        assert writes(audit, mark, CONFIG_SCOPE) == []

        # emptyDir only when asked explicitly.
        played, result = ocp("ocp_registry_config", {"storage": "emptyDir"})
        assert played.rc != 0 and "allow_non_persistent_storage" in result["msg"]
        assert writes(audit, mark, CONFIG_SCOPE) == []

        args = {"storage": "emptyDir", "allow_non_persistent_storage": True, "management_state": "Managed"}
        runs = converge(ocp, audit, CONFIG_SCOPE, "ocp_registry_config", args, diff=True)
        for label in ("check", "first", "second"):
            assert any("not persistent" in w for w in runs[label].get("warnings", [])), label
        assert runs["first"]["storage"] == {"type": "emptyDir", "persistent": False}
        assert runs["first"]["result"] == {"name": "cluster", "action": "updated"}
        assert runs["second"]["result"] == {"name": "cluster", "action": "unchanged"}
        assert runs["first"]["diff"] == {
            "before": {"management_state": "Unmanaged", "storage": "pvc", "default_route": False,
                       "pvc_claim": "image-registry-storage"},
            "after": {"management_state": "Managed", "storage": "emptyDir", "default_route": False}}
        spec = flavour.read_config(kube_fixture_client)["spec"]
        # logLevel and operatorLogLevel: the defaults of the real CRD's schema.
        assert spec == {"managementState": "Managed", "replicas": 1, "storage": {"emptyDir": {}},
                        "logLevel": "Normal", "operatorLogLevel": "Normal"}

        # The operator's own route as the alternative to ocp_registry_route: the operator
        # stand-in creates default-route (reencrypt, no port, its annotation), the router
        # stand-in admits it.
        with RegistryOperatorStandIn(cluster.fixture_kubeconfig):
            runs = converge(ocp, audit, CONFIG_SCOPE, "ocp_registry_config", {"default_route": True})
            assert runs["first"]["config"]["default_route"] is True
            route = wait_admitted(custom, flavour.REGISTRY_NS, "default-route")
            assert route["metadata"]["annotations"] == {"imageregistry.openshift.io": "true"}
            assert "port" not in route["spec"] and route["spec"]["tls"] == {"termination": "reencrypt"}
            mark = audit.mark()
            played, result = ocp("ocp_registry_config", {"default_route": True})
            assert played.rc == 0 and result["changed"] is False
            assert result["default_route_host"] == "default-route-openshift-image-registry." + DEFAULT_DOMAIN
            assert writes(audit, mark, CONFIG_SCOPE) == []

            # Back to a PVC the operator names and creates; default-route goes again.
            runs = converge(ocp, audit, CONFIG_SCOPE, "ocp_registry_config", {"storage": "pvc", "default_route": False})
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                spec = flavour.read_config(kube_fixture_client)["spec"]
                if (spec["storage"].get("pvc") or {}).get("claim"):
                    break
                time.sleep(0.2)
            assert spec["storage"] == {"managementState": "Managed", "pvc": {"claim": "image-registry-storage"}}
            wait_gone(custom, flavour.REGISTRY_NS, "default-route")
            # The operator's claim is any claim: nothing to change.
            mark = audit.mark()
            played, result = ocp("ocp_registry_config", {"storage": "pvc", "default_route": False})
            assert played.rc == 0 and result["changed"] is False and writes(audit, mark, CONFIG_SCOPE) == []

            # Removed with storage the operator manages: the images go with it, so a warning.
            runs = converge(ocp, audit, CONFIG_SCOPE, "ocp_registry_config", {"management_state": "Removed"})
            assert any("deletes the internal registry" in w for w in runs["check"]["warnings"])
            assert any("deletes the internal registry" in w for w in runs["first"]["warnings"])
            assert not any("deletes the internal registry" in w for w in runs["second"].get("warnings", []))
        played, result = ocp("ocp_registry_config", {"management_state": "Force"})
        assert played.rc != 0 and "management_state" in result["msg"] and "Force" in result["msg"]
    finally:
        flavour.reset_config(kube_fixture_client)
        delete_route(custom, flavour.REGISTRY_NS, "default-route")


def wait_gone(custom, namespace, name, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            get_route(custom, namespace, name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.2)
    raise AssertionError("route %s/%s still there" % (namespace, name))


def test_registry_operator_standin_refuses_two_storage_backends(openshift, cluster, kube_fixture_client):
    """LOCAL STAND-IN check: two backends leave the Config Degraded, as the operator does."""
    flavour.reset_config(kube_fixture_client, dict(flavour.BASELINE_CONFIG, storage={
        "pvc": {"claim": "image-registry-storage"}, "emptyDir": {}}))
    try:
        with RegistryOperatorStandIn(cluster.fixture_kubeconfig) as operator:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                conditions = (flavour.read_config(kube_fixture_client).get("status") or {}).get("conditions") or []
                degraded = [c for c in conditions if c["type"] == "Degraded" and c["status"] == "True"]
                if degraded:
                    break
                time.sleep(0.2)
            assert degraded and "exactly one storage type" in degraded[0]["message"], (conditions, operator.errors)
    finally:
        flavour.reset_config(kube_fixture_client)


# --- 3. pull secrets for the internal registry -------------------------------------------

def _jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_bound_dockercfg_secret_has_the_4_16_shapes(openshift, unique_ns, core):
    """LOCAL STAND-IN check (openshift-controller-manager cannot be built here, docs/testing.md):
    the 4.16 internal-registry pull secret as its two controllers write it, step by step."""
    from kubernetes import watch  # pylint: disable=import-outside-toplevel

    namespace = unique_ns("shape")
    flavour.wait_for_service_account(core, namespace)
    since = core.list_namespaced_secret(namespace).metadata.resource_version
    name, token = flavour.project(core.api_client, namespace, "bound", accounts=("default",))["default"]
    assert name.startswith("default-dockercfg-") and len(name) == len("default-dockercfg-") + 5
    sa = core.read_namespaced_service_account("default", namespace)
    secret = core.read_namespaced_secret(name, namespace)
    # Created with data {} and only the service-account annotation, owned by the account.
    first = next(event["raw_object"] for event in watch.Watch().stream(
        core.list_namespaced_secret, namespace, resource_version=since, timeout_seconds=5)
        if event["raw_object"]["metadata"]["name"] == name)
    assert base64.b64decode(first["data"][".dockercfg"]) == b"{}"
    assert first["metadata"]["annotations"] == {flavour.TOKEN_SA_ANNOTATION: "default"}
    assert first["type"] == "kubernetes.io/dockercfg"
    assert [(r.api_version, r.kind, r.name, r.uid, r.controller) for r in secret.metadata.owner_references] == \
        [("v1", "ServiceAccount", "default", sa.metadata.uid, None)]
    assert secret.metadata.annotations == {flavour.TOKEN_SA_ANNOTATION: "default", flavour.BINDING_ANNOTATION: "bound"}
    # Linked for pulls and, still, in secrets; the account points at it.
    assert name in [r.name for r in sa.image_pull_secrets] and name in [r.name for r in sa.secrets]
    assert sa.metadata.annotations[flavour.PULL_SECRET_REF_ANNOTATION] == name
    # Filled with auth entries only, for every internal registry name, holding a token bound to
    # the Secret that the API server issued for its default lifetime: one hour.
    entries = json.loads(base64.b64decode(secret.data[".dockercfg"]))
    assert sorted(entries) == sorted(flavour.INTERNAL_SERVERS)
    assert all(entry == {"auth": base64.b64encode(b"<token>:" + token.encode()).decode()} for entry in entries.values())
    claims = _jwt_claims(token)
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["kubernetes.io"]["secret"] == {"name": name, "uid": secret.metadata.uid}
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "default"
    assert claims["sub"] == "system:serviceaccount:%s:default" % namespace


def dockerconfigjson(core, namespace, name):
    secret = core.read_namespaced_secret(name, namespace)
    assert secret.type == "kubernetes.io/dockerconfigjson"
    return json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))


def pull_refs(core, namespace, account="default"):
    return [ref.name for ref in core.read_namespaced_service_account(account, namespace).image_pull_secrets or []]


def test_internal_pull_secret_from_both_dockercfg_shapes(openshift, ocp, audit, unique_ns, core, custom,
                                                         kube_fixture_client):
    legacy_src, bound_src = unique_ns("src-legacy"), unique_ns("src-bound")
    targets = [unique_ns("t1"), unique_ns("t2")]
    legacy = flavour.project(kube_fixture_client, legacy_src, "legacy", accounts=("default",))
    bound = flavour.project(kube_fixture_client, bound_src, "bound", accounts=("default",))
    for namespace in targets:
        flavour.wait_for_service_account(core, namespace)
    # The registry route this test reads its host from, in a namespace of its own.
    service(core, legacy_src)
    played, route = ocp("ocp_registry_route", {"namespace": legacy_src})
    assert played.rc == 0, played.stdout[-2000:]
    host = route["host"]

    args = {"source_namespace": legacy_src, "route_name": "image-registry", "route_namespace": legacy_src,
            "registry_port": 5000, "email": "a@b.c", "namespaces": targets}
    runs = converge(ocp, audit, unique_ns.prefix, "ocp_internal_pull_secret", args, diff=True)
    first = runs["first"]
    assert first["server"] == host + ":5000"
    assert first["source"] == {"namespace": legacy_src, "service_account": "default", "secret": legacy["default"][0],
                               "shape": "username-password", "token": "legacy",
                               "route": "%s/image-registry" % legacy_src}
    assert [r["action"] for r in first["results"]] == ["created", "created"]
    token = legacy["default"][1]
    for namespace in targets:
        auths = dockerconfigjson(core, namespace, "internal-registry")["auths"]
        assert auths == {host + ":5000": {"username": "serviceaccount", "password": token, "email": "a@b.c",
                                          "auth": base64.b64encode(("serviceaccount:" + token).encode()).decode()}}
        assert pull_refs(core, namespace) == ["internal-registry"]
    for label in ("check", "first", "second", "check_again"):
        assert token not in runs[label + "_stdout"], label

    assert first["source"]["token"] == "legacy"
    assert any("legacy service account token that does not expire" in w for w in first["warnings"])

    # OpenShift 4.16+: the source holds a bound token that expires; copying it is refused
    # before any write unless allowed.
    args = {"name": "internal-registry-416", "source_namespace": bound_src, "registry_host": host,
            "namespaces": targets}
    mark = audit.mark()
    played, result = ocp("ocp_internal_pull_secret", args)
    assert played.rc != 0
    assert "holds a bound service account token (OpenShift 4.16 and later)" in result["msg"]
    assert "ocp_image_puller" in result["msg"] and "allow_expiring_token" in result["msg"]
    assert writes(audit, mark, unique_ns.prefix) == []
    # Allowed: entries carry only auth; the copy keeps user "<token>" and the bound token.
    args["allow_expiring_token"] = True
    runs = converge(ocp, audit, unique_ns.prefix, "ocp_internal_pull_secret", args)
    assert runs["first"]["source"]["shape"] == "auth-only" and runs["first"]["server"] == host
    assert runs["first"]["source"]["token"] == "bound"
    assert any("bound token that expires" in w for w in runs["first"]["warnings"])
    token = bound["default"][1]
    for namespace in targets:
        entry = dockerconfigjson(core, namespace, "internal-registry-416")["auths"][host]
        assert (entry["username"], entry["password"]) == ("<token>", token)
        assert entry["auth"] == base64.b64encode(("<token>:" + token).encode()).decode()
        assert pull_refs(core, namespace) == ["internal-registry", "internal-registry-416"]
        assert token not in runs["first_stdout"]


def can_pull(authz, images_namespace, namespace, account="default"):
    """What the real RBAC authorizer answers for pulls (get imagestreams/layers) by a service account."""
    review = authz.create_subject_access_review({"spec": {
        "user": "system:serviceaccount:%s:%s" % (namespace, account),
        "groups": ["system:serviceaccounts", "system:serviceaccounts:%s" % namespace, "system:authenticated"],
        "resourceAttributes": {"namespace": images_namespace, "verb": "get", "group": "image.openshift.io",
                               "resource": "imagestreams", "subresource": "layers"}}})
    return review.status.allowed


def wait_pull_rights(authz, images_namespace, expected, timeout=20):
    """Wait until the authorizer's cache agrees with ``expected`` {(namespace, account): allowed}."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {key: can_pull(authz, images_namespace, *key) for key in expected}
        if seen == expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def test_image_puller_role_bindings_grant_pulls_without_copying(openshift, ocp, audit, unique_ns, kube_fixture_client):
    images, team_a, team_b, outsider = unique_ns("images"), unique_ns("a"), unique_ns("b"), unique_ns("out")
    authz = k8s.AuthorizationV1Api(kube_fixture_client)
    rbac = k8s.RbacAuthorizationV1Api(kube_fixture_client)
    before = {(team_a, "default"): False, (team_b, "builder"): False, (outsider, "default"): False}
    assert wait_pull_rights(authz, images, before) == before

    args = {"image_namespaces": [images], "namespaces": [team_a, team_b, images]}
    runs = converge(ocp, audit, unique_ns.prefix, "ocp_image_puller", args, diff=True)
    first = runs["first"]
    assert [(r["namespace"], r["consumer"], r["action"], r["subjects"]) for r in first["results"]] == [
        (images, team_a, "created", ["Group system:serviceaccounts:%s" % team_a]),
        (images, team_b, "created", ["Group system:serviceaccounts:%s" % team_b])]
    assert [r["action"] for r in runs["check"]["results"]] == ["created", "created"]
    assert runs["second"]["counts"]["unchanged"] == 2
    assert first["diff"]["before"] == {"%s/ibmcloud-registry-image-puller-%s" % (images, team_a): None,
                                       "%s/ibmcloud-registry-image-puller-%s" % (images, team_b): None}
    binding = rbac.read_namespaced_role_binding("ibmcloud-registry-image-puller-" + team_a, images)
    assert (binding.role_ref.kind, binding.role_ref.name) == ("ClusterRole", "system:image-puller")
    assert binding.metadata.labels == {"app.kubernetes.io/managed-by": "ibmcloud.registry"}
    granted = {(team_a, "default"): True, (team_b, "builder"): True, (outsider, "default"): False}
    assert wait_pull_rights(authz, images, granted) == granted

    # Named accounts only: one update per binding, builder loses the right.
    runs = converge(ocp, audit, unique_ns.prefix, "ocp_image_puller", dict(args, service_accounts=["default"]),
                    diff=True)
    assert [r["action"] for r in runs["first"]["results"]] == ["updated", "updated"]
    key = "%s/ibmcloud-registry-image-puller-%s" % (images, team_b)
    assert runs["first"]["diff"]["after"][key]["subjects"] == ["ServiceAccount %s/default" % team_b]
    named = {(team_a, "default"): True, (team_b, "builder"): False, (team_b, "default"): True}
    assert wait_pull_rights(authz, images, named) == named

    # state=absent takes the grants back; then nothing is left to delete.
    runs = converge(ocp, audit, unique_ns.prefix, "ocp_image_puller", dict(args, state="absent"))
    assert [r["action"] for r in runs["first"]["results"]] == ["deleted", "deleted"]
    assert [r["action"] for r in runs["second"]["results"]] == ["absent", "absent"]
    gone = {(team_a, "default"): False, (team_b, "default"): False}
    assert wait_pull_rights(authz, images, gone) == gone
    assert rbac.list_namespaced_role_binding(images, label_selector="app.kubernetes.io/managed-by").items == []


def test_image_puller_validates_before_any_request(openshift, ocp, audit, unique_ns):
    mark = audit.mark()
    played, result = ocp("ocp_image_puller", {"image_namespaces": [], "namespaces": ["Bad_Name"],
                                              "service_accounts": ["Not Valid"]})
    assert played.rc != 0
    assert "image_namespaces must name at least one project" in result["msg"]
    assert "service_accounts:" in result["msg"] and "Bad_Name" in result["msg"]
    assert audit.requests(mark, namespace_prefix=unique_ns.prefix) == []


def test_internal_pull_secret_without_dockercfg_secret_fails_clearly(openshift, ocp, audit, unique_ns, core):
    source, target = unique_ns("nocfg"), unique_ns("t")
    flavour.wait_for_service_account(core, source)
    mark = audit.mark()
    played, result = ocp("ocp_internal_pull_secret", {"source_namespace": source, "registry_host": "r.example.com",
                                                      "namespaces": [target]})
    assert played.rc != 0
    assert "ServiceAccount %s/default has no default-dockercfg-* secret" % source in result["msg"]
    assert writes(audit, mark, unique_ns.prefix) == []


# --- 4. image stream imports -------------------------------------------------------------

def stream_tags(custom, namespace, name):
    stream = custom.get_namespaced_custom_object(STREAMS[0], STREAMS[1], namespace, STREAMS[2], name)
    return stream["spec"]["tags"], stream["metadata"]


def test_image_stream_tags_many_images_changed_only_when_spec_differs(openshift, ocp, audit, unique_ns, custom):
    namespace, other = unique_ns("is"), unique_ns("is2")
    # A stream that exists already, with a tag of someone else and an outdated one.
    custom.create_namespaced_custom_object(STREAMS[0], STREAMS[1], namespace, STREAMS[2], {
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": "backend"},
        "spec": {"tags": [
            {"name": "keep", "from": {"kind": "DockerImage", "name": "quay.io/x/keep:1"}, "generation": 1,
             "referencePolicy": {"type": "Source"}},
            {"name": "2.0", "from": {"kind": "DockerImage", "name": "us.icr.io/team/backend:1.9"}, "generation": 1,
             "importPolicy": {}, "referencePolicy": {"type": "Source"}}]}})
    args = {"namespace": namespace, "images": [
        {"source": "us.icr.io/team/frontend:1.4", "target": "frontend:1.4"},
        {"source": "us.icr.io/team/frontend:1.4", "target": "frontend:latest", "scheduled": False},
        {"source": "us.icr.io/team/backend:2.0", "target": "backend:2.0"},
        {"source": "de.icr.io/team/tools:v1", "target": "%s/tools:v1" % other},
    ]}
    runs = converge(ocp, audit, unique_ns.prefix, "ocp_image_stream_tag", args, diff=True)
    first = runs["first"]
    assert [(r["namespace"], r["name"], r["action"]) for r in first["results"]] == [
        (namespace, "frontend:1.4", "created"), (namespace, "frontend:latest", "created"),
        (namespace, "backend:2.0", "updated"), (other, "tools:v1", "created")]
    assert [r["action"] for r in runs["check"]["results"]] == [r["action"] for r in first["results"]]
    assert runs["second"]["counts"]["unchanged"] == 4
    assert first["diff"]["before"]["%s/backend:2.0" % namespace]["reference_policy"] == "Source"

    tags, meta = stream_tags(custom, namespace, "frontend")
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "ibmcloud.registry"}
    # What `oc tag SRC DST --reference-policy=local --scheduled` writes, as the server stores
    # it (openshift-apiserver stand-in: defaults, generation from the stream's, null annotations).
    assert tags == [
        {"name": "1.4", "annotations": None, "from": {"kind": "DockerImage", "name": "us.icr.io/team/frontend:1.4"},
         "generation": 1, "importPolicy": {"importMode": "Legacy", "scheduled": True},
         "referencePolicy": {"type": "Local"}},
        {"name": "latest", "annotations": None,
         "from": {"kind": "DockerImage", "name": "us.icr.io/team/frontend:1.4"},
         "generation": 1, "importPolicy": {"importMode": "Legacy", "scheduled": False},
         "referencePolicy": {"type": "Local"}}]
    tags, meta = stream_tags(custom, namespace, "backend")
    # Sorted by name; the tag whose source changed got the stream's new generation, the other kept its own.
    assert [t["name"] for t in tags] == ["2.0", "keep"] and meta["generation"] == 2
    assert tags[1]["generation"] == 1 and tags[1]["from"]["name"] == "quay.io/x/keep:1"
    assert tags[0] == {"name": "2.0", "annotations": None,
                       "from": {"kind": "DockerImage", "name": "us.icr.io/team/backend:2.0"}, "generation": 2,
                       "importPolicy": {"importMode": "Legacy", "scheduled": True},
                       "referencePolicy": {"type": "Local"}}
    assert stream_tags(custom, other, "tools")[0][0]["from"]["name"] == "de.icr.io/team/tools:v1"


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory):
    """A real registry (Debian's docker-registry) on 127.0.0.1, over HTTP, with a busybox image."""
    import localnode  # pylint: disable=import-outside-toplevel

    root = tmp_path_factory.mktemp("registry")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"version": 0.1, "log": {"level": "warn"},
              "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
              "http": {"addr": "127.0.0.1:%d" % port, "secret": os.urandom(8).hex()}}
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    with open(root / "registry.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/v2/" % port, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                        "oci:%s:%s" % (localnode.app_layout(), localnode.APP_TAG),
                        "docker://127.0.0.1:%d/ibmreg/busybox:1" % port], check=True)
        yield "127.0.0.1:%d" % port
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_image_stream_tag_import_results_wait_and_reimport(openshift, ocp, audit, unique_ns, cluster, local_registry):
    namespace = unique_ns("imp")
    good = "%s/ibmreg/busybox:1" % local_registry
    args = {"namespace": namespace, "insecure": True, "wait": True, "wait_timeout": 30,
            "images": [{"source": good, "target": "busybox:1"}]}
    with ImageImporterStandIn(cluster.fixture_kubeconfig, [namespace]) as importer:
        played, result = ocp("ocp_image_stream_tag", args)
        assert played.rc == 0, (played.stdout[-3000:], importer.errors)
        (item,) = result["results"]
        assert item["action"] == "created" and item["import"]["state"] == "imported", item
        digest = item["import"]["image"]
        assert digest.startswith("sha256:")
        assert item["import"]["reference"] == "%s/ibmreg/busybox@%s" % (local_registry, digest)

        # Unchanged: nothing written, the import still reported.
        mark = audit.mark()
        played, result = ocp("ocp_image_stream_tag", args)
        assert played.rc == 0 and result["changed"] is False
        assert result["results"][0]["import"] == item["import"]
        assert writes(audit, mark, unique_ns.prefix) == []

        # Re-import on request: generation 0 is sent, a newer import comes back.
        mark = audit.mark()
        played, result = ocp("ocp_image_stream_tag", dict(args, reimport=True), check=True)
        assert played.rc == 0 and result["results"][0]["action"] == "updated"
        assert result["results"][0]["import"] == {"state": "pending"}
        assert writes(audit, mark, unique_ns.prefix) == []
        played, result = ocp("ocp_image_stream_tag", dict(args, reimport=True))
        assert played.rc == 0 and result["results"][0]["action"] == "updated"
        again = result["results"][0]["import"]
        assert again["state"] == "imported" and again["generation"] > item["import"]["generation"]
        assert len([i for i in importer.imports if i[2] == "1"]) == 2

        # Failures as the importer reports them; the spec tags stay written.
        failing = dict(args, images=[{"source": "%s/ibmreg/busybox:nope" % local_registry, "target": "busybox:nope"},
                                     {"source": "us.icr.io/team/app:1", "target": "app:1"}])
        played, result = ocp("ocp_image_stream_tag", failing)
        assert played.rc != 0
        assert "Spec tags written, but not imported" in result["msg"]
        assert "NotFound" in result["msg"] and "lookup us.icr.io: no such host" in result["msg"]
        assert [(r["action"], r["import"]["state"]) for r in result["results"]] == [
            ("created", "failed"), ("created", "failed")]
        # Without wait the results are reported and the task succeeds.
        played, result = ocp("ocp_image_stream_tag", dict(failing, wait=False))
        assert played.rc == 0 and result["changed"] is False
        assert [r["import"]["reason"] for r in result["results"]] == ["NotFound", "InternalError"]
    assert importer.errors == []


def test_image_stream_tags_validate_before_any_request(openshift, ocp, audit, unique_ns):
    mark = audit.mark()
    played, result = ocp("ocp_image_stream_tag", {"images": [
        {"source": "us.icr.io/Team/app:1", "target": "app:1"},
        {"source": "us.icr.io/team/app:1", "target": "a/app:1"},
        {"source": "us.icr.io/team/app:2", "target": "a/app:1"}]})
    assert played.rc != 0
    assert "images[0]: source 'us.icr.io/Team/app:1' is not an image reference" in result["msg"]
    assert "images[0]: target 'app:1' names no project" in result["msg"]
    assert "images[2]: a/app:1 is the target of more than one image" in result["msg"]
    assert audit.requests(mark, namespace_prefix=unique_ns.prefix) == []


# --- 5. builds ---------------------------------------------------------------------------

def test_build_secrets_builder_link_and_build_configs(openshift, ocp, audit, unique_ns, core, custom,
                                                      kube_fixture_client):
    namespace = unique_ns("build")
    made = flavour.project(kube_fixture_client, namespace, "legacy", accounts=("builder",))
    builder_cfg = made["builder"][0]
    for name in ("icr-writer", "icr-reader"):
        core.create_namespaced_secret(namespace, {"metadata": {"name": name}, "type": "kubernetes.io/dockerconfigjson",
                                                  "data": {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()}})
    flavour.build_config(kube_fixture_client, namespace, "app", "Docker")
    flavour.build_config(kube_fixture_client, namespace, "s2i", "Source")
    args = {"namespace": namespace, "push_secret": "icr-writer", "pull_secret": "icr-reader",
            "build_configs": ["app", "s2i"]}
    runs = converge(ocp, audit, unique_ns.prefix, "ocp_build_secret", args, diff=True)
    assert [(r["name"], r["action"], r["push_secret"], r["pull_secret"]) for r in runs["first"]["results"]] == [
        ("app", "updated", "icr-writer", "icr-reader"), ("s2i", "updated", "icr-writer", "icr-reader")]
    assert runs["first"]["service_accounts"][0]["added"] == ["icr-reader", "icr-writer"]
    builder = core.read_namespaced_service_account("builder", namespace)
    # Builds from 4.15 read imagePullSecrets, older ones secrets: both, OpenShift's own entry kept first.
    assert [r.name for r in builder.image_pull_secrets] == [builder_cfg, "icr-writer", "icr-reader"]
    # (the controller-manager adds a builder-token-* secret there too, at its own time)
    assert [r.name for r in builder.secrets if "-token-" not in r.name] == [builder_cfg, "icr-writer", "icr-reader"]
    app = custom.get_namespaced_custom_object(*BUILDS[:2], namespace, BUILDS[2], "app")
    assert app["spec"]["output"]["pushSecret"] == {"name": "icr-writer"}
    assert app["spec"]["strategy"]["dockerStrategy"]["pullSecret"] == {"name": "icr-reader"}
    assert app["spec"]["output"]["to"]["name"] == "us.icr.io/team/app:latest"
    s2i = custom.get_namespaced_custom_object(*BUILDS[:2], namespace, BUILDS[2], "s2i")
    assert s2i["spec"]["strategy"]["sourceStrategy"]["pullSecret"] == {"name": "icr-reader"}
    assert s2i["spec"]["strategy"]["sourceStrategy"]["from"]["name"] == "us.icr.io/base/s2i:1"

    # A missing BuildConfig and a strategy without pull secret fail alone; the rest is done.
    flavour.build_config(kube_fixture_client, namespace, "pipeline", "JenkinsPipeline")
    flavour.build_config(kube_fixture_client, namespace, "late", "Docker")
    played, result = ocp("ocp_build_secret", dict(args, build_configs=["nope", "pipeline", "late"]))
    assert played.rc != 0
    assert [r["action"] for r in result["results"]] == ["failed", "failed", "updated"]
    assert "BuildConfig nope not found in namespace %s" % namespace in result["msg"]
    assert "JenkinsPipeline strategy, which has no pull secret" in result["msg"]

    runs = converge(ocp, audit, unique_ns.prefix, "ocp_build_secret", dict(args, state="absent"))
    builder = core.read_namespaced_service_account("builder", namespace)
    assert [r.name for r in builder.image_pull_secrets] == [builder_cfg]
    assert [r.name for r in builder.secrets if "-token-" not in r.name] == [builder_cfg]
    app = custom.get_namespaced_custom_object(*BUILDS[:2], namespace, BUILDS[2], "app")
    assert "pushSecret" not in app["spec"]["output"]
    assert "pullSecret" not in app["spec"]["strategy"]["dockerStrategy"]


def test_build_secret_missing_secret_fails_before_writing(openshift, ocp, audit, unique_ns, kube_fixture_client):
    namespace = unique_ns("miss")
    flavour.project(kube_fixture_client, namespace, "bound", accounts=("builder",))
    flavour.build_config(kube_fixture_client, namespace, "app")
    mark = audit.mark()
    played, result = ocp("ocp_build_secret", {"namespace": namespace, "push_secret": "absent-secret",
                                              "build_configs": ["app"], "missing_secret": "fail"})
    assert played.rc != 0 and "absent-secret do not exist" in result["msg"]
    assert writes(audit, mark, unique_ns.prefix) == []


# --- 6. the real CRD schemas and openshift-apiserver's write semantics ------------------------

def test_route_and_registry_config_crds_are_openshift_apis_own(openshift, cluster, unique_ns, custom,
                                                               kube_fixture_client):
    """The CRDs on the cluster are the ones of the pinned openshift/api module, and their CEL
    rules are enforced (kube-apiserver 1.37)."""
    import crds  # pylint: disable=import-outside-toplevel

    published = {doc["metadata"]["name"]: doc for doc in crds.load_crds(crds.openshift_api_crd_files())}
    assert sorted(published) == sorted(crds.OPENSHIFT_API_CRDS)
    assert crds.openshift_api_dir().endswith("@" + crds.versions()["OPENSHIFT_API_VERSION"])
    api = k8s.ApiextensionsV1Api(kube_fixture_client)
    for name, doc in published.items():
        served = api.read_custom_resource_definition(name)
        assert served.metadata.annotations["api-approved.openshift.io"] == \
            doc["metadata"]["annotations"]["api-approved.openshift.io"]
        assert "ibmcloud.registry/stand-in" not in (served.metadata.annotations or {})
    namespace = unique_ns("crd")
    route = {"apiVersion": "route.openshift.io/v1", "kind": "Route", "metadata": {"name": "r"},
             "spec": {"to": {"name": "s"}, "tls": {"termination": "passthrough",
                                                   "insecureEdgeTerminationPolicy": "Allow"}}}
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(*ROUTES[:2], namespace, ROUTES[2], route, dry_run="All")
    assert refused.value.status == 422
    assert "cannot have both spec.tls.termination: passthrough and spec.tls.insecureEdgeTerminationPolicy: Allow" \
        in refused.value.body
    # The schema's defaults, as openshift-apiserver fills them in.
    route["spec"]["tls"] = {"termination": "passthrough", "insecureEdgeTerminationPolicy": "Redirect"}
    made = custom.create_namespaced_custom_object(*ROUTES[:2], namespace, ROUTES[2], route, dry_run="All")
    assert made["spec"]["to"] == {"kind": "Service", "name": "s", "weight": 100}
    assert made["spec"]["wildcardPolicy"] == "None"
    # The operator Config: replicas required, and a CEL rule of the Azure storage.
    config = flavour.read_config(kube_fixture_client)
    bad = dict(config, spec={"managementState": "Managed"})
    with pytest.raises(ApiException) as refused:
        custom.replace_cluster_custom_object(*flavour.CONFIG_API, "cluster", bad, dry_run="All")
    assert refused.value.status == 422 and "spec.replicas: Required value" in refused.value.body
    bad = dict(config, spec=dict(flavour.BASELINE_CONFIG, storage={"azure": {"networkAccess": {
        "type": "External", "internal": {"vnetName": "v"}}}}))
    with pytest.raises(ApiException) as refused:
        custom.replace_cluster_custom_object(*flavour.CONFIG_API, "cluster", bad, dry_run="All")
    assert refused.value.status == 422 and "internal is forbidden when type is not Internal" in refused.value.body


def test_image_stream_tags_are_a_map_with_server_defaults_and_generations(openshift, unique_ns, custom):
    """LOCAL STAND-IN check: ImageStreams are written as openshift-apiserver writes them."""
    namespace = unique_ns("map")

    def tag(name, source, **extra):
        return dict({"name": name, "from": {"kind": "DockerImage", "name": source}}, **extra)

    made = custom.create_namespaced_custom_object(*STREAMS[:2], namespace, STREAMS[2], {
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": "app"},
        "spec": {"tags": [tag("b", "us.icr.io/t/app:1"), tag("a", "us.icr.io/t/app:old"),
                          tag("a", "us.icr.io/t/app:2", referencePolicy={"type": "Local"})]}})
    assert made["metadata"]["generation"] == 1
    # Duplicates collapse (the last wins), sorted by name, defaults and generation filled in.
    assert made["spec"]["tags"] == [
        {"name": "a", "annotations": None, "from": {"kind": "DockerImage", "name": "us.icr.io/t/app:2"},
         "generation": 1, "importPolicy": {"importMode": "Legacy"}, "referencePolicy": {"type": "Local"}},
        {"name": "b", "annotations": None, "from": {"kind": "DockerImage", "name": "us.icr.io/t/app:1"},
         "generation": 1, "importPolicy": {"importMode": "Legacy"}, "referencePolicy": {"type": "Source"}}]

    def update(tags):
        stream = custom.get_namespaced_custom_object(*STREAMS[:2], namespace, STREAMS[2], "app")
        stream["spec"]["tags"] = tags
        return custom.replace_namespaced_custom_object(*STREAMS[:2], namespace, STREAMS[2], "app", stream)

    # A new tag gets the stream's new generation; an unchanged one keeps its own, whatever is sent.
    updated = update([tag("a", "us.icr.io/t/app:2", referencePolicy={"type": "Local"}, generation=7),
                      tag("b", "us.icr.io/t/app:1"), tag("c", "us.icr.io/t/app:3")])
    assert updated["metadata"]["generation"] == 2
    assert {t["name"]: t["generation"] for t in updated["spec"]["tags"]} == {"a": 1, "b": 1, "c": 2}
    # A changed source, and generation 0 (a new import asked for), get the next one.
    updated = update([tag("a", "us.icr.io/t/app:2", referencePolicy={"type": "Local"}, generation=0),
                      tag("b", "us.icr.io/t/app:1b"), tag("c", "us.icr.io/t/app:3")])
    assert updated["metadata"]["generation"] == 3
    assert {t["name"]: t["generation"] for t in updated["spec"]["tags"]} == {"a": 3, "b": 3, "c": 2}
    # Writing it back as read changes nothing, not even the generation.
    again = update(updated["spec"]["tags"])
    assert again["metadata"]["generation"] == 3 and again["spec"] == updated["spec"]


def test_build_config_strategy_type_is_optional_and_derived(openshift, ocp, audit, unique_ns, core, custom,
                                                            kube_fixture_client):
    """LOCAL STAND-IN check, and ocp_build_secret idempotent against a BuildConfig written without a type."""
    namespace = unique_ns("bct")
    body = {"apiVersion": "build.openshift.io/v1", "kind": "BuildConfig", "metadata": {"name": "app"},
            "spec": {"strategy": {"dockerStrategy": {}},
                     "output": {"to": {"kind": "DockerImage", "name": "us.icr.io/team/app:latest"}}}}
    made = custom.create_namespaced_custom_object(*BUILDS[:2], namespace, BUILDS[2], body)
    assert made["spec"]["strategy"] == {"type": "Docker", "dockerStrategy": {}}
    for strategy in ({}, {"dockerStrategy": {}, "customStrategy": {"from": {"kind": "DockerImage", "name": "x"}}}):
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(*BUILDS[:2], namespace, BUILDS[2], dict(
                body, metadata={"name": "bad"}, spec={"strategy": strategy}))
        assert refused.value.status == 422 and "exactly one of sourceStrategy" in refused.value.body
    flavour.project(kube_fixture_client, namespace, "bound", accounts=("builder",))
    core.create_namespaced_secret(namespace, {"metadata": {"name": "icr-writer"}, "type": "kubernetes.io/dockerconfigjson",
                                              "data": {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()}})
    runs = converge(ocp, audit, unique_ns.prefix, "ocp_build_secret",
                    {"namespace": namespace, "push_secret": "icr-writer", "pull_secret": "icr-writer",
                     "build_configs": ["app"]})
    assert runs["first"]["results"][0]["action"] == "updated"
    app = custom.get_namespaced_custom_object(*BUILDS[:2], namespace, BUILDS[2], "app")
    assert app["spec"]["strategy"] == {"type": "Docker", "dockerStrategy": {"pullSecret": {"name": "icr-writer"}}}


# --- 7. what the cluster is -----------------------------------------------------------------

PLAIN_TASKS = [
    ("ocp_registry_route", {}),
    ("ocp_registry_config", {}),
    ("ocp_registry_config", {"storage": "emptyDir", "allow_non_persistent_storage": True}),
    ("ocp_internal_pull_secret", {"namespaces": ["default"]}),
    ("ocp_image_puller", {"image_namespaces": ["default"], "namespaces": ["kube-public"]}),
    ("ocp_image_stream_tag", {"images": [{"source": "us.icr.io/a/b:1", "target": "default/b:1"}]}),
    ("ocp_build_secret", {"namespace": "default", "push_secret": "icr-writer", "build_configs": ["app"]}),
]


@pytest.fixture(scope="module")
def plain_cluster():
    """A second local cluster that never gets the OpenShift CRDs (started once, then reused)."""
    return localcluster.ensure_running(os.path.join(REPO, ".cluster-plain"))


@pytest.mark.parametrize("module, args", PLAIN_TASKS, ids=["%s-%d" % (m, i) for i, (m, _a) in enumerate(PLAIN_TASKS)])
def test_plain_kubernetes_fails_with_not_openshift(plain_cluster, ocp, module, args):
    plain_audit = audit_log.AuditLog(plain_cluster.audit_log)
    mark = plain_audit.mark()
    played, result = ocp(module, args, kubeconfig=plain_cluster.kubeconfig)
    assert played.rc != 0
    assert "%s needs the OpenShift API group" % module in result["msg"]
    assert "the cluster is plain Kubernetes, not OpenShift" in result["msg"]
    assert result["flavour"] == "kubernetes"
    assert plain_audit.writes(mark) == []
