"""playbooks/verify.yml's exit codes: 0 clean, 2 drift, 1 error (CI tells them apart).

Real ansible-playbook runs the collection's verify.yml against the shared local cluster
(one namespace of this test's own) and, for the unreachable case, against a kubeconfig
whose server is a closed loopback port. Bad input, an unreachable cluster, and an error on
one cluster while another drifted all exit 1; drift alone exits 2. No run writes, except
the pull probe's pod: a probe that does not pull (no node here) exits 2, a bad pull_probe
entry exits 1. The exit code 1 comes from the collection's strategy plugin exit_codes on
verify.yml's last play.
"""

from __future__ import annotations

import os
import socket

import pytest
import yaml
from kubernetes import client as k8s

from playbook import Runner

pytestmark = pytest.mark.cluster

SECRET = "verify-exit-registry"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Verify:
    def __init__(self, cluster, workdir, namespace):
        self.workdir = workdir
        self.runner = Runner(cluster.kubeconfig, workdir=workdir)
        with open(cluster.kubeconfig, encoding="utf-8") as src:
            config = yaml.safe_load(src)
        # The same credentials, sent to a port where nothing listens.
        config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:%d" % closed_port()
        self.unreachable = os.path.join(workdir, "kubeconfig-unreachable")
        with open(self.unreachable, "w", encoding="utf-8") as out:
            yaml.safe_dump(config, out)
        self.kubeconfig = cluster.kubeconfig
        self.site_vars = {"pull_secrets": {
            "namespaces": [namespace], "service_accounts": ["default"],
            "secrets": [{"name": SECRET, "registry": {"server": "registry.example.invalid:5000",
                                                      "username": "robot", "password": "verify-exit-password"}}]}}

    def run(self, playbook, hosts=None, site_vars=None):
        hosts = hosts or {"good": self.kubeconfig}
        inventory = os.path.join(self.workdir, "inventory.yml")
        with open(inventory, "w", encoding="utf-8") as out:
            yaml.safe_dump({"clusters": {"hosts": {name: {"k8s_kubeconfig": path} for name, path in hosts.items()},
                                         "vars": {"ansible_connection": "local",
                                                  "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}},
                           out)
        vars_file = os.path.join(self.workdir, "vars.yml")
        with open(vars_file, "w", encoding="utf-8") as out:
            yaml.safe_dump(site_vars or self.site_vars, out)
        return self.runner.run([], plays=[{"ansible.builtin.import_playbook": "ibmcloud.registry." + playbook}],
                               inventory=inventory, raw=True, args=("-e", "@" + vars_file))


@pytest.fixture
def verify(cluster, unique_ns, tmp_path):
    return Verify(cluster, str(tmp_path), unique_ns())


def test_clean_exits_0_and_drift_exits_2(verify, kube_fixture_client, audit):
    converged = verify.run("site")
    assert converged.rc == 0, converged.stdout[-3000:]
    mark = audit.mark()
    clean = verify.run("verify")
    assert clean.rc == 0, clean.stdout[-3000:]

    namespace = verify.site_vars["pull_secrets"]["namespaces"][0]
    k8s.CoreV1Api(kube_fixture_client).delete_namespaced_secret(SECRET, namespace)
    drifted = verify.run("verify")
    assert drifted.rc == 2, drifted.stdout[-3000:]
    assert "%s: Secret %s is missing" % (namespace, SECRET) in drifted.stdout
    assert "could not be verified" not in drifted.stdout + drifted.stderr
    assert audit.writes(mark, namespace_prefix=namespace) == []


def test_bad_input_exits_1_naming_part_and_key(verify, audit):
    mark = audit.mark()
    bad = dict(verify.site_vars, entitled_registry={"secret_nmae": "typo"})
    result = verify.run("verify", site_vars=bad)
    assert result.rc == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Unknown key(s) under entitled_registry in the vars file: secret_nmae." in result.stdout
    assert "an error, not drift: exit code 1" in result.stdout
    assert audit.writes(mark) == []


def test_unreachable_cluster_exits_1(verify):
    result = verify.run("verify", hosts={"gone": verify.unreachable})
    assert result.rc == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "gone: Discover the cluster's API groups:" in result.stdout
    assert "Exit with code 1 because a cluster or node could not be verified" in result.stderr + result.stdout


def test_an_error_on_one_cluster_wins_over_drift_on_another(verify):
    # `good` has drift (nothing converged yet), `gone` cannot be reached: exit 1, both reported.
    result = verify.run("verify", hosts={"good": verify.kubeconfig, "gone": verify.unreachable})
    assert result.rc == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "good drifted from the vars file" in result.stdout
    assert "gone: Discover the cluster's API groups:" in result.stdout


def test_a_pull_probe_that_does_not_pull_exits_2(verify, audit, kube_fixture_client):
    """No node pulls here (a closed loopback port as registry): drift, not an error."""
    converged = verify.run("site")
    assert converged.rc == 0, converged.stdout[-3000:]
    namespace = verify.site_vars["pull_secrets"]["namespaces"][0]
    probed = dict(verify.site_vars, pull_probe={"image": "127.0.0.1:1/ibmreg/none:1", "part": "pull_secrets",
                                                "timeout": 2})
    mark = audit.mark()
    result = verify.run("verify", site_vars=probed)
    assert result.rc == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "%s: image 127.0.0.1:1/ibmreg/none:1 is not pulled as service account default (" % namespace \
        in result.stdout
    assert "could not be verified" not in result.stdout + result.stderr
    # The probe's pod is the audit's only write, and it is gone.
    writes = audit.writes(mark, namespace_prefix=namespace)
    assert sorted(set((w["verb"], w["resource"]) for w in writes)) == [("create", "pods"), ("delete", "pods")]
    assert k8s.CoreV1Api(kube_fixture_client).list_namespaced_pod(
        namespace, label_selector="ibmcloud.registry/pull-probe").items == []


def test_a_bad_pull_probe_entry_exits_1(verify, audit):
    mark = audit.mark()
    bad = dict(verify.site_vars, pull_probe=[{"image": "registry.example.invalid/a:1", "part": "pull_secrtes",
                                              "timeuot": 5}])
    result = verify.run("verify", site_vars=bad)
    assert result.rc == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "pull_probe[0] in the vars file" in result.stdout
    assert "unknown key(s) timeuot" in result.stdout
    assert "an error, not drift: exit code 1" in result.stdout
    assert audit.writes(mark) == []
