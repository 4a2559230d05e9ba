"""The local control plane behaves like a cluster where it matters to the collection."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

SA_TIMEOUT = 30


def wait_for_default_sa(core: client.CoreV1Api, namespace: str) -> client.V1ServiceAccount:
    deadline = time.monotonic() + SA_TIMEOUT
    while True:
        try:
            return core.read_namespaced_service_account("default", namespace)
        except ApiException as err:
            if err.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_new_namespace_gets_default_service_account(audit, kube_fixture_client, unique_ns):
    mark = audit.mark()
    namespace = unique_ns()

    wait_for_default_sa(client.CoreV1Api(kube_fixture_client), namespace)

    assert {"verb": "create", "resource": "namespaces", "namespace": namespace, "name": namespace,
            "code": 201} in audit.writes(mark, user="fixture")
    # The controller-manager has its own identity, so its writes are told apart. Its request
    # is logged after its response is sent, so the SA can be readable a moment before the
    # event is in the log.
    deadline = time.monotonic() + SA_TIMEOUT
    while True:
        created = audit.count_by("resource", mark, user="system:kube-controller-manager", verbs={"create"},
                                 namespace_prefix=namespace)
        if created["serviceaccounts"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert created["serviceaccounts"] == 1
    assert not audit.count(mark, user="admin")


def test_admin_kubeconfig_verifies_tls_and_is_counted(cluster, audit):
    api_client = config.new_client_from_config(config_file=cluster.kubeconfig)
    assert api_client.configuration.verify_ssl
    mark = audit.mark()

    with api_client:
        client.CoreV1Api(api_client).list_namespace()

    assert audit.count(mark) == {"list": 1}
    assert audit.writes(mark) == []
