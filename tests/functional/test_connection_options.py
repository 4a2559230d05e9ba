"""Connection options reach the modules the way AWX and CI give them.

1. Token authentication (an AWX bearer-token credential, a CI service account token):
   K8S_AUTH_HOST + K8S_AUTH_API_KEY in the environment, or module_defaults with host,
   api_key and ca_cert. ocp_registry_route's own host name option is `hostname`, so `host`
   always is the API server and the token goes nowhere else.
2. Roles pass no connection option: a play whose module_defaults name a second cluster,
   using each role alone, writes only to that cluster, even with K8S_AUTH_KUBECONFIG and
   KUBECONFIG pointing at the first one.

OpenShift is stood in for by tests/standins/openshift_flavour.py (CRDs) and
tests/standins/router.py (admits Routes); IBM Cloud IAM by tests/standins/iam_server.py.
All LOCAL STAND-INS.
"""

from __future__ import annotations

import os
import secrets
import sys

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from playbook import REPO, Runner
from reliability import common

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "standins"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))

import audit as audit_log  # noqa: E402  pylint: disable=wrong-import-position
import iam_server  # noqa: E402  pylint: disable=wrong-import-position
import openshift_flavour as flavour  # noqa: E402  pylint: disable=wrong-import-position
from router import RouterStandIn  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

SECOND_CLUSTER_DIR = os.path.join(REPO, ".cluster-connection")
ROUTES = ("route.openshift.io", "v1", "routes")
# Neither the kubeconfig of any cluster nor a token: the modules must get everything from
# what the test gives them, never from the caller's environment.
NO_CALLER_CONNECTION = {"KUBECONFIG": "/nonexistent/kubeconfig", "K8S_AUTH_KUBECONFIG": "",
                        "K8S_AUTH_HOST": "", "K8S_AUTH_API_KEY": "", "K8S_AUTH_SSL_CA_CERT": ""}


def play(tasks, module_defaults=None):
    return [{"name": "connection", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "module_defaults": module_defaults or {}, "tasks": tasks}]


def route_task(namespace, hostname):
    return {"name": "route", "ibmcloud.registry.ocp_registry_route": {
        "namespace": namespace, "service": "image-registry", "hostname": hostname, "wait_timeout": 30}}


def create_service(core, namespace):
    core.create_namespaced_service(namespace, {"metadata": {"name": "image-registry"}, "spec": {
        "selector": {"app": "image-registry"}, "ports": [{"name": "5000-tcp", "port": 5000, "targetPort": 5000}]}})


# --- 1. token authentication -------------------------------------------------------------


@pytest.fixture(scope="module")
def router(cluster, kube_fixture_client):
    flavour.install(cluster.fixture_kubeconfig, kube_fixture_client)
    with RouterStandIn(cluster.fixture_kubeconfig) as standin:
        yield standin


def test_route_with_token_from_k8s_auth_environment_and_from_module_defaults(
        router, cluster, audit, unique_ns, kube_fixture_client, tmp_path):
    namespace = unique_ns("route")
    create_service(k8s.CoreV1Api(kube_fixture_client), namespace)
    hostname = "token-%s.example.com" % secrets.token_hex(4)
    runner = Runner("/nonexistent/kubeconfig", workdir=str(tmp_path))

    # AWX's bearer-token credential: K8S_AUTH_* only, no kubeconfig anywhere.
    token_env = dict(NO_CALLER_CONNECTION, K8S_AUTH_HOST=cluster.server, K8S_AUTH_API_KEY=cluster.admin_token,
                     K8S_AUTH_SSL_CA_CERT=cluster.ca)
    mark = audit.mark()
    first = runner.run([], plays=play([route_task(namespace, hostname)]), env=token_env)
    result = first.tasks.get("route", {})
    assert first.rc == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert (result["changed"], result["host"], result["admitted"]) == (True, hostname, True)
    # The token authenticated as admin against the API server, not the route's host name.
    assert [w["verb"] for w in audit.writes(mark, namespace_prefix=namespace)] == ["create"]
    route = k8s.CustomObjectsApi(kube_fixture_client).get_namespaced_custom_object(
        ROUTES[0], ROUTES[1], namespace, ROUTES[2], "image-registry")
    assert route["spec"]["host"] == hostname

    # The same connection as module_defaults for the group: no validation error, no change.
    token_defaults = {"group/ibmcloud.registry.kube": {
        "host": cluster.server, "api_key": cluster.admin_token, "ca_cert": cluster.ca}}
    mark = audit.mark()
    second = runner.run([], plays=play([route_task(namespace, hostname)], token_defaults),
                        env=NO_CALLER_CONNECTION)
    assert second.rc == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert second.tasks["route"]["changed"] is False and second.tasks["route"]["host"] == hostname
    assert audit.writes(mark, namespace_prefix=namespace) == []
    assert audit.count(mark, namespace_prefix=namespace)["get"] >= 1  # it did reach the API server

    # Another host name through module_defaults' connection: one patch, the new host admitted.
    moved = "moved-" + hostname
    mark = audit.mark()
    third = runner.run([], plays=play([route_task(namespace, moved)], token_defaults), env=NO_CALLER_CONNECTION)
    assert third.rc == 0, third.stdout[-3000:]
    assert third.tasks["route"]["changed"] is True and third.tasks["route"]["host"] == moved
    assert [w["verb"] for w in audit.writes(mark, namespace_prefix=namespace)] == ["patch"]


