"""LOCAL STAND-IN for the OpenShift router, for tests only. This is NOT OpenShift's router.

The local control plane has no OpenShift: Routes exist only through the CRD in
tests/cluster/crds/route.openshift.io.yaml, and nothing admits them. This stand-in plays
the part of the router's route admission that ibmcloud.registry relies on, as the
real router (openshift/router) reports it:

* A Route without ``spec.host`` gets ``<name>-<namespace>.<ingress domain>``, the
  router's default host naming. (On OpenShift the API server assigns it while creating
  the route; here it happens a moment later, so code must accept either.)
* Each route gets one ``status.ingress`` entry for router ``default``: the host,
  ``routerCanonicalHostname``, ``wildcardPolicy`` and an ``Admitted`` condition.
* Host claims work as in the router (``unique_host.go``): the oldest route (creation
  time, then UID) claiming a host is admitted; newer ones in other namespaces, or in the
  same namespace with the same path, are rejected with ``Admitted=False``, reason
  ``HostAlreadyClaimed``. Routes of one namespace may share a host with different paths.
* Extended validation (``extended_validator.go``, on by default): a route whose TLS
  certificate, key or CA certificate does not parse, or whose key does not match its
  certificate, is rejected with reason ``ExtendedValidationFailed``.
* Routes in namespaces labelled ``router-standin.ibmcloud.registry/ignore=true`` (or
  listed in :attr:`RouterStandIn.ignored_namespaces`) are left alone, to test what
  happens when no router answers. The label works across processes (pytest-xdist
  workers each run a stand-in).

It polls every ``interval`` seconds (LIST of all routes) with the identity of the
kubeconfig it is given (the ``fixture`` user, so its requests never count as the
client's) and writes only when a route's host or status differs.

Usage: ``with RouterStandIn(kubeconfig, domain): ...`` or ``start()`` / ``stop()``;
CLI ``python tests/standins/router.py --kubeconfig K [--domain D]`` runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import time

from kubernetes import client, config

from serving import PollingController, merge_patch_custom_object
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "route.openshift.io", "v1", "routes"
ROUTER_NAME = "default"
DEFAULT_DOMAIN = "apps.standin.example.com"
IGNORE_LABEL = "router-standin.ibmcloud.registry/ignore"


def default_host(name: str, namespace: str, domain: str) -> str:
    """The router's default host name for a route."""
    return f"{name}-{namespace}.{domain}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(route: dict) -> tuple:
    meta = route["metadata"]
    return (meta.get("creationTimestamp") or "", meta.get("uid") or "")


def certificate_problem(route: dict) -> str | None:
    """Why the route's certificates fail the router's extended validation, or None."""
    # Imported here: only routes with certificates need it.
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel

    tls = (route.get("spec") or {}).get("tls") or {}
    certificate = None
    for field in ("certificate", "caCertificate", "destinationCACertificate"):
        if tls.get(field):
            try:
                loaded = x509.load_pem_x509_certificates(tls[field].encode())
            except ValueError as exc:
                return "spec.tls.%s: Invalid value: \"redacted %s data\": failed to parse certificate: %s" % (
                    field, field, exc)
            if field == "certificate":
                certificate = loaded[0]
    if tls.get("key"):
        try:
            key = serialization.load_pem_private_key(tls["key"].encode(), password=None)
        except (ValueError, TypeError) as exc:
            return "spec.tls.key: Invalid value: \"redacted key data\": failed to parse key: %s" % exc
        if certificate is not None and key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
                certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo):
            return "spec.tls.key: Invalid value: \"redacted key data\": private key does not match public key"
    return None


def desired_ingress(route: dict, claimed_by: dict | None, domain: str, invalid: str | None = None) -> dict:
    """The status.ingress entry this router reports for a route (without timestamps)."""
    meta, spec = route["metadata"], route.get("spec") or {}
    host = spec.get("host") or ""
    entry = {"host": host, "routerName": ROUTER_NAME, "routerCanonicalHostname": f"router-default.{domain}",
             "wildcardPolicy": spec.get("wildcardPolicy") or "None"}
    if invalid:
        entry["conditions"] = [{"type": "Admitted", "status": "False", "reason": "ExtendedValidationFailed",
                                "message": invalid}]
    elif claimed_by is None:
        entry["conditions"] = [{"type": "Admitted", "status": "True"}]
    else:
        other = claimed_by["metadata"]
        entry["conditions"] = [{
            "type": "Admitted", "status": "False", "reason": "HostAlreadyClaimed",
            "message": f"route {other['name']} already exposes {host} and is older "
                       f"(namespace {other['namespace']}); route {meta['name']} is not admitted"}]
    return entry


