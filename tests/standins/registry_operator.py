"""LOCAL STAND-IN for OpenShift's cluster-image-registry-operator, for tests only. NOT OpenShift.

The local control plane has the operator's ``configs.imageregistry.operator.openshift.io``
CRD (the one openshift/api publishes, on a 1.25+ control plane) but no operator. This stand-in does what the operator does with
the parts of ``configs/cluster`` that ibmcloud.registry changes, as the operator's sources
describe it, while ``spec.managementState`` is ``Managed``:

* ``storage.pvc`` without a claim: writes ``claim: image-registry-storage`` and
  ``storage.managementState: Managed`` and creates that PVC (ReadWriteMany, 100Gi) when it
  is missing;
* more than one storage backend: no change, and a ``Degraded=True`` status condition
  (reason ``StorageConfigurationError``) that says so;
* status: the ``Degraded`` condition, ``storage`` (what it applied) and ``storageManaged``;
* ``defaultRoute: true``: creates Route ``default-route`` in ``openshift-image-registry``
  (reencrypt, to Service ``image-registry``, no ``spec.port``, annotation
  ``imageregistry.openshift.io: "true"``); ``false`` (or unset): deletes it again (only a
  route with that annotation).

It polls every ``interval`` seconds with the identity of the kubeconfig it is given (the
``fixture`` user, so its requests never count as the client's), and writes only when
something differs. Usage: ``with RegistryOperatorStandIn(kubeconfig): ...``.
"""

from __future__ import annotations

import datetime

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from serving import PollingController

CONFIG = ("imageregistry.operator.openshift.io", "v1", "configs", "cluster")
ROUTES = ("route.openshift.io", "v1", "routes")
NAMESPACE = "openshift-image-registry"
SERVICE = "image-registry"
DEFAULT_ROUTE = "default-route"
ROUTE_ANNOTATION = "imageregistry.openshift.io"
DEFAULT_CLAIM = "image-registry-storage"
BACKENDS = ("emptyDir", "pvc", "s3", "gcs", "swift", "azure", "ibmcos", "oss")
MERGE_PATCH = "application/merge-patch+json"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_route_body() -> dict:
    return {"apiVersion": "route.openshift.io/v1", "kind": "Route",
            "metadata": {"name": DEFAULT_ROUTE, "namespace": NAMESPACE,
                         "annotations": {ROUTE_ANNOTATION: "true"}},
            "spec": {"to": {"kind": "Service", "name": SERVICE, "weight": 100},
                     "tls": {"termination": "reencrypt"}, "wildcardPolicy": "None"}}


def storage_condition(spec: dict) -> dict | None:
    """The Degraded condition for a storage configuration the operator refuses, or None."""
    backends = [name for name in BACKENDS if (spec.get("storage") or {}).get(name) is not None]
    if len(backends) <= 1:
        return None
    return {"type": "Degraded", "status": "True", "reason": "StorageConfigurationError",
            "message": "exactly one storage type should be configured at the same time, got %d: %s"
                       % (len(backends), backends)}


class RegistryOperatorStandIn(PollingController):
    """Acts on configs/cluster in a background thread. LOCAL STAND-IN, not the operator."""

    LABEL = "registry-operator-standin"
    TITLE = "registry operator stand-in"

    def __init__(self, kubeconfig: str, interval: float = 0.2):
        super().__init__(interval)
        api_client = config.new_client_from_config(config_file=kubeconfig)
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    def sync(self) -> int:
        """One pass; returns the number of writes."""
        try:
            cfg = self._custom.get_cluster_custom_object(*CONFIG)
        except ApiException as exc:
            if exc.status == 404:
                return 0
            raise
        spec = cfg.get("spec") or {}
        writes = self._status(cfg, storage_condition(spec))
        if spec.get("managementState") != "Managed" or storage_condition(spec):
            return writes
        pvc = (spec.get("storage") or {}).get("pvc")
        if pvc is not None and not pvc.get("claim"):
            writes += self._patch_config(cfg, {"spec": {"storage": {
                "managementState": "Managed", "pvc": {"claim": DEFAULT_CLAIM}}}})
            writes += self._ensure_claim()
        route = self._route()
        if spec.get("defaultRoute") and route is None:
            try:
                self._custom.create_namespaced_custom_object(*ROUTES[:2], NAMESPACE, ROUTES[2], default_route_body())
                writes += 1
            except ApiException as exc:
                if exc.status != 409:
                    raise
        elif not spec.get("defaultRoute") and route is not None \
                and ((route.get("metadata") or {}).get("annotations") or {}).get(ROUTE_ANNOTATION) == "true":
            try:
                self._custom.delete_namespaced_custom_object(*ROUTES[:2], NAMESPACE, ROUTES[2], DEFAULT_ROUTE)
                writes += 1
            except ApiException as exc:
                if exc.status != 404:
                    raise
        return writes

    def _route(self):
        try:
            return self._custom.get_namespaced_custom_object(*ROUTES[:2], NAMESPACE, ROUTES[2], DEFAULT_ROUTE)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _patch_config(self, cfg: dict, body: dict) -> int:
        body = dict(body, metadata={"resourceVersion": cfg["metadata"]["resourceVersion"]})
        try:
            self._custom.patch_cluster_custom_object(*CONFIG, body, _content_type=MERGE_PATCH)
            return 1
        except ApiException as exc:
            if exc.status == 409:  # changed since the read: next pass
                return 0
            raise

    def _status(self, cfg: dict, condition: dict | None) -> int:
        status = cfg.get("status") or {}
        current = [c for c in status.get("conditions") or [] if c.get("type") == "Degraded"]
        wanted = condition or {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": ""}
        # The CRD requires status.storage (the storage the operator applied: kept as it was
        # while the configuration is refused) and status.storageManaged.
        storage = status.get("storage") if condition else (cfg.get("spec") or {}).get("storage")
        storage = storage or {}
        managed = storage.get("managementState") == "Managed"
        if current and all(current[0].get(k) == v for k, v in wanted.items()) \
                and status.get("storage") == storage and status.get("storageManaged") == managed:
            return 0
        others = [c for c in status.get("conditions") or [] if c.get("type") != "Degraded"]
        # The CRD's conditions need lastTransitionTime: kept while the status stays the same.
        since = current[0].get("lastTransitionTime") if current and current[0].get("status") == wanted["status"] \
            else None
        wanted = dict(wanted, lastTransitionTime=since or _now())
        try:
            self._custom.patch_cluster_custom_object_status(*CONFIG, {
                "metadata": {"resourceVersion": cfg["metadata"]["resourceVersion"]},
                "status": {"conditions": others + [wanted], "storageManaged": managed,
                           # a merge patch: backends no longer there are removed with null
                           "storage": dict({k: None for k in status.get("storage") or {}}, **storage)}},
                _content_type=MERGE_PATCH)
            return 1
        except ApiException as exc:
            if exc.status == 409:
                return 0
            raise

    def _ensure_claim(self) -> int:
        try:
            self._core.create_namespaced_persistent_volume_claim(NAMESPACE, {
                "metadata": {"name": DEFAULT_CLAIM},
                "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "100Gi"}}}})
            return 1
        except ApiException as exc:
            if exc.status != 409:
                raise
            return 0
