"""Shared pytest fixtures.

tests/unit/ needs no cluster: nothing here starts one unless a test asks for `cluster`
(or a fixture built on it). Tests under tests/functional/ do, and are marked `cluster`.
"""

from __future__ import annotations

import os
import re
import secrets
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "cluster"))

import audit as audit_log  # noqa: E402  pylint: disable=wrong-import-position
import localcluster  # noqa: E402  pylint: disable=wrong-import-position


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: needs the local Kubernetes control plane (tests/cluster)")


@pytest.fixture(scope="session")
def cluster() -> localcluster.ClusterInfo:
    """The local cluster of $IBMREG_CLUSTER_DIR (default <repo>/.cluster) with its node, started if needed."""
    return localcluster.ensure_running(node=True)


# audit and kube_fixture_client are per test file, so that a file that brings its own
# `cluster` (test_openshift.py) gets them for that cluster without redefining them.
@pytest.fixture(scope="module")
def audit(cluster) -> audit_log.AuditLog:
    return audit_log.AuditLog(cluster.audit_log)


@pytest.fixture(scope="module")
def kube_fixture_client(cluster):
    """A kubernetes ApiClient as `fixture`: setup and teardown not counted as the client's requests."""
    from kubernetes import config  # pylint: disable=import-outside-toplevel  # unit tests need no client

    api_client = config.new_client_from_config(config_file=cluster.fixture_kubeconfig)
    yield api_client
    api_client.close()


class Namespaces:
    """Creates namespaces named <prefix><suffix>; deletes every namespace with the prefix at the end."""

    def __init__(self, api_client, prefix: str):
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        self.core = client.CoreV1Api(api_client)
        self.prefix = prefix

    def __call__(self, suffix: str = "0") -> str:
        name = self.prefix + suffix
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def cleanup(self) -> None:
        # Also catches namespaces that the code under test created with the prefix.
        for namespace in self.core.list_namespace().items:
            if namespace.metadata.name.startswith(self.prefix):
                self.core.delete_namespace(namespace.metadata.name)


@pytest.fixture
def unique_ns(request, kube_fixture_client):
    """Call it to create a namespace: unique_ns() or unique_ns("a"). Prefix: unique_ns.prefix."""
    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:24].strip("-")
    namespaces = Namespaces(kube_fixture_client, f"t-{test}-{secrets.token_hex(3)}-")
    yield namespaces
    namespaces.cleanup()
