"""Least privilege: every module and role with a ServiceAccount token bound only to the
rules in docs/rbac/<job>.yaml, on the real API server with RBAC on.

For each job the manifest is loaded from docs/rbac/ (so the documentation and this test
cannot disagree) and turned into one ServiceAccount per variant: ``full`` is bound to
every rule and must succeed; ``no-<resource>`` is bound to all rules but that one and
must fail with a message that names a verb of the removed rule and its resource (one
rule, sa-pull-secret's ``secrets``, is documented to degrade to a warning instead).
ClusterRoles are bound with a ClusterRoleBinding, Roles with a RoleBinding in each
namespace the job touches. Each variant works in namespaces of its own, so a variant
never finds the work of another one done. The roles run with the ``full`` identities.

The OpenShift API types are the LOCAL STAND-IN CRDs (tests/standins/openshift_flavour.py);
IAM is the LOCAL STAND-IN (tests/standins/iam_server.py), which does not model IAM
access policies, so only Kubernetes RBAC is tested here.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import secrets
import time

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from playbook import Runner
from reliability import common
from reliability.common import (  # noqa: F401  pylint: disable=unused-import
    rel_api,
    rel_audit,
    rel_ns,
    reliability_cluster,
)
from reliability.fault_proxy import write_kubeconfig

pytestmark = pytest.mark.cluster

JOBS = common.load_rbac()
# Removing this rule of this job is documented to give a warning, not a failure.
WARN_ONLY = {("sa-pull-secret", "secrets")}
REGISTRY_NS = "openshift-image-registry"


def rule_resource(rule):
    return rule["resources"][0]


class Variant:
    def __init__(self, scenario, removed, index):
        self.scenario = scenario
        self.removed = removed                      # the rule taken away, or None
        # A subresource rule (routes/custom-host) names its variant routes-custom-host.
        self.id = "%s-%s" % (scenario.name, "full" if removed is None
                             else "no-" + rule_resource(removed).replace("/", "-"))
        self.sa = "v%02d-%s" % (index, self.id)[:63]
        self.namespaces = []
        self.kubeconfig = None


class Scenario:
    """One job (docs/rbac/<job>.yaml), the tasks that exercise it, and how to prepare for them."""

    name = ""
    job = ""
    namespaces = 1          # per variant
    variants = True         # one variant per removed rule, besides "full"
    extra_jobs = ()         # (job, namespace) bound too, e.g. for a role that needs several jobs

    def bind_namespaces(self, variant):
        return variant.namespaces

    def prepare(self, ctx, variant):
        pass

    def tasks(self, ctx, variant):
        raise NotImplementedError

    def full_only(self, ctx, variant):
        return []


def icr(name, selector, **extra):
    args = {"name": name, "namespace_selector": [selector], "service_accounts": ["default"]}
    args.update(extra)
    return {"ibmcloud.registry.icr_pull_secret": args}


class PullSecrets(Scenario):
    name, job, namespaces = "icr", "pull-secrets", 2

    def tasks(self, ctx, variant):
        selector = ctx.selector(variant)
        return [icr("lp-icr", selector, entitlement_key="{{ lp_key }}"),
                icr("lp-icr", selector, state="absent")]

    def full_only(self, ctx, variant):
        selector = ctx.selector(variant)
        return [
            {"ansible.builtin.include_role": {"name": "ibmcloud.registry.pull_secrets"}, "vars": {
                "pull_secrets_namespace_selector": [selector],
                "pull_secrets_secrets": [{"name": "lp-role", "registry": {
                    "server": "registry.example.com", "username": "robot", "password": "{{ lp_key }}"}}]}},
            {"ansible.builtin.include_role": {"name": "ibmcloud.registry.entitled_registry"}, "vars": {
                "entitled_registry_entitlement_key": "{{ lp_key }}",
                "entitled_registry_namespace_selector": [selector]}},
        ]


class IamPullSecret(Scenario):
    name, job, namespaces = "iam", "pull-secrets", 1

    def tasks(self, ctx, variant):
        iam = {"iam_url": ctx.standin.url, "ibmcloud_api_key": "{{ lp_iam_key }}"}
        return [{"ibmcloud.registry.iam_service_id": dict(iam, name="lp-id")},
                {"ibmcloud.registry.iam_pull_secret": dict(
                    iam, service_id="lp-id", api_key_name=variant.id, name="lp-iam", regions=["us-south"],
                    namespace_selector=[ctx.selector(variant)], service_accounts=["default"])}]

    def full_only(self, ctx, variant):
        role = {"ansible.builtin.include_role": {"name": "ibmcloud.registry.iam_pull_secret"}, "vars": {
            "iam_pull_secret_mode": "namespace", "iam_pull_secret_cluster_name": "lp",
            "iam_pull_secret_namespaces": variant.namespaces}}
        iam = {"iam_url": ctx.standin.url, "ibmcloud_api_key": "{{ lp_iam_key }}"}
        return [{"block": [role], "module_defaults": {"group/ibmcloud.registry.iam": iam}}]


class PullSecretsNamespaced(Scenario):
    name, job, namespaces = "named", "pull-secrets-namespaced", 2

    def tasks(self, ctx, variant):
        args = {"name": "lp-named", "namespaces": variant.namespaces, "service_accounts": ["default"]}
        return [{"ibmcloud.registry.icr_pull_secret": dict(args, entitlement_key="{{ lp_key }}")},
                {"ibmcloud.registry.icr_pull_secret": dict(args, state="absent")}]


class SaPullSecret(Scenario):
    name, job, namespaces = "sa", "sa-pull-secret", 2

    def prepare(self, ctx, variant):
        for namespace in variant.namespaces:
            ctx.core.create_namespaced_secret(namespace, {"metadata": {"name": "lp-existing"}, "type": "Opaque"})

    def tasks(self, ctx, variant):
        return [{"ibmcloud.registry.sa_pull_secret": {
            "secrets": ["lp-existing"], "namespace_selector": [ctx.selector(variant)]}}]


class OcpInternalPullSecret(Scenario):
    name, job, namespaces = "internal", "ocp-internal-pull-secret", 3

    def prepare(self, ctx, variant):
        source = variant.namespaces[0]
        ctx.flavour.project(ctx.api, source, "legacy", accounts=("default",))
        ctx.route(source, "reg", "reg-%s.example.com" % source[-20:])
        ctx.core.patch_namespace(source, {"metadata": {"labels": {"lp": None}}})  # a source, not a target

    def tasks(self, ctx, variant):
        args = {"route_name": "reg", "route_namespace": variant.namespaces[0], "source_namespace": variant.namespaces[0],
                "namespace_selector": [ctx.selector(variant)], "service_accounts": ["default"]}
        return [{"ibmcloud.registry.ocp_internal_pull_secret": args},
                {"ibmcloud.registry.ocp_internal_pull_secret": dict(args, state="absent")}]


class OcpImagePuller(Scenario):
    name, job, namespaces = "puller", "ocp-image-puller", 3

    def prepare(self, ctx, variant):
        # The first namespace holds the images; the other two are the consumers.
        ctx.core.patch_namespace(variant.namespaces[0], {"metadata": {"labels": {"lp": None}}})

    def tasks(self, ctx, variant):
        args = {"image_namespaces": [variant.namespaces[0]], "namespace_selector": [ctx.selector(variant)]}
        return [{"ibmcloud.registry.ocp_image_puller": args},
                {"ibmcloud.registry.ocp_image_puller": dict(args, service_accounts=["default"])},
                {"ibmcloud.registry.ocp_image_puller": dict(args, state="absent")}]


class OcpRegistryRoute(Scenario):
    name, job = "route", "ocp-registry-route"

    def prepare(self, ctx, variant):
        ctx.service(variant.namespaces[0])

    def tasks(self, ctx, variant):
        # A custom host (routes/custom-host create), then another one (update), checked by the
        # route admission stand-in as OpenShift checks it.
        host = "%s.example.com" % variant.namespaces[0][-40:]
        args = {"namespace": variant.namespaces[0], "wait": False, "hostname": "a-" + host}
        return [{"ibmcloud.registry.ocp_registry_route": args},
                {"ibmcloud.registry.ocp_registry_route": dict(args, hostname="b-" + host,
                                                              annotations={"lp": "changed"})}]


class OcpRegistryConfig(Scenario):
    name, job, namespaces = "config", "ocp-registry-config", 0

    def tasks(self, ctx, variant):
        # The operator Config is cluster-wide: "full" runs first and turns defaultRoute on,
        # so that every later variant needs the route read too.
        return [{"ibmcloud.registry.ocp_registry_config": {"default_route": True}}]


class OcpImageStreamTag(Scenario):
    name, job = "ist", "ocp-image-stream-tag"

    def tasks(self, ctx, variant):
        namespace = variant.namespaces[0]
        first = [{"source": "us.icr.io/team/app:1", "target": "app:1"}]
        second = [{"source": "us.icr.io/team/app:2", "target": "app:1"}]
        return [{"ibmcloud.registry.ocp_image_stream_tag": {"namespace": namespace, "images": first}},
                {"ibmcloud.registry.ocp_image_stream_tag": {"namespace": namespace, "images": second}}]

    def full_only(self, ctx, variant):
        return [{"ansible.builtin.include_role": {"name": "ibmcloud.registry.openshift_images"}, "vars": {
            "openshift_images_namespace": variant.namespaces[0],
            "openshift_images_images": [{"source": "us.icr.io/team/app:3", "target": "app:3"}]}}]


class OcpBuildSecret(Scenario):
    name, job = "build", "ocp-build-secret"

    def prepare(self, ctx, variant):
        namespace = variant.namespaces[0]
        ctx.flavour.project(ctx.api, namespace, "legacy", accounts=("builder",))
        ctx.flavour.build_config(ctx.api, namespace, "app")
        ctx.core.create_namespaced_secret(namespace, {"metadata": {"name": "icr-writer"}, "type": "Opaque"})

    def tasks(self, ctx, variant):
        return [{"ibmcloud.registry.ocp_build_secret": {
            "namespace": variant.namespaces[0], "push_secret": "icr-writer", "build_configs": ["app"]}}]

    def full_only(self, ctx, variant):
        return [{"ansible.builtin.include_role": {"name": "ibmcloud.registry.openshift_builds"}, "vars": {
            "openshift_builds_projects": [{"namespace": variant.namespaces[0], "pull_secret": "icr-writer",
                                           "build_configs": ["app"]}]}}]


class ContainerdHosts(Scenario):
    name, job = "containerd", "containerd-hosts-cluster"

    def tasks(self, ctx, variant):
        registry = {"registry": "lp.example.com", "server": "https://lp.example.com"}
        with_header = dict(registry, server_settings={"headers": {"Authorization": "{{ lp_key }}"}})
        base = {"containerd_hosts_mode": "cluster", "containerd_hosts_cluster_namespace": variant.namespaces[0]}

        def role(**role_vars):
            return {"ansible.builtin.include_role": {"name": "ibmcloud.registry.containerd_hosts"},
                    "vars": dict(base, **role_vars)}

        # Files with a header (a Secret), then without (a ConfigMap; the Secret goes), then absent.
        return [role(containerd_hosts_registries=[with_header]),
                role(containerd_hosts_registries=[registry]),
                role(containerd_hosts_registries=[registry], containerd_hosts_cluster_state="absent")]


class OpenshiftRegistryRole(Scenario):
    """The openshift_registry role needs three jobs together (its default access: image_puller)."""

    name, job, namespaces, variants = "osreg", "ocp-image-puller", 2, False
    extra_jobs = (("ocp-registry-config", None), ("ocp-registry-route", REGISTRY_NS))

    def prepare(self, ctx, variant):
        ctx.core.patch_namespace(variant.namespaces[0], {"metadata": {"labels": {"lp": None}}})

    def tasks(self, ctx, variant):
        return [{"ansible.builtin.include_role": {"name": "ibmcloud.registry.openshift_registry"}, "vars": {
            "openshift_registry_route_host": "registry-lp.example.com", "openshift_registry_route_wait": False,
            "openshift_registry_image_namespaces": [variant.namespaces[0]],
            "openshift_registry_namespace_selector": [ctx.selector(variant)]}}]


class OpenshiftRegistryRoleCopies(Scenario):
    """The role with openshift_registry_access: pull_secret (copies of the credentials)."""

    name, job, namespaces, variants = "oscopy", "ocp-internal-pull-secret", 2, False
    extra_jobs = (("ocp-registry-config", None),)  # the role always reads the registry Config

    def prepare(self, ctx, variant):
        ctx.flavour.project(ctx.api, variant.namespaces[0], "legacy", accounts=("default",))
        ctx.core.patch_namespace(variant.namespaces[0], {"metadata": {"labels": {"lp": None}}})

    def tasks(self, ctx, variant):
        return [{"ansible.builtin.include_role": {"name": "ibmcloud.registry.openshift_registry"}, "vars": {
            "openshift_registry_route": False, "openshift_registry_access": "pull_secret",
            "openshift_registry_pull_secret_host": "registry-lp.example.com",
            "openshift_registry_source_namespace": variant.namespaces[0],
            "openshift_registry_namespace_selector": [ctx.selector(variant)]}}]


SCENARIOS = [PullSecrets(), IamPullSecret(), PullSecretsNamespaced(), SaPullSecret(), OcpInternalPullSecret(),
             OcpImagePuller(), OcpRegistryRoute(), OcpRegistryConfig(), OcpImageStreamTag(), OcpBuildSecret(),
             ContainerdHosts(), OpenshiftRegistryRole(), OpenshiftRegistryRoleCopies()]


def test_every_rbac_manifest_is_exercised_and_documented():
    """docs/rbac/*.yaml, the scenarios here and docs/rbac.md name the same jobs and rules."""
    assert set(JOBS) == set(s.job for s in SCENARIOS)
    with open(os.path.join(common.REPO, "docs", "rbac.md"), encoding="utf-8") as handle:
        page = handle.read()
    for job, manifest in JOBS.items():
        assert manifest["kind"] in ("Role", "ClusterRole")
        assert "rbac/%s.yaml" % job in page, job
        for rule in manifest["rules"]:
            assert len(rule["resources"]) == 1, (job, rule)  # one rule per resource: removable alone
            line = "| %s | %s | %s |" % (rule["apiGroups"][0] or "core", rule_resource(rule), ", ".join(rule["verbs"]))
            assert line in page, (job, line)


class Context:
    """Setup through the `fixture` identity; nothing here is counted as the client's."""

    def __init__(self, cluster, api, rel_ns, standin, workdir):
        import openshift_flavour  # pylint: disable=import-outside-toplevel

        self.cluster = cluster
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.rbac = k8s.RbacAuthorizationV1Api(api)
        self.authz = k8s.AuthorizationV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self.flavour = openshift_flavour
        self.rel_ns = rel_ns
        self.prefix = rel_ns.prefix
        self.standin = standin
        self.workdir = workdir
        self.ids = rel_ns("ids")
        self.cluster_objects = []

    def selector(self, variant):
        return "lp=%s" % variant.id

    def service(self, namespace):
        self.core.create_namespaced_service(namespace, {"metadata": {"name": "image-registry"}, "spec": {
            "ports": [{"name": "5000-tcp", "port": 5000, "targetPort": 5000}]}})

    def route(self, namespace, name, host):
        self.custom.create_namespaced_custom_object("route.openshift.io", "v1", namespace, "routes", {
            "apiVersion": "route.openshift.io/v1", "kind": "Route", "metadata": {"name": name},
            "spec": {"host": host, "to": {"kind": "Service", "name": "image-registry"}}})

    def subject(self, variant):
        return {"kind": "ServiceAccount", "name": variant.sa, "namespace": self.ids}

    def bind(self, variant, job, rules, namespaces):
        """Bind ``rules`` of ``job`` to the variant's ServiceAccount; returns what to check."""
        manifest = JOBS[job]
        name = "%s%s-%s" % (self.prefix, variant.sa, job)[:253]
        ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": manifest["kind"], "name": name}
        metadata = {"name": name, "labels": dict(manifest["metadata"].get("labels") or {})}
        if manifest["kind"] == "ClusterRole":
            self.rbac.create_cluster_role({"metadata": metadata, "rules": rules})
            self.rbac.create_cluster_role_binding({"metadata": {"name": name}, "roleRef": ref,
                                                   "subjects": [self.subject(variant)]})
            self.cluster_objects.append(name)
            return [(rule, None) for rule in rules]
        checks = []
        for namespace in namespaces:
            self.rbac.create_namespaced_role(namespace, {"metadata": metadata, "rules": rules})
            self.rbac.create_namespaced_role_binding(namespace, {"metadata": {"name": name}, "roleRef": ref,
                                                                 "subjects": [self.subject(variant)]})
            checks.extend((rule, namespace) for rule in rules)
        return checks

    def allowed(self, variant, rule, namespace):
        attributes = {"verb": rule["verbs"][0], "group": rule["apiGroups"][0], "resource": rule_resource(rule)}
        if rule.get("resourceNames"):
            attributes["name"] = rule["resourceNames"][0]
        if namespace:
            attributes["namespace"] = namespace
        review = self.authz.create_subject_access_review({"spec": {
            "user": "system:serviceaccount:%s:%s" % (self.ids, variant.sa),
            "groups": ["system:serviceaccounts", "system:serviceaccounts:%s" % self.ids, "system:authenticated"],
            "resourceAttributes": attributes}})
        return review.status.allowed

    def identity(self, scenario, variant):
        self.core.create_namespaced_service_account(self.ids, {"metadata": {"name": variant.sa}})
        rules = [r for r in JOBS[scenario.job]["rules"] if r is not variant.removed]
        checks = self.bind(variant, scenario.job, rules, scenario.bind_namespaces(variant))
        for job, namespace in scenario.extra_jobs:
            checks += self.bind(variant, job, JOBS[job]["rules"], [namespace])
        token = common.service_account_token(self.core, self.ids, variant.sa)
        variant.kubeconfig = write_kubeconfig(os.path.join(self.workdir, variant.sa + ".kubeconfig"),
                                              self.cluster.server, self.cluster.ca, token, user=variant.sa)
        return checks

    def cleanup(self):
        for name in self.cluster_objects:
            for delete in (self.rbac.delete_cluster_role_binding, self.rbac.delete_cluster_role):
                try:
                    delete(name)
                except ApiException:
                    pass


def block(variant, tasks):
    named = []
    for index, task in enumerate(tasks):
        named.append(dict(task, name="%s | %d" % (variant.id, index)))
    named.append({"name": "%s | completed" % variant.id, "ansible.builtin.debug": {"msg": "completed"}})
    return {"name": variant.id, "block": named,
            "module_defaults": {"group/ibmcloud.registry.kube": {"kubeconfig": variant.kubeconfig}},
            "environment": {"K8S_AUTH_KUBECONFIG": variant.kubeconfig},
            "rescue": [{"name": "%s | rescued" % variant.id,
                        "ansible.builtin.debug": {"var": "ansible_failed_result"}}]}


def missing_rule_named(variant, message):
    """The message names a verb of the removed rule, its resource and its API group."""
    rule = variant.removed
    text = message.replace('\\"', '"')
    pattern = r'cannot (%s) resource "%s" in API group "%s"' % (
        "|".join(rule["verbs"]), re.escape(rule_resource(rule)), re.escape(rule["apiGroups"][0]))
    return re.search(pattern, text)


@pytest.fixture
def standin():
    import iam_server  # pylint: disable=import-outside-toplevel

    server = iam_server.IamStandIn().start()
    key = "lp-iam-" + secrets.token_hex(12)
    server.add_admin_key(key)
    server.admin_key = key
    yield server
    server.stop()


def test_each_job_succeeds_with_its_rules_and_fails_naming_a_removed_rule(
        reliability_cluster, rel_api, rel_ns, standin, tmp_path):
    import openshift_flavour  # pylint: disable=import-outside-toplevel

    from route_admission import RouteAdmissionStandIn  # pylint: disable=import-outside-toplevel

    openshift_flavour.install(reliability_cluster.fixture_kubeconfig, rel_api)
    openshift_flavour.reset_config(rel_api)
    ctx = Context(reliability_cluster, rel_api, rel_ns, standin, str(tmp_path))
    try:
        # Routes/custom-host is checked as openshift-apiserver checks it (LOCAL STAND-IN).
        with RouteAdmissionStandIn(reliability_cluster.fixture_kubeconfig) as admission:
            _run_all(ctx, tmp_path)
        refused = [d for d in admission.decisions if not d[3]]
        assert any("route-no-routes-custom-host" in d[1] for d in refused), admission.decisions
    finally:
        ctx.cleanup()
        openshift_flavour.reset_config(rel_api)


def _run_all(ctx, tmp_path):
    plan = []  # (scenario, [variants])
    index = 0
    for scenario in SCENARIOS:
        removals = [None] + (list(JOBS[scenario.job]["rules"]) if scenario.variants else [])
        variants = []
        for removed in removals:
            variant = Variant(scenario, removed, index)
            index += 1
            variant.namespaces = [ctx.rel_ns("%s-%d" % (variant.id, n), labels={"lp": variant.id})
                                  for n in range(scenario.namespaces)]
            variants.append(variant)
        plan.append((scenario, variants))

    checks = []
    for scenario, variants in plan:
        for variant in variants:
            checks.extend((variant, rule, ns) for rule, ns in ctx.identity(scenario, variant))
    common.wait_for_service_accounts(ctx.core, [ns for _s, vs in plan for v in vs for ns in v.namespaces])
    for scenario, variants in plan:
        for variant in variants:
            scenario.prepare(ctx, variant)
    # RBAC is evaluated from a cache: wait until every binding is in force.
    common.wait_for("every binding to be in force", lambda: all(
        ctx.allowed(variant, rule, ns) for variant, rule, ns in checks), timeout=60)
    print("setup done")

    play_vars = {"lp_key": "lp-key-" + secrets.token_hex(8), "lp_iam_key": ctx.standin.admin_key}

    def run(entry):
        scenario, variants = entry
        blocks = [block(v, scenario.tasks(ctx, v) + (scenario.full_only(ctx, v) if v.removed is None else []))
                  for v in variants]
        workdir = tmp_path / scenario.name
        workdir.mkdir()
        runner = Runner("/nonexistent-kubeconfig", workdir=str(workdir))
        return runner.run([], plays=common.play(blocks, play_vars=play_vars))

    started = time.monotonic()

    def timed(entry):
        begin = time.monotonic()
        outcome = run(entry)
        print("%-12s %.1fs (at %.1fs)" % (entry[0].name, time.monotonic() - begin, time.monotonic() - started))
        return outcome

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        played = dict(zip([s.name for s, _v in plan], pool.map(timed, plan)))

    problems = []
    for scenario, variants in plan:
        results = common.task_results(played[scenario.name])
        if not results:
            problems.append("%s: no results: %s" % (scenario.name, played[scenario.name].stderr[-2000:]))
            continue
        for variant in variants:
            mine = [(name, result) for name, result, _s in results if name.startswith(variant.id + " | ")]
            rescued = [r for n, r in mine if n.endswith("| rescued")]
            completed = any(n.endswith("| completed") for n, _r in mine)
            failure = rescued[0]["ansible_failed_result"] if rescued else None
            print("%-32s %s" % (variant.id, "completed" if completed else (failure or {}).get("msg")))
            if variant.removed is None:
                if not completed:
                    problems.append("%s failed with all its rules: %s" % (variant.id, (failure or {}).get("msg")))
                continue
            if (scenario.job, rule_resource(variant.removed)) in WARN_ONLY:
                warnings = [w for _n, r in mine for w in r.get("warnings", [])]
                if not completed or not any(missing_rule_named(variant, w) for w in warnings):
                    problems.append("%s: expected a warning naming the rule: %s" % (variant.id, warnings))
                continue
            if failure is None:
                problems.append("%s succeeded without rule %s" % (variant.id, json.dumps(variant.removed)))
            elif not missing_rule_named(variant, failure.get("msg", "")):
                problems.append("%s: the message does not name the removed rule: %s" % (
                    variant.id, failure.get("msg")))
    assert not problems, "\n".join(problems)

    # iam_pull_secret: a variant that could not read the cluster minted no key.
    minted = sorted(k["name"] for k in ctx.standin.snapshot()["api_keys"] if k["name"].startswith("iam-"))
    assert minted == ["iam-full", "iam-no-serviceaccounts"], minted
