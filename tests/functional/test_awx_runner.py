"""The site job as AWX runs it: ansible-runner (AWX's job engine) runs the project's site.yml
(an import of ibmcloud.registry.site) with the inventory and group_vars of docs/awx.md, the
launch-time limit, tags and survey answer of the job template in playbooks/awx/configure.yml,
and the credentials injected the way the credential types of playbooks/awx/credential_types.yml
inject them: environment variables, extra vars and a kubeconfig file, rendered from the
injector templates with the credential's inputs. Then the runner's artifacts (job events and
stdout, what AWX keeps in its database) are searched for every secret value: the injected
ones, and the API key that the iam_pull_secret part mints from the injected one (against the
LOCAL IAM STAND-IN, tests/standins/iam_server.py).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys

import ansible_runner
import jinja2.sandbox
import pytest
import yaml
from kubernetes import client as k8s

from playbook import REPO, collections_path

sys.path.insert(0, os.path.join(REPO, "tests", "standins"))

import iam_server  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.cluster

AWX = os.path.join(REPO, "playbooks", "awx")


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)  # noqa: S506 - SafeLoader plus !unsafe as plain strings


def inject(credential_types: dict, inputs: dict, private_data_dir: str):
    """AWX's injection: each credential type's env / extra_vars / file templates, rendered with
    the credential's inputs; file templates become files whose paths are tower.filename.*."""
    jinja = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    env, extra_vars = {}, {}
    for ctype in credential_types:
        fields = [f["id"] for f in ctype["inputs"]["fields"]]
        values = {f: inputs.get(ctype["name"], {}).get(f, "") for f in fields}
        filenames = {}
        for key, template in ctype["injectors"].get("file", {}).items():
            name = key.split(".", 1)[1] if "." in key else None
            path = os.path.join(private_data_dir, "credential-%s" % secrets.token_hex(4))
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(jinja.from_string(template).render(**values))
            os.chmod(path, 0o600)
            if name:
                filenames[name] = path
            else:
                filenames = path
        context = dict(values, tower={"filename": filenames})
        for key, template in ctype["injectors"].get("env", {}).items():
            env[key] = jinja.from_string(template).render(**context)
        for key, template in ctype["injectors"].get("extra_vars", {}).items():
            extra_vars[key] = jinja.from_string(template).render(**context)
    return env, extra_vars


def files_under(path):
    for root, _dirs, names in os.walk(path):
        for name in names:
            yield os.path.join(root, name)


def leaks(paths, canaries):
    found = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        found += ["%s in %s" % (label, path) for label, value in canaries.items() if value in text]
    return found


@pytest.fixture
def iam():
    stand_in = iam_server.IamStandIn().start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


