"""LOCAL STAND-IN for the parts of an OpenShift 4 cluster that ibmcloud.registry reads.
This is NOT OpenShift: it is plain Kubernetes objects and CRDs, for tests only.

The local control plane has no OpenShift. What an OpenShift 4 cluster on IBM Cloud has
for the internal registry is created here with the `fixture` identity:

* the CRDs for route.openshift.io, image.openshift.io, build.openshift.io and
  imageregistry.operator.openshift.io, so API discovery looks like OpenShift 4. On a
  control plane that evaluates CEL (1.25+) Route and the operator Config are the real
  CRDs that openshift/api publishes (tests/cluster/crds.py reads them from the pinned Go
  module); on older ones, and always for image.openshift.io and build.openshift.io (which
  OpenShift serves from openshift-apiserver, not from CRDs), the stand-in CRDs of
  tests/cluster/crds/. The server behaviour of those two APIs is
  tests/standins/openshift_apiserver.py (LOCAL STAND-IN);
* namespace ``openshift-image-registry`` with the ``image-registry`` Service (port 5000,
  named ``5000-tcp``), as the image registry operator creates it;
* the operator's ``configs.imageregistry.operator.openshift.io/cluster`` (:data:`BASELINE_CONFIG`);
* PVC ``image-registry-storage`` (class ``ibmc-file-gold``, 100Gi). There is no storage
  provisioner, so it stays Pending: its size is the request;
* ClusterRole ``system:image-puller`` with OpenShift's rule (``get`` on
  ``imagestreams/layers``), so RoleBindings that grant it are checked by the real RBAC
  authorizer (a SubjectAccessReview answers as on OpenShift);
* per test project (:func:`project`): the ``builder`` service account and the
  ``<sa>-dockercfg-<suffix>`` secrets that OpenShift's controllers would create for
  ``default`` and ``builder``, linked to the service accounts as those versions do:
  ``legacy`` is the shape before 4.16 (username/password, ``openshift.io/token-secret.*``
  annotations, a made-up string as the never-expiring token); ``bound`` is the 4.16+
  shape of openshift-controller-manager's internal-registry controllers (annotations
  ``openshift.io/internal-registry-auth-token.service-account`` and ``.binding: bound``,
  owned by the service account, which carries ``openshift.io/internal-registry-pull-secret-ref``;
  data created as ``{}``, then filled with ``auth`` entries holding a real bound token
  from the TokenRequest API, bound to that Secret, with the API server's default
  lifetime); and BuildConfigs (:func:`build_config`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import time

from kubernetes import client
from kubernetes.client.rest import ApiException

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CRD_DIR = os.path.join(REPO, "tests", "cluster", "crds")
REGISTRY_NS = "openshift-image-registry"
REGISTRY_SERVICE = "image-registry"
REGISTRY_PVC = "image-registry-storage"
# The ClusterIP entry as OpenShift writes it (IBM Cloud service range); not the stand-in Service's IP.
CLUSTER_IP = "172.21.0.10"
INTERNAL_SERVERS = (f"{REGISTRY_SERVICE}.{REGISTRY_NS}.svc:5000", f"{CLUSTER_IP}:5000",
                    f"{REGISTRY_SERVICE}.{REGISTRY_NS}.svc.cluster.local:5000")
CONFIG_API = ("imageregistry.operator.openshift.io", "v1", "configs")
BUILD_API = ("build.openshift.io", "v1", "buildconfigs")
# IBM Cloud classic clusters: file storage behind a PVC, operator managing the registry.
BASELINE_CONFIG = {"managementState": "Managed", "replicas": 1,
                   "storage": {"pvc": {"claim": REGISTRY_PVC}}}


# OpenShift's bootstrap ClusterRole (openshift/openshift-apiserver bootstrap policy).
IMAGE_PULLER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
    "metadata": {"name": "system:image-puller",
                 "annotations": {"openshift.io/description": "Grants the right to pull images from within a project."}},
    "rules": [{"apiGroups": ["", "image.openshift.io"], "resources": ["imagestreams/layers"], "verbs": ["get"]}],
}
BINDING_ANNOTATION = "openshift.io/internal-registry-auth-token.binding"
TOKEN_SA_ANNOTATION = "openshift.io/internal-registry-auth-token.service-account"
PULL_SECRET_REF_ANNOTATION = "openshift.io/internal-registry-pull-secret-ref"


def _ignore_exists(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except ApiException as exc:
        if exc.status != 409:
            raise
        return None


def install(kubeconfig: str, api_client) -> None:
    """CRDs, the registry namespace, Service, operator Config and PVC (idempotent)."""
    sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))
    import crds  # pylint: disable=import-outside-toplevel

    files = crds.crd_files(CRD_DIR)
    if crds.server_minor(kubeconfig) >= crds.CEL_MINOR:
        real = crds.openshift_api_crd_files()
        published = {doc["metadata"]["name"] for doc in crds.load_crds(real)}
        files = [path for path in files
                 if not {doc["metadata"]["name"] for doc in crds.load_crds([path])} & published] + real
    crds.install_crds(kubeconfig, files)
    core = client.CoreV1Api(api_client)
    _ignore_exists(core.create_namespace, {"metadata": {"name": REGISTRY_NS}})
    _ignore_exists(core.create_namespaced_service, REGISTRY_NS, {
        "metadata": {"name": REGISTRY_SERVICE, "labels": {"docker-registry": "default"}},
        "spec": {"type": "ClusterIP", "selector": {"docker-registry": "default"},
                 "ports": [{"name": "5000-tcp", "port": 5000, "protocol": "TCP", "targetPort": 5000}]}})
    _ignore_exists(core.create_namespaced_persistent_volume_claim, REGISTRY_NS, {
        "metadata": {"name": REGISTRY_PVC, "labels": {"billingType": "hourly"}},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "ibmc-file-gold",
                 "resources": {"requests": {"storage": "100Gi"}}}})
    _ignore_exists(client.RbacAuthorizationV1Api(api_client).create_cluster_role, IMAGE_PULLER_ROLE)
    custom = client.CustomObjectsApi(api_client)
    _ignore_exists(custom.create_cluster_custom_object, *CONFIG_API[:2], CONFIG_API[2], {
        "apiVersion": "imageregistry.operator.openshift.io/v1", "kind": "Config",
        "metadata": {"name": "cluster"}, "spec": BASELINE_CONFIG})


def reset_config(api_client, spec: dict | None = None) -> dict:
    """Put the operator Config's spec back to ``spec`` (default BASELINE_CONFIG), whole."""
    custom = client.CustomObjectsApi(api_client)
    current = custom.get_cluster_custom_object(*CONFIG_API, "cluster")
    current["spec"] = dict(spec or BASELINE_CONFIG)
    return custom.replace_cluster_custom_object(*CONFIG_API, "cluster", current)


