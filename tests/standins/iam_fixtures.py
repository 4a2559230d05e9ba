"""pytest fixtures for the LOCAL STAND-IN for IBM Cloud IAM (iam_server.py), in one place.

Test modules of the unit and functional suites import them by name; pytest finds a
fixture in the module namespace of the test that uses it.
"""

from __future__ import annotations

import pytest

import iam_server


@pytest.fixture(scope="module")
def standin():
    """The stand-in on 127.0.0.1, one per test module."""
    with iam_server.IamStandIn() as server:
        yield server


@pytest.fixture
def canary(standin):  # pylint: disable=redefined-outer-name
    """A fresh stand-in whose one known admin key is a canary value."""
    return standin.fresh_admin_key("CANARY-ibmcloud-")
