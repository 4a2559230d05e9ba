"""Fixtures for the functional tests: real ansible-playbook runs against the local cluster."""

from __future__ import annotations

import sys

import pytest

from playbook import Runner, collections_path

# Tests that call module_utils directly import them as the installed collection.
sys.path.insert(0, collections_path())


@pytest.fixture
def runner(cluster, tmp_path):
    """A Runner whose kube tasks talk to the local cluster as `admin` (the audited identity)."""
    return Runner(cluster.kubeconfig, workdir=str(tmp_path))