# --- 2. roles alone, connection from the play's module_defaults only ----------------------------


@pytest.fixture(scope="module")
def second_cluster():
    """A cluster of its own (the roles write to openshift-image-registry and kube-system)."""
    with common.own_cluster(SECOND_CLUSTER_DIR) as second:
        yield second


def role_tasks(prefix, ns):
    def role(name, role_vars):
        return {"name": name, "ansible.builtin.include_role": {"name": "ibmcloud.registry." + name},
                "vars": role_vars}

    return [
        role("pull_secrets", {"pull_secrets_namespaces": [ns["pull"]], "pull_secrets_secrets": [
            {"name": "conn-registry", "registry": {"server": "registry.example.com", "username": "robot",
                                                   "password": "conn-password"}}]}),
        role("entitled_registry", {"entitled_registry_entitlement_key": "conn-entitlement-key",
                                   "entitled_registry_namespaces": [ns["pull"]]}),
        role("iam_pull_secret", {"iam_pull_secret_mode": "namespace", "iam_pull_secret_cluster_name": "conn",
                                 "iam_pull_secret_namespaces": [ns["iam"]]}),
        role("openshift_registry", {
            "openshift_registry_route_name": prefix + "route",
            "openshift_registry_route_host": prefix + "registry.example.com", "openshift_registry_route_wait": False,
            "openshift_registry_access": "pull_secret",
            "openshift_registry_source_namespace": ns["source"], "openshift_registry_namespaces": [ns["openshift"]]}),
        role("openshift_images", {"openshift_images_namespace": ns["openshift"], "openshift_images_images": [
            {"source": "us.icr.io/team/app:1", "target": "app:1"}]}),
        role("openshift_builds", {"openshift_builds_projects": [
            {"namespace": ns["build"], "push_secret": "conn-push", "build_configs": ["app"]}]}),
        role("containerd_hosts", {"containerd_hosts_mode": "cluster", "containerd_hosts_cluster_name": prefix + "hosts",
                                  "containerd_hosts_cluster_namespace": ns["containerd"],
                                  "containerd_hosts_registries": [{"registry": "conn.example.com",
                                                                   "server": "https://conn.example.com"}]}),
    ]


def test_each_role_alone_writes_only_to_the_cluster_of_module_defaults(cluster, audit, second_cluster, tmp_path):
    api_client = k8s_config.new_client_from_config(config_file=second_cluster.fixture_kubeconfig)
    core = k8s.CoreV1Api(api_client)
    second_audit = audit_log.AuditLog(second_cluster.audit_log)
    prefix = "conn-%s-" % secrets.token_hex(3)
    ns = {part: prefix + part for part in ("pull", "iam", "openshift", "build", "containerd", "source")}
    iam = iam_server.IamStandIn().start()
    api_key = "conn-ibmcloud-key-" + secrets.token_hex(8)
    iam.add_admin_key(api_key)
    try:
        flavour.install(second_cluster.fixture_kubeconfig, api_client)
        for name in ns.values():
            core.create_namespace({"metadata": {"name": name}})
        for name in ns.values():
            flavour.wait_for_service_account(core, name)
        flavour.project(api_client, ns["source"], "legacy", accounts=("default",))
        flavour.project(api_client, ns["build"], "legacy", accounts=("builder",))
        flavour.build_config(api_client, ns["build"], "app")
        core.create_namespaced_secret(ns["build"], {"metadata": {"name": "conn-push"}, "type": "Opaque"})

        # The caller's environment names the FIRST cluster; only module_defaults name the second.
        env = {"K8S_AUTH_KUBECONFIG": cluster.kubeconfig, "KUBECONFIG": cluster.kubeconfig,
               "IC_API_KEY": "", "IBMCLOUD_API_KEY": ""}
        defaults = {"group/ibmcloud.registry.kube": {"kubeconfig": second_cluster.kubeconfig},
                    "group/ibmcloud.registry.iam": {"iam_url": iam.url, "ibmcloud_api_key": api_key}}
        runner = Runner(second_cluster.kubeconfig, workdir=str(tmp_path))
        first_mark, second_mark = audit.mark(), second_audit.mark()
        played = runner.run([], plays=play(role_tasks(prefix, ns), defaults), env=env)
        assert played.rc == 0, played.stdout[-4000:] + played.stderr[-2000:]

        # Nothing of this test reached the first cluster (scoped to its unique names, as other
        # tests may write to the first cluster at the same time).
        mine = [w for w in audit.writes(first_mark, user="*")
                if w["namespace"].startswith(prefix) or w["name"].startswith(prefix)]
        assert mine == []
        assert [r for r in audit.requests(first_mark, user="*")
                if r["namespace"].startswith(prefix) or r["name"].startswith(prefix)] == []

        # Every role wrote what it manages to the second cluster.
        written = second_audit.writes(second_mark)
        for part in ("pull", "iam", "openshift", "build", "containerd"):
            assert [w for w in written if w["namespace"] == ns[part]], part
        assert [w for w in written if w["resource"] == "routes" and w["name"] == prefix + "route"]
        assert sorted(secret.metadata.name for secret in core.list_namespaced_secret(ns["pull"]).items
                      if secret.type == "kubernetes.io/dockerconfigjson") == ["conn-registry", "entitled-cp-icr-io"]
        assert core.read_namespaced_config_map(prefix + "hosts", ns["containerd"]).data
    finally:
        iam.stop()
        api_client.close()
