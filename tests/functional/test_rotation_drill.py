"""A short key rotation drill (tests/functional/rotation_drill.py): pods keep pulling
``us.icr.io`` names while playbooks/rotate_api_key.yml rotates the key in their pull secret,
and none of the pulls fails; and the drill's counterpart that fails, so that the first test
cannot pass for want of a failure the drill would see.

Real: the node cluster ``<repo>/.cluster-drill`` (Kubernetes 1.37, kubelet, containerd 2.x),
docker-registry with token auth, ansible-playbook with site.yml and rotate_api_key.yml.
Stand-ins: IBM Cloud IAM (tests/standins/iam_server.py) and the registry's token service
(tests/standins/token_service.py), on loopback.
"""

from __future__ import annotations

import pytest
from kubernetes import client

import localcluster
import rotation_drill
from reliability.common import fixture_api

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def drill_cluster():
    """A node cluster of this file alone: the drill rewrites the node's icr.io mirrors."""
    return localcluster.ensure_running(rotation_drill.CLUSTER_DIR, node=True)


@pytest.fixture(scope="module")
def env(drill_cluster, tmp_path_factory):
    with rotation_drill.DrillEnv(drill_cluster, str(tmp_path_factory.mktemp("drill"))) as drill_env:
        yield drill_env


@pytest.fixture(scope="module")
def core(drill_cluster):
    with fixture_api(drill_cluster) as api_client:
        yield client.CoreV1Api(api_client)


def logs_in(env, key_id):
    """Whether IAM still has the key (the token service asks IAM about every pull)."""
    return any(k["id"] == key_id for k in env.iam.snapshot()["api_keys"])


def test_no_pull_fails_while_rotate_api_key_yml_rotates_the_key(env, core):
    result = rotation_drill.run_drill(env, core, namespaces=3, duration=60, rate=0.5)
    report = "\n".join(result.lines())
    print(report)
    assert result.rotation["rc"] == 0, result.rotation["output"][-3000:]
    assert len(result.pulled) > 20, report
    assert result.failed == [] and result.other == [] and result.undecided == [], report
    assert report.startswith("failed pulls: 0 of %d\n" % len(result.pulled))
    # Pods came before, during and after the rotation; those after the old key's deletion
    # pulled with the new key.
    started = result.playbook_runs[1]["started"]
    assert [p for p in result.pulled if p.created < started]
    assert result.pulled_after_delete(), report
    # The registry's token service refused nothing: no pull failed and was retried unseen.
    assert result.token_refused == [] and result.token_granted >= len(result.pulled), report
    # The old key was deleted at the end, by the playbook itself once its grace period
    # (default 120 s) after the secrets' update had passed; later pulls came with the new key.
    assert not result.old_key_left and not logs_in(env, result.old_key_id)
    assert result.new_key_id and logs_in(env, result.new_key_id)
    assert result.secrets_updated + 120 <= result.old_key_deleted, report
    assert 120 < result.old_key_valid_for < result.rotation["seconds"] + 1, report
    assert "old key valid for %.1f s after the new key was created" % result.old_key_valid_for in report


def test_the_drill_fails_when_the_old_key_goes_before_the_secrets_change(env, core):
    """The wrong order, driven on the IAM stand-in directly: the old key is deleted and no
    secret changes. Pods created after that fail their pulls, and the drill says so."""
    def delete_old_key(old_key_id):
        env.iam_client().delete_api_key(old_key_id)
        return {"rc": 0, "seconds": 0.0, "output": ""}

    result = rotation_drill.run_drill(env, core, namespaces=2, duration=40, rate=0.5, rotate=delete_old_key)
    report = "\n".join(result.lines())
    print(report)
    assert not result.ok()
    assert len(result.failed) > 3 and result.pulled, report
    assert report.startswith("failed pulls: %d of %d\n" % (len(result.failed), len(result.failed) + len(result.pulled)))
    for pod in result.failed:
        assert pod.reason in ("ErrImagePull", "ImagePullBackOff"), (pod, report)
        assert "IAM does not know this API key" in pod.message, (pod, report)
    assert len(result.token_refused) >= len(result.failed)
    assert all(e["time"] > result.old_key_deleted for e in result.token_refused)
    assert result.new_key_id is None and result.old_key_valid_for is None
