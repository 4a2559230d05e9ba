"""The collection as users get it: `ansible-galaxy collection build`, then `install` of the
tarball into an empty collections path, then its modules and roles run from there.

Runs offline: the one dependency, kubernetes.core, comes from the `ansible` package that is
already installed (`--offline` resolves dependencies from installed collections only).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml
from kubernetes import client as k8s

from playbook import Runner

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)

pytestmark = pytest.mark.cluster

# Nothing local to one checkout may end up in the tarball: cluster state (keys, etcd data,
# kubeconfigs with tokens), virtualenvs, caches, test output.
FORBIDDEN_PREFIXES = (".cluster", ".venv", ".tmp", ".ansible/", ".ansible-lint", ".pytest_cache", ".git/",
                      "tests/output", "tests/integration/integration_config.yml",
                      "changelogs/.plugin-cache.yaml", "Makefile", "requirements-test.txt", "scripts/",
                      "tests/bench/", "tests/cluster/gobuild/", "playbooks/demo_prepare.yml",
                      "playbooks/inventory/demo.yml")


def galaxy(*args, env=None):
    return subprocess.run([os.path.join(BIN, "ansible-galaxy"), *args], capture_output=True, text=True,
                          check=False, env=dict(os.environ, **(env or {})), timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("galaxy")
    dist, collections = work / "dist", work / "collections"
    with open(os.path.join(REPO, "galaxy.yml"), encoding="utf-8") as src:
        meta = yaml.safe_load(src)
    built = galaxy("collection", "build", REPO, "--output-path", str(dist), "--force")
    assert built.returncode == 0, built.stdout + built.stderr
    tarballs = glob.glob(str(dist / "*.tar.gz"))
    assert [os.path.basename(t) for t in tarballs] == ["%s-%s-%s.tar.gz" % (meta["namespace"], meta["name"],
                                                                            meta["version"])]
    with tarfile.open(tarballs[0]) as tar:
        names = tar.getnames()
    leaked = [n for n in names if n.startswith(FORBIDDEN_PREFIXES) or "/.pytest_cache" in n or n.endswith(".pyc")]
    assert not leaked, "files that must not ship: %s" % leaked[:20]
    for needed in ("MANIFEST.json", "FILES.json", "LICENSE", "meta/runtime.yml", "plugins/modules/icr_pull_secret.py",
                   "roles/pull_secrets/meta/argument_specs.yml", "playbooks/site.yml"):
        assert needed in names, needed
    installed_ = galaxy("collection", "install", tarballs[0], "-p", str(collections), "--offline")
    assert installed_.returncode == 0, installed_.stdout + installed_.stderr
    root = collections / "ansible_collections" / meta["namespace"] / meta["name"]
    assert (root / "MANIFEST.json").is_file()
    return {"collections": str(collections), "root": str(root), "meta": meta}


def test_installed_collection_is_listed_and_documented(installed):
    env = {"ANSIBLE_COLLECTIONS_PATH": installed["collections"]}
    listed = galaxy("collection", "list", "ibmcloud.registry", "-p", installed["collections"], "--format", "json",
                    env=env)
    assert listed.returncode == 0, listed.stderr
    versions = {name: info["version"] for path in json.loads(listed.stdout).values() for name, info in path.items()}
    assert versions["ibmcloud.registry"] == installed["meta"]["version"]
    doc = subprocess.run([os.path.join(BIN, "ansible-doc"), "--json", "ibmcloud.registry.icr_pull_secret"],
                         capture_output=True, text=True, check=False, env=dict(os.environ, **env))
    assert doc.returncode == 0, doc.stderr
    info = json.loads(doc.stdout)["ibmcloud.registry.icr_pull_secret"]["doc"]
    assert info["filename"].startswith(installed["root"])
    roles = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", "role", "--json", "ibmcloud.registry.pull_secrets"],
                           capture_output=True, text=True, check=False, env=dict(os.environ, **env))
    assert roles.returncode == 0, roles.stderr
    role = json.loads(roles.stdout)["ibmcloud.registry.pull_secrets"]
    assert "pull_secrets_secrets" in role["entry_points"]["main"]["options"]


def test_installed_module_and_role_run_against_the_cluster(installed, cluster, unique_ns, kube_fixture_client,
                                                           tmp_path):
    namespace = unique_ns("inst")
    core = k8s.CoreV1Api(kube_fixture_client)
    runner = Runner(cluster.kubeconfig, workdir=str(tmp_path))
    tasks = [
        {"name": "module", "ibmcloud.registry.icr_pull_secret": {
            "name": "from-tarball", "namespaces": [namespace], "service_accounts": [],
            "registry": {"server": "registry.example.com", "username": "u", "password": "{{ password }}"}}},
        {"name": "role", "ansible.builtin.include_role": {"name": "ibmcloud.registry.entitled_registry"},
         "vars": {"entitled_registry_entitlement_key": "{{ password }}", "entitled_registry_namespaces": [namespace],
                  "entitled_registry_service_accounts": []}},
    ]
    result = runner.run(tasks, play_vars={"password": "not-a-real-password"},
                        env={"ANSIBLE_COLLECTIONS_PATH": installed["collections"]})
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert result["module"]["changed"] is True
    # The role's tasks came from the installed copy, not from this checkout.
    document = json.loads(result.stdout)
    paths = [task["task"]["path"] for play in document["plays"] for task in play["tasks"]
             if task["task"]["name"].startswith("ibmcloud.registry.entitled_registry")
             or "entitled registry" in task["task"]["name"]]
    role_paths = [p for p in paths if "/roles/entitled_registry/" in p]
    assert role_paths and all(p.startswith(installed["root"]) for p in role_paths), paths
    names = {s.metadata.name for s in core.list_namespaced_secret(namespace).items}
    assert {"from-tarball", "entitled-cp-icr-io"} <= names