def read_config(api_client) -> dict:
    return client.CustomObjectsApi(api_client).get_cluster_custom_object(*CONFIG_API, "cluster")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def dockercfg(shape: str, token: str) -> dict:
    """The ``.dockercfg`` document OpenShift writes, without the ``auths`` wrapper.

    ``legacy`` (before 4.16): username ``serviceaccount``, the token as password.
    ``bound`` (4.16 and later): only ``auth``, base64 of ``<token>:`` + a bound token.
    """
    if shape == "legacy":
        entry = {"username": "serviceaccount", "password": token, "email": "serviceaccount@example.org",
                 "auth": _b64("serviceaccount:" + token)}
    elif shape == "bound":
        entry = {"auth": _b64("<token>:" + token)}
    else:
        raise ValueError(shape)
    return {server: dict(entry) for server in INTERNAL_SERVERS}


def _suffix() -> str:
    """Five characters as the API server's name generator picks them (no vowels, no 0/1/3)."""
    return "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _position in range(5))


def wait_for_service_account(core, namespace: str, name: str = "default", timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return core.read_namespaced_service_account(name, namespace)
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _bound_token(core, namespace: str, account: str, secret: dict) -> str:
    """A bound token for ``account``, bound to ``secret`` as the 4.16 controller asks for it
    (no expirationSeconds: the API server's default lifetime, about an hour)."""
    # No audiences either: the API server's own (openshift-controller-manager sends none).
    review = core.create_namespaced_service_account_token(account, namespace, {"spec": {
        "boundObjectRef": {"apiVersion": "v1", "kind": "Secret",
                           "name": secret.metadata.name, "uid": secret.metadata.uid}}})
    return review.status.token


def project(api_client, namespace: str, shape: str = "legacy", accounts=("default", "builder")) -> dict:
    """OpenShift's per-project service account setup in an existing namespace.

    Returns {service account: (secret name, token)}. The dockercfg secret is linked in
    ``imagePullSecrets`` and ``secrets`` in both shapes (4.16's service account controller
    still adds it to ``secrets``). ``bound`` follows openshift-controller-manager's two
    controllers step by step: the Secret is created with ``{}`` and the service-account
    annotation, owned by the account; the account is linked; then a TokenRequest bound
    to the Secret (no expiry asked for: the API server's default, one hour) fills it in
    and the Secret is annotated ``binding: bound``.
    """
    if shape not in ("legacy", "bound"):
        raise ValueError(shape)
    core = client.CoreV1Api(api_client)
    made = {}
    for account in accounts:
        if account == "default":
            sa = wait_for_service_account(core, namespace)
        else:
            _ignore_exists(core.create_namespaced_service_account, namespace, {"metadata": {"name": account}})
            sa = wait_for_service_account(core, namespace, account)
        name = f"{account}-dockercfg-{_suffix()}"
        if shape == "legacy":
            token = f"standin-legacy-token-{account}-{secrets.token_hex(8)}"
            core.create_namespaced_secret(namespace, {
                "metadata": {"name": name, "annotations": {
                    "kubernetes.io/service-account.name": account,
                    "kubernetes.io/service-account.uid": sa.metadata.uid,
                    "openshift.io/token-secret.name": f"{account}-token-{_suffix()}",
                    "openshift.io/token-secret.value": token}},
                "type": "kubernetes.io/dockercfg",
                "data": {".dockercfg": _b64(json.dumps(dockercfg(shape, token)))}})
            patch = {"imagePullSecrets": [{"name": name}], "secrets": [{"name": name}]}
        else:
            secret = core.create_namespaced_secret(namespace, {
                "metadata": {"name": name,
                             "annotations": {TOKEN_SA_ANNOTATION: account},
                             "ownerReferences": [{"apiVersion": "v1", "kind": "ServiceAccount", "name": account,
                                                  "uid": sa.metadata.uid}]},
                "type": "kubernetes.io/dockercfg",
                "data": {".dockercfg": _b64("{}")}})
            # The service account controller links it (secrets too, until OpenShift drops that).
            core.patch_namespaced_service_account(account, namespace, {
                "metadata": {"annotations": {PULL_SECRET_REF_ANNOTATION: name}},
                "imagePullSecrets": [{"name": name}], "secrets": [{"name": name}]})
            # The image pull secret controller: a token bound to the Secret, then binding: bound.
            token = _bound_token(core, namespace, account, secret)
            core.patch_namespaced_secret(name, namespace, {
                "metadata": {"annotations": {BINDING_ANNOTATION: "bound"}},
                "data": {".dockercfg": _b64(json.dumps(dockercfg(shape, token)))}})
            made[account] = (name, token)
            continue
        core.patch_namespaced_service_account(account, namespace, patch)
        made[account] = (name, token)
    return made


def build_config(api_client, namespace: str, name: str, strategy: str = "Docker", **extra) -> dict:
    """A BuildConfig like ``oc new-build`` makes (strategy Docker, Source or JenkinsPipeline)."""
    field = {"Docker": "dockerStrategy", "Source": "sourceStrategy",
             "JenkinsPipeline": "jenkinsPipelineStrategy"}[strategy]
    body = {"type": strategy, field: {}}
    if strategy == "Source":
        body[field] = {"from": {"kind": "DockerImage", "name": "us.icr.io/base/s2i:1"}}
    elif strategy == "Docker":
        body[field] = {"from": {"kind": "DockerImage", "name": "us.icr.io/base/ubi:9"}}
    spec = {"runPolicy": "Serial", "source": {"git": {"uri": "https://example.com/app.git"}, "type": "Git"},
            "strategy": body, "output": {"to": {"kind": "DockerImage", "name": f"us.icr.io/team/{name}:latest"}},
            "triggers": [{"type": "ConfigChange"}]}
    spec.update(extra)
    return client.CustomObjectsApi(api_client).create_namespaced_custom_object(*BUILD_API[:2], namespace, BUILD_API[2], {
        "apiVersion": "build.openshift.io/v1", "kind": "BuildConfig", "metadata": {"name": name}, "spec": spec})
