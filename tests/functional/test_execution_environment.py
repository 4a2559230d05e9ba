"""The execution environment definition (playbooks/awx/execution-environment.yml) as
ansible-builder sees it: `ansible-builder create` writes the build context (no container
engine needed), then what the context's Containerfile would do is done on this machine
with the context's own files: pip install of its ansible-core / ansible-runner refs into a
new virtualenv, `ansible-galaxy collection install -r requirements.yml` in the context's
_build/ into a new collections path, the collection-level requirements found by
`ansible-builder introspect` (the step the builder stage runs), and then a module from
that environment against the local cluster.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil

import pytest
import yaml
from kubernetes import client as k8s

import fresh_env

pytestmark = pytest.mark.cluster

DEFINITION = os.path.join(fresh_env.REPO, "playbooks", "awx", "execution-environment.yml")


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    work = tmp_path_factory.mktemp("ee")
    # The documented steps: the tarball next to the definition, then ansible-builder.
    shutil.copy(DEFINITION, work / "execution-environment.yml")
    fresh_env.build_tarball(str(work))
    fresh_env.run([os.path.join(fresh_env.DEV_BIN, "ansible-builder"), "create", "-f", "execution-environment.yml",
                   "-c", "context", "--output-filename", "Containerfile"], cwd=str(work))
    return work, work / "context"


def test_context_holds_the_collection_and_its_requirements(context):
    ctx = context[1]
    build = ctx / "_build"
    assert (build / "collections" / fresh_env.tarball_name()).is_file()
    with open(build / "requirements.yml", encoding="utf-8") as handle:
        names = [c["name"] for c in yaml.safe_load(handle)["collections"]]
    assert "collections/" + fresh_env.tarball_name() in names and "kubernetes.core" in names
    containerfile = (ctx / "Containerfile").read_text(encoding="utf-8")
    assert "COPY _build /build" in containerfile and "WORKDIR /build" in containerfile
    assert "ansible-galaxy collection install" in containerfile


@pytest.fixture(scope="module")
def ee_env(context):
    work, ctx = context
    containerfile = (ctx / "Containerfile").read_text(encoding="utf-8")
    refs = shlex.split(re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile, re.M).group(1))
    assert any(r.startswith("ansible-core") for r in refs) and any(r.startswith("ansible-runner") for r in refs)
    bin_dir = fresh_env.new_venv(str(work / "venv"), *refs)
    collections = fresh_env.new_collections_path(str(work / "collections"))
    env = fresh_env.clean_env(bin_dir, collections)
    fresh_env.run([os.path.join(bin_dir, "ansible-galaxy"), "collection", "install", "-r", "requirements.yml",
                   "-p", collections, "--offline"], cwd=str(ctx / "_build"), env=env)
    # The builder stage's introspection, on what was installed.
    pip_out, bindep_out = work / "ee-requirements.txt", work / "ee-bindep.txt"
    fresh_env.run([os.path.join(fresh_env.DEV_BIN, "ansible-builder"), "introspect", "--sanitize",
                   "--write-pip", str(pip_out), "--write-bindep", str(bindep_out), collections])
    python_reqs = pip_out.read_text(encoding="utf-8")
    for needed in ("kubernetes", "ibm-platform-services", "tomli-w", "jmespath", "openshift"):
        assert re.search(r"^%s\b" % re.escape(needed), python_reqs, re.M | re.I), python_reqs
    system_reqs = bindep_out.read_text(encoding="utf-8")
    # Run-time needs only: no build tools, test servers or profiles in the image.
    assert "[test" not in system_reqs and "golang" not in system_reqs and "etcd" not in system_reqs, system_reqs
    fresh_env.run([os.path.join(bin_dir, "python"), "-m", "pip", "install", "-q", "-r", str(pip_out)], timeout=1800)
    return {"work": work, "bin": bin_dir, "collections": collections, "env": env}


def test_module_runs_from_the_execution_environment(ee_env, cluster, unique_ns, kube_fixture_client):
    namespace = unique_ns("ee")
    playbook = fresh_env.write_playbook(str(ee_env["work"] / "play.yml"), [{
        "name": "from the execution environment", "hosts": "localhost", "connection": "local",
        "gather_facts": False,
        "tasks": [{"name": "pull secret", "ibmcloud.registry.icr_pull_secret": {
            "name": "from-ee", "namespaces": [namespace], "service_accounts": [],
            "registry": {"server": "registry.example.com", "username": "u",
                         "password": "{{ lookup('ansible.builtin.env', 'EE_CANARY') }}"}}}]}])
    env = dict(ee_env["env"], K8S_AUTH_KUBECONFIG=cluster.kubeconfig, EE_CANARY="ee-canary-value")
    result = fresh_env.run([os.path.join(ee_env["bin"], "ansible-playbook"), playbook], cwd=str(ee_env["work"]),
                           env=env)
    assert re.search(r"changed=1\s", result.stdout), result.stdout
    names = {s.metadata.name for s in k8s.CoreV1Api(kube_fixture_client).list_namespaced_secret(namespace).items}
    assert "from-ee" in names