def test_site_job_through_ansible_runner(cluster, unique_ns, kube_fixture_client, iam, tmp_path):
    namespace = unique_ns("awx")
    pdd = tmp_path / "job"
    project, inventory = pdd / "project", pdd / "project" / "inventory"
    (inventory / "group_vars" / "clusters").mkdir(parents=True)
    (project / "site.yml").write_text("---\n- name: Registry setup\n  ansible.builtin.import_playbook: "
                                      "ibmcloud.registry.site\n", encoding="utf-8")
    (inventory / "clusters.yml").write_text(yaml.safe_dump({"clusters": {
        "hosts": {"local-cluster": {"ibmcloud_cluster_name": "local-cluster"},
                  "other-cluster": {"ibmcloud_cluster_name": "other-cluster", "k8s_context": "does-not-exist"}},
        "vars": {"ansible_connection": "local",
                 "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}), encoding="utf-8")
    (inventory / "group_vars" / "clusters" / "registry.yml").write_text(yaml.safe_dump({
        "pull_secrets": {"namespaces": [namespace], "service_accounts": [], "secrets": [
            {"name": "awx-private-registry",
             "registry": {"server": "registry.example.com", "username": "robot",
                          "password": "{{ vault_registry_password }}"}}]},
        "entitled_registry": {"entitlement_key": "{{ vault_entitlement_key }}", "namespaces": [namespace],
                              "service_accounts": []},
        # The API key comes from the IBM Cloud credential (IC_API_KEY); only the IAM URL is set here.
        "iam_pull_secret": {"mode": "namespace", "namespaces": [namespace], "iam_url": iam.url},
    }), encoding="utf-8")

    with open(cluster.kubeconfig, encoding="utf-8") as handle:
        kubeconfig_text = handle.read()
    token = next(u["user"]["token"] for u in yaml.safe_load(kubeconfig_text)["users"] if u["user"].get("token"))
    canaries = {"api key": "apikey-canary-" + secrets.token_hex(8),
                "entitlement key": "entitlement-canary-" + secrets.token_hex(8),
                "registry password": "password-canary-" + secrets.token_hex(8),
                "kubeconfig token": token}
    inputs = {"IBM Cloud API key": {"api_key": canaries["api key"]},
              "Kubeconfig": {"kubeconfig": kubeconfig_text},
              "Registry secrets": {"entitlement_key": canaries["entitlement key"],
                                   "registry_password": canaries["registry password"]}}
    ctypes = load(os.path.join(AWX, "credential_types.yml"))["registry_credential_types"]
    env, extra_vars = inject(ctypes, inputs, str(pdd))
    assert env["K8S_AUTH_KUBECONFIG"].startswith(str(pdd)) and env["IC_API_KEY"] == canaries["api key"]
    iam.add_admin_key(canaries["api key"])

    # What the job template asks on launch (playbooks/awx/configure.yml): survey answer, limit, tags.
    configure = load(os.path.join(AWX, "configure.yml"))[0]
    template = next(t for t in configure["tasks"] if "awx.awx.job_template" in t)["awx.awx.job_template"]
    assert template["ask_limit_on_launch"] and template["ask_tags_on_launch"]
    survey_var = template["survey_spec"]["spec"][0]["variable"]
    extra_vars[survey_var] = "clusters"

    env.update(ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_NOCOLOR="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = ansible_runner.run(private_data_dir=str(pdd), project_dir=str(project), playbook="site.yml",
                                inventory=str(inventory / "clusters.yml"), envvars=env, extravars=extra_vars,
                                limit="local-cluster", tags="iam_pull_secret,pull_secrets,entitled_registry", verbosity=3,
                                quiet=True, ident="site")
    artifacts = pdd / "artifacts" / "site"
    stdout = (artifacts / "stdout").read_text(encoding="utf-8", errors="replace")
    assert result.rc == 0, stdout[-4000:]
    assert result.stats["ok"].keys() == {"local-cluster"}, result.stats  # the limit held

    core = k8s.CoreV1Api(kube_fixture_client)
    auths = {}
    for name in ("awx-private-registry", "entitled-cp-icr-io"):
        secret = core.read_namespaced_secret(name, namespace)
        auths.update(json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"])
    assert base64.b64decode(auths["registry.example.com"]["auth"]).decode() == "robot:" + canaries["registry password"]
    assert base64.b64decode(auths["cp.icr.io"]["auth"]).decode() == "cp:" + canaries["entitlement key"]
    # The key IAM minted for the namespace's service ID is in its pull secret, and nowhere in the job's record.
    minted = json.loads(base64.b64decode(core.read_namespaced_secret("local-cluster-icr-io", namespace).data[
        ".dockerconfigjson"]))["auths"]["us.icr.io"]["password"]
    assert minted != canaries["api key"] and len(minted) > 20
    canaries["minted api key"] = minted

    events = list(files_under(artifacts / "job_events"))
    assert len(events) > 10
    task_names = set()
    for event in events:
        with open(event, encoding="utf-8") as handle:
            task_names.add(json.load(handle).get("event_data", {}).get("task"))
    assert any(n and "pull secret" in n.lower() for n in task_names), task_names
    assert not leaks(events + [str(artifacts / "stdout")], canaries)
    # The scan does see the values where the job's inputs hold them (runner's env/ files).
    assert leaks(list(files_under(pdd / "env")), {"registry password": canaries["registry password"]})
