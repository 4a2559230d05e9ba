"""Fixtures for the functional tests: real ansible-playbook runs against the local cluster."""

from __future__ import annotations

import os
import sys

import pytest

import localcluster
from playbook import REPO, Runner, collections_path
from reliability.common import fixture_api

# Tests that call module_utils directly import them as the installed collection.
sys.path.insert(0, collections_path())


@pytest.fixture
def runner(cluster, tmp_path):
    """A Runner whose kube tasks talk to the local cluster as `admin` (the audited identity)."""
    return Runner(cluster.kubeconfig, workdir=str(tmp_path))


@pytest.fixture(scope="module")
def node_cluster():
    """The node cluster ``.cluster-node`` (the alias of ``.cluster``); a test file that breaks
    its cluster overrides this fixture with a cluster of its own."""
    return localcluster.ensure_running(os.path.join(REPO, ".cluster-node"), node=True)


@pytest.fixture(scope="module")
def core(node_cluster):
    """CoreV1Api on ``node_cluster`` as `fixture` (never counted as the client's requests);
    test files on other clusters define their own ``core``."""
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    with fixture_api(node_cluster) as api_client:
        yield client.CoreV1Api(api_client)
