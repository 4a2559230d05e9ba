"""The CI examples of docs/ci/ as written: GitHub Actions and GitLab CI against the schemas
that check-jsonschema ships (no network), GitHub Actions also through actionlint (built from
its Go module, with shellcheck over the run scripts), Tekton against its own structure (there are no
Tekton CRDs on the local cluster, so no server-side dry run), and then the steps that run
ansible-playbook, taken from each file and run here against the local cluster with the
environment the CI would give them: its secret store's values where the file refers to
them, the file's own variables, and the kubeconfig file each one writes or mounts.
Install steps (pip, ansible-galaxy) are not run: this checkout is the installed collection.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys

import pytest
import yaml
from kubernetes import client as k8s

from playbook import REPO, collections_path

CI = os.path.join(REPO, "docs", "ci")
BIN = os.path.dirname(sys.executable)
SCHEMAS = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}


def load_all(name):
    with open(os.path.join(CI, name), encoding="utf-8") as handle:
        return list(yaml.safe_load_all(handle))


def env_lookups() -> set:
    with open(os.path.join(CI, "registry-vars.yml"), encoding="utf-8") as handle:
        return set(re.findall(r"lookup\('ansible\.builtin\.env', '([A-Z0-9_]+)'\)", handle.read()))


def check_schema(schema, path):
    return subprocess.run([os.path.join(BIN, "check-jsonschema"), "--builtin-schema", schema, path],
                          capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema(name, tmp_path):
    result = check_schema(SCHEMAS[name], os.path.join(CI, name))
    assert result.returncode == 0, result.stdout + result.stderr
    # The same check rejects a broken copy (a job without its runner / a script that is a number).
    document = load_all(name)[0]
    if name == "github-actions.yml":
        del document["jobs"]["registry"]["runs-on"]
    else:
        document["apply"]["script"] = 42
    broken = tmp_path / name
    broken.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert check_schema(SCHEMAS[name], str(broken)).returncode != 0


def actionlint() -> str:
    """The actionlint binary, built from its Go module by build-go.sh (cached after the first time)."""
    built = subprocess.run(["bash", os.path.join(REPO, "tests", "cluster", "build-go.sh"), "actionlint"],
                           capture_output=True, text=True, check=True, timeout=900)
    return os.path.join(built.stdout.strip().split("=", 1)[1], "actionlint")


def run_actionlint(path):
    # actionlint also runs shellcheck (from Debian, in PATH) over every `run:` script.
    return subprocess.run([actionlint(), "-no-color", path], capture_output=True, text=True, check=False, timeout=300)


def test_github_workflow_passes_actionlint(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(os.path.join(CI, "github-actions.yml"), workflows / "registry.yml")
    result = run_actionlint(str(workflows / "registry.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # A broken copy fails: an expression that names a context property GitHub does not have.
    with open(os.path.join(CI, "github-actions.yml"), encoding="utf-8") as handle:
        text = handle.read()
    assert "github.event_name" in text
    (workflows / "broken.yml").write_text(text.replace("github.event_name", "github.event_nmae", 1), encoding="utf-8")
    result = run_actionlint(str(workflows / "broken.yml"))
    assert result.returncode != 0 and "event_nmae" in result.stdout, result.stdout + result.stderr


def test_no_secret_in_any_file():
    for name in os.listdir(CI):
        with open(os.path.join(CI, name), encoding="utf-8") as handle:
            text = handle.read()
        for line in text.splitlines():
            if re.search(r"(password|entitlement_key|_key|token)\s*:\s*\S", line, re.I) and "lookup(" not in line:
                assert "secretKeyRef" in text or "secrets." in line, "%s: %s" % (name, line)


def test_tekton_structure():
    task, pipeline = load_all("tekton-task.yml")[0], load_all("tekton-pipeline.yml")[0]
    assert task["apiVersion"] == pipeline["apiVersion"] == "tekton.dev/v1"
    assert (task["kind"], pipeline["kind"]) == ("Task", "Pipeline")
    spec = task["spec"]
    params = {p["name"]: p for p in spec["params"]}
    workspaces = {w["name"] for w in spec["workspaces"]}
    volumes = {v["name"] for v in spec["volumes"]}
    for step in spec["steps"]:
        assert step["name"] and step["image"] and step["script"].startswith("#!")
        text = yaml.safe_dump(step)
        assert set(re.findall(r"\$\(params\.([a-z-]+)\)", text)) <= set(params)
        assert set(re.findall(r"\$\(workspaces\.([a-z-]+)\.path\)", text)) <= workspaces
        assert {m["name"] for m in step.get("volumeMounts", [])} <= volumes
        names = [e["name"] for e in step["env"]]
        assert len(names) == len(set(names))
        assert env_lookups() <= set(names)
        assert all("value" in e or e["valueFrom"]["secretKeyRef"]["name"] for e in step["env"])
    for ptask in pipeline["spec"]["tasks"]:
        assert ptask["taskRef"]["name"] == task["metadata"]["name"]
        assert {p["name"] for p in ptask["params"]} <= set(params)
        assert {w["name"] for w in ptask["workspaces"]} <= workspaces
        assert set(ptask.get("runAfter", [])) <= {t["name"] for t in pipeline["spec"]["tasks"]}


# --- the pipelines' ansible-playbook steps, run here -----------------------------------------

def workdir(tmp_path):
    """The repository a pipeline checks out: ci/ holds the files of docs/ci/."""
    root = tmp_path / "checkout"
    shutil.copytree(CI, root / "ci")
    return root


def bash(script, cwd, env):
    run_env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], ANSIBLE_COLLECTIONS_PATH=collections_path(),
                   ANSIBLE_NOCOLOR="1", HOME=str(cwd))
    run_env.pop("K8S_AUTH_KUBECONFIG", None)
    run_env.update(env)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=str(cwd), env=run_env,
                          capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, script + "\n" + proc.stdout[-4000:] + proc.stderr[-3000:]
    return proc.stdout


def expect_secrets(kube_fixture_client, namespace, values):
    core = k8s.CoreV1Api(kube_fixture_client)
    auths = {}
    for name in ("private-registry", "entitled-cp-icr-io"):
        auths.update(json.loads(base64.b64decode(core.read_namespaced_secret(name, namespace).data[
            ".dockerconfigjson"]))["auths"])
    assert base64.b64decode(auths["registry.example.com"]["auth"]).decode() == "robot:" + values["REGISTRY_PASSWORD"]
    assert base64.b64decode(auths["cp.icr.io"]["auth"]).decode() == "cp:" + values["ICR_ENTITLEMENT_KEY"]


def secret_values():
    return {"REGISTRY_PASSWORD": "ci-password-" + secrets.token_hex(6),
            "ICR_ENTITLEMENT_KEY": "ci-entitlement-" + secrets.token_hex(6)}


def changed_count(stdout):
    return sum(int(n) for n in re.findall(r"changed=(\d+)", stdout))


@pytest.mark.cluster
def test_github_actions_steps(cluster, unique_ns, kube_fixture_client, tmp_path):
    namespace = unique_ns("gh")
    root, temp = workdir(tmp_path), tmp_path / "runner-temp"
    temp.mkdir()
    with open(cluster.kubeconfig, encoding="utf-8") as handle:
        store = dict(secret_values(), KUBECONFIG=handle.read())
    variables = {"REGISTRY_SERVER": "registry.example.com", "REGISTRY_USERNAME": "robot",
                 "REGISTRY_NAMESPACES": namespace}
    job = load_all("github-actions.yml")[0]["jobs"]["registry"]

    def expand(value):
        def one(match):
            expr = match.group(1).strip()
            if expr.startswith("secrets."):
                return store[expr[len("secrets."):]]
            if expr.startswith("vars."):
                return variables[expr[len("vars."):]]
            assert expr == "runner.temp", "expression the test does not know: " + expr
            return str(temp)
        return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))

    steps = {s["name"]: s for s in job["steps"] if "name" in s}
    outputs = {}
    for name in ("Kubeconfig from the secret store", "Plan", "Apply", "Verify", "Remove the kubeconfig"):
        step = steps[name]
        env = {k: expand(v) for k, v in {**job["env"], **step.get("env", {})}.items()}
        env["RUNNER_TEMP"] = str(temp)
        if "ansible-playbook" in step["run"]:
            assert env_lookups() <= set(env), sorted(env_lookups() - set(env))
        outputs[name] = bash(step["run"], root, env)
        if name == "Plan":  # check mode: reports what would change, writes nothing
            existing = {s.metadata.name for s in k8s.CoreV1Api(kube_fixture_client).list_namespaced_secret(
                namespace).items}
            assert "private-registry" not in existing and "entitled-cp-icr-io" not in existing
    assert changed_count(outputs["Plan"]) > 0 and changed_count(outputs["Verify"]) == 0
    expect_secrets(kube_fixture_client, namespace, store)
    assert not (temp / "kubeconfig").exists()
    for name, out in outputs.items():
        assert store["REGISTRY_PASSWORD"] not in out and store["ICR_ENTITLEMENT_KEY"] not in out, name


@pytest.mark.cluster
def test_gitlab_ci_jobs(cluster, unique_ns, kube_fixture_client, tmp_path):
    namespace = unique_ns("gl")
    root = workdir(tmp_path)
    document = load_all("gitlab-ci.yml")[0]
    kubeconfig_file = tmp_path / "KUBECONFIG_FILE"
    shutil.copy(cluster.kubeconfig, kubeconfig_file)
    values = secret_values()
    # CI/CD variables (the secret store) win over the file's variables, as in GitLab.
    env = {k: str(v).replace("$CI_PROJECT_DIR", str(root)) for k, v in document["variables"].items()}
    env.update(values, KUBECONFIG_FILE=str(kubeconfig_file), REGISTRY_NAMESPACES=namespace,
               CI_PROJECT_DIR=str(root))
    setup = [line for line in document["default"]["before_script"]
             if "pip install" not in line and "ansible-galaxy" not in line]
    assert setup, "before_script sets K8S_AUTH_KUBECONFIG"
    outputs = {}
    for job in ("plan", "apply", "verify"):
        script = "\n".join(setup + document[job]["script"])
        assert "ansible-playbook" in script
        outputs[job] = bash(script, root, env)
    assert changed_count(outputs["plan"]) > 0 and changed_count(outputs["verify"]) == 0
    expect_secrets(kube_fixture_client, namespace, values)


@pytest.mark.cluster
def test_tekton_task_steps(cluster, unique_ns, kube_fixture_client, tmp_path):
    namespace = unique_ns("tk")
    root = workdir(tmp_path)
    task, pipeline = load_all("tekton-task.yml")[0], load_all("tekton-pipeline.yml")[0]
    values = secret_values()
    secret_data = {("registry-ci-credentials", "registry-password"): values["REGISTRY_PASSWORD"],
                   ("registry-ci-credentials", "entitlement-key"): values["ICR_ENTITLEMENT_KEY"]}
    step = task["spec"]["steps"][0]
    mount = step["volumeMounts"][0]["mountPath"]
    mounted = tmp_path / "mount"
    mounted.mkdir()
    shutil.copy(cluster.kubeconfig, mounted / "kubeconfig")  # the Secret's key `kubeconfig`
    defaults = {p["name"]: p.get("default", "") for p in task["spec"]["params"]}

    def subst(text, params):
        text = re.sub(r"\$\(params\.([a-z-]+)\)", lambda m: params[m.group(1)], text)
        return text.replace(mount, str(mounted))

    for ptask in pipeline["spec"]["tasks"]:
        params = dict(defaults, **{p["name"]: p["value"] for p in ptask["params"]})
        env = {}
        for item in step["env"]:
            if "value" in item:
                env[item["name"]] = subst(item["value"], params)
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = secret_data[(ref["name"], ref["key"])]
        env["REGISTRY_NAMESPACES"] = namespace
        out = bash(step["script"], root, env)
        if ptask["name"] == "verify":
            assert changed_count(out) == 0
    expect_secrets(kube_fixture_client, namespace, values)