def _same(current: dict, wanted: dict) -> bool:
    def strip(entry):
        entry = dict(entry)
        entry["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                               for c in entry.get("conditions") or []]
        return entry
    return strip(current) == strip(wanted)


def decide(routes: list, ignored: set, domain: str) -> list:
    """The writes one pass makes, as (metadata, merge patch, is status) - pure, for the tests.

    Routes are taken oldest first (creation time, then UID, as the router breaks ties): the
    first route of a host owns it; a later one of another namespace, or of the same
    namespace and path, is rejected with HostAlreadyClaimed. Routes without a host get the
    default one first and are admitted on the next pass.
    """
    writes = []
    owners: dict = {}
    for route in sorted(routes, key=_key):
        meta = route["metadata"]
        if meta["namespace"] in ignored or meta.get("deletionTimestamp"):
            continue
        spec = route.get("spec") or {}
        if not spec.get("host"):
            writes.append((meta, {"spec": {"host": default_host(meta["name"], meta["namespace"], domain)}}, False))
            continue
        host = spec["host"].lower()
        invalid = certificate_problem(route) if any(
            (spec.get("tls") or {}).get(f) for f in ("certificate", "key", "caCertificate",
                                                     "destinationCACertificate")) else None
        claimed_by = None
        if not invalid:
            for owner in owners.get(host, []):
                same_namespace = owner["metadata"]["namespace"] == meta["namespace"]
                if not same_namespace or (owner.get("spec") or {}).get("path", "") == spec.get("path", ""):
                    claimed_by = owner
                    break
            if claimed_by is None:
                owners.setdefault(host, []).append(route)
        wanted = desired_ingress(route, claimed_by, domain, invalid)
        current = [e for e in (route.get("status") or {}).get("ingress") or [] if e.get("routerName") == ROUTER_NAME]
        if len(current) == 1 and _same(current[0], wanted):
            continue
        others = [e for e in (route.get("status") or {}).get("ingress") or [] if e.get("routerName") != ROUTER_NAME]
        writes.append((meta, {"status": {"ingress": others + [wanted]}}, True))
    return writes


class RouterStandIn(PollingController):
    """Admits Routes in a background thread. LOCAL STAND-IN, not OpenShift's router."""

    LABEL = "router-standin"
    TITLE = "router stand-in"

    def __init__(self, kubeconfig: str, domain: str = DEFAULT_DOMAIN, interval: float = 0.2):
        super().__init__(interval)
        self.domain = domain
        self.ignored_namespaces: set = set()
        api_client = config.new_client_from_config(config_file=kubeconfig)
        self._api = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    # --- one pass ------------------------------------------------------------------

    def sync(self) -> int:
        """Assign hosts and admit or reject routes once. Returns the number of writes."""
        try:
            routes = self._api.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        except ApiException as exc:
            if exc.status == 404:  # the CRD is not installed (yet)
                return 0
            raise
        ignored = set(self.ignored_namespaces)
        ignored.update(ns.metadata.name for ns in self._core.list_namespace(
            label_selector=IGNORE_LABEL + "=true").items)
        writes = 0
        for meta, body, status in decide(routes, ignored, self.domain):
            if status:
                for entry in body["status"]["ingress"]:
                    if entry.get("routerName") == ROUTER_NAME:
                        for condition in entry["conditions"]:
                            condition["lastTransitionTime"] = _now()
            writes += self._patch(meta, body, status=status)
        return writes

    def _patch(self, meta: dict, body: dict, status: bool = False) -> int:
        return merge_patch_custom_object(self._api, GROUP, VERSION, PLURAL, meta, body, status)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="LOCAL STAND-IN for the OpenShift router (tests only).")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--domain", default=DEFAULT_DOMAIN)
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args(argv)
    router = RouterStandIn(args.kubeconfig, args.domain, args.interval).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        router.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
