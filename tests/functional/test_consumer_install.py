"""The README's consumer path, as written: `ansible-galaxy collection install` of the built
tarball into a new collections path, `pip install -r requirements.txt` with the minimum
ansible-core into a new virtualenv, then the README's playbook from there against the local
cluster. test_galaxy_build.py checks the tarball's contents and an install into this
checkout's venv; this test checks that nothing of this checkout is needed at run time.
"""

from __future__ import annotations

import base64
import json
import os
import re

import pytest
import yaml
from kubernetes import client as k8s

import fresh_env

pytestmark = pytest.mark.cluster

README = os.path.join(fresh_env.REPO, "README.md")


def readme_text() -> str:
    with open(README, encoding="utf-8") as handle:
        return handle.read()


def readme_minimum_core() -> str:
    match = re.search(r"ansible-core (\d+\.\d+) or later", readme_text())
    assert match, "README must state the minimum ansible-core as 'ansible-core X.Y or later'"
    return match.group(1)


def readme_playbook() -> list:
    blocks = re.findall(r"```yaml\n(# registry\.yml\n.*?)```", readme_text(), re.S)
    assert len(blocks) == 1, "README must have one ```yaml block starting with '# registry.yml'"
    return yaml.safe_load(blocks[0])


def test_readme_minimum_matches_runtime_yml():
    with open(os.path.join(fresh_env.REPO, "meta", "runtime.yml"), encoding="utf-8") as handle:
        requires = yaml.safe_load(handle)["requires_ansible"]
    assert requires.startswith(">=%s" % readme_minimum_core()), requires


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    work = tmp_path_factory.mktemp("consumer")
    tarball = fresh_env.build_tarball(str(work / "dist"))
    minimum = readme_minimum_core()
    bin_dir = fresh_env.new_venv(str(work / "venv"), "ansible-core==%s.*" % minimum,
                                 "-r", os.path.join(fresh_env.REPO, "requirements.txt"))
    collections = fresh_env.new_collections_path(str(work / "collections"))
    env = fresh_env.clean_env(bin_dir, collections)
    # The README's command (with --offline: dependencies only from the collections path).
    fresh_env.run([os.path.join(bin_dir, "ansible-galaxy"), "collection", "install", tarball, "-p", collections,
                   "--offline"], env=env)
    version = fresh_env.run([os.path.join(bin_dir, "python"), "-c",
                             "import ansible.release; print(ansible.release.__version__)"], env=env).stdout.strip()
    assert version.startswith(minimum + "."), version
    return {"work": work, "bin": bin_dir, "collections": collections, "env": env}


def test_readme_playbook_runs_from_the_fresh_install(consumer, cluster, unique_ns, kube_fixture_client):
    namespace = unique_ns("a")
    playbook = fresh_env.write_playbook(str(consumer["work"] / "registry.yml"), readme_playbook())
    password = "consumer-canary-%s" % os.urandom(4).hex()
    env = dict(consumer["env"], K8S_AUTH_KUBECONFIG=cluster.kubeconfig, REGISTRY_PASSWORD=password)
    command = [os.path.join(consumer["bin"], "ansible-playbook"), playbook, "-e",
               json.dumps({"app_namespaces": [namespace]})]
    first = fresh_env.run(command, cwd=str(consumer["work"]), env=env)
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=1\s", first.stdout), first.stdout
    assert password not in first.stdout + first.stderr
    secret = k8s.CoreV1Api(kube_fixture_client).read_namespaced_secret("private-registry", namespace)
    config = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))
    entry = config["auths"]["registry.example.com"]
    assert base64.b64decode(entry["auth"]).decode() == "robot:" + password
    # The module that ran is the installed copy, and a rerun changes nothing.
    again = fresh_env.run(command + ["-v"], cwd=str(consumer["work"]), env=env)
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s", again.stdout), again.stdout
    doc = fresh_env.run([os.path.join(consumer["bin"], "ansible-doc"), "--json", "ibmcloud.registry.icr_pull_secret"],
                        env=env)
    filename = json.loads(doc.stdout)["ibmcloud.registry.icr_pull_secret"]["doc"]["filename"]
    assert filename.startswith(consumer["collections"]), filename
    assert not filename.startswith(fresh_env.REPO + os.sep + "plugins")


def test_install_from_a_git_url(consumer, tmp_path):
    """`ansible-galaxy collection install git+<url>,<ref>`: here the URL of this repository on
    disk (git+file://), at the committed HEAD; Git hosting serves the same repository."""
    collections = fresh_env.new_collections_path(str(tmp_path / "collections"))
    env = fresh_env.clean_env(consumer["bin"], collections)
    env["PATH"] += os.pathsep + "/usr/local/bin"
    fresh_env.run([os.path.join(consumer["bin"], "ansible-galaxy"), "collection", "install",
                   "git+file://%s,HEAD" % fresh_env.REPO, "-p", collections, "--offline"], env=env, cwd=str(tmp_path))
    root = os.path.join(collections, "ansible_collections", "ibmcloud", "registry")
    with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)["collection_info"]
    assert manifest["version"] == fresh_env.galaxy_meta()["version"]
    assert os.path.isfile(os.path.join(root, "plugins", "modules", "icr_pull_secret.py"))
    assert not os.path.exists(os.path.join(root, ".venv")) and not os.path.exists(os.path.join(root, ".cluster"))
    doc = fresh_env.run([os.path.join(consumer["bin"], "ansible-doc"), "--json", "ibmcloud.registry.icr_pull_secret"],
                        env=env)
    assert json.loads(doc.stdout)["ibmcloud.registry.icr_pull_secret"]["doc"]["filename"].startswith(root)
