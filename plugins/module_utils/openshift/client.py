# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OpenShift part's one client: what the cluster is, and reads and writes of its objects.

- Flavour detection from API discovery (OpenShift 4, OpenShift 3.11, or plain
  Kubernetes), where the internal registry lives on each, and a clear error when a
  task needs an API group the cluster lacks.
- :class:`OpenShiftAPI`: reads and conditional merge patches of OpenShift objects
  through the ``openshift`` package's dynamic client, every request through
  :meth:`KubeClient.call` (bounded retries, messages naming the object), and the
  bounded wait for a router to admit a Route.

What to write is decided by the pure functions of ``plan``; this module only talks
to the API server.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

try:
    from kubernetes.client import RbacAuthorizationV1Api
except ImportError:  # pragma: no cover - get_kube_client reports the missing library
    RbacAuthorizationV1Api = None

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    KubeError,
    describe_target,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift.plan import (
    ROUTE_API,
    OpenShiftError,
    apply_merge_patch,
    dig,
    route_admission,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import (
    CONFLICT_RETRIES,
    MERGE_PATCH,
)

OPENSHIFT_4 = "openshift4"
OPENSHIFT_3 = "openshift3"
KUBERNETES = "kubernetes"
FLAVOUR_NAMES = {
    OPENSHIFT_4: "OpenShift 4",
    OPENSHIFT_3: "OpenShift 3.11",
    KUBERNETES: "plain Kubernetes",
}
# Groups only OpenShift 4 serves (its operators' configuration APIs).
OPENSHIFT_4_GROUPS = ("config.openshift.io", "imageregistry.operator.openshift.io",
                      "operator.openshift.io")
# Groups both OpenShift 3.11 and 4 serve; any of them means "this is OpenShift".
OPENSHIFT_GROUPS = ("route.openshift.io", "image.openshift.io", "build.openshift.io",
                    "apps.openshift.io", "project.openshift.io", "security.openshift.io")

# Where the internal registry lives, per flavour (facts: v4 and 3.11 layouts).
REGISTRY_LOCATIONS = {
    OPENSHIFT_4: {"namespace": "openshift-image-registry", "service": "image-registry",
                  "target_port": "5000-tcp", "pvc": "image-registry-storage"},
    OPENSHIFT_3: {"namespace": "default", "service": "docker-registry",
                  "target_port": "5000-tcp", "pvc": "registry-backing"},
}


# --- what the cluster is -------------------------------------------------------------

def flavour_from_groups(groups):
    """OPENSHIFT_4, OPENSHIFT_3 or KUBERNETES from the served API group names."""
    groups = set(groups or ())
    if groups.intersection(OPENSHIFT_4_GROUPS):
        return OPENSHIFT_4
    if groups.intersection(OPENSHIFT_GROUPS):
        return OPENSHIFT_3
    return KUBERNETES


def group_of(api_version):
    return api_version.split("/")[0] if "/" in api_version else ""


def missing_api_message(task, groups, needed):
    """Why ``task`` cannot run on a cluster serving ``groups``, or None when it can."""
    groups = set(groups or ())
    missing = [group for group in needed if group not in groups]
    if not missing:
        return None
    flavour = flavour_from_groups(groups)
    if flavour == KUBERNETES:
        what = ("the cluster is plain Kubernetes, not OpenShift: API discovery lists none "
                "of the *.openshift.io groups. Point the task at an OpenShift cluster "
                "(kubeconfig/context) or leave it out for this cluster")
    elif flavour == OPENSHIFT_3 and "imageregistry.operator.openshift.io" in missing:
        what = ("the cluster is OpenShift 3.11, which has no image registry operator; "
                "its registry is the docker-registry deployment in the default project")
    else:
        what = "the cluster (%s) does not serve %s" % (
            FLAVOUR_NAMES[flavour], "it" if len(missing) == 1 else "them")
    return "%s needs the OpenShift API group%s %s, but %s." % (
        task, "" if len(missing) == 1 else "s", ", ".join(missing), what)


def registry_location(flavour, namespace=None, service=None):
    """The internal registry's namespace, service, target port and PVC name."""
    location = dict(REGISTRY_LOCATIONS.get(flavour) or REGISTRY_LOCATIONS[OPENSHIFT_4])
    if namespace:
        location["namespace"] = namespace
    if service:
        location["service"] = service
    return location


def pvc_claim_name(config, flavour):
    """The PVC backing the registry: the Config's pvc.claim, else the flavour's default."""
    claim = dig(config or {}, "spec", "storage", "pvc", "claim")
    return claim or registry_location(flavour)["pvc"]


# --- the OpenShift API ---------------------------------------------------------------

class OpenShiftAPI:
    """Reads and conditional writes of OpenShift objects as plain dicts.

    Resources come from the ``openshift`` package's DynamicClient (discovery is lazy
    and cached), built on the KubeClient's ApiClient so connection options are the
    same. Every request goes through :meth:`KubeClient.call`.
    """

    def __init__(self, client):
        self.client = client
        self._resources = {}
        self._rbac = None

    def rbac(self):
        """The typed RBAC client: rbac.authorization.k8s.io needs no discovery request."""
        if self._rbac is None:
            self._rbac = RbacAuthorizationV1Api(self.client.api_client)
        return self._rbac

    def resource(self, api_version, kind):
        key = (api_version, kind)
        if key not in self._resources:
            try:
                self._resources[key] = self.client.resource(api_version, kind)
            except KubeError as exc:
                if exc.status != 404:
                    raise
                raise OpenShiftError("The cluster does not serve %s %s (API group %s)"
                                     % (api_version, kind, group_of(api_version)))
        return self._resources[key]

    def get(self, api_version, kind, name, namespace=None):
        """The object as a dict, or None when it does not exist."""
        resource = self.resource(api_version, kind)
        try:
            obj = self.client.call(describe_target("get", kind, namespace, name), resource.get,
                                   name=name, namespace=namespace)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return obj.to_dict()

    def list(self, api_version, kind, namespace=None):
        resource = self.resource(api_version, kind)
        listing = self.client.call(describe_target("list", kind, namespace), resource.get,
                                   namespace=namespace)
        return listing.to_dict().get("items") or []

    def create(self, api_version, kind, body, namespace=None):
        resource = self.resource(api_version, kind)
        name = body["metadata"]["name"]
        return self.client.call(describe_target("create", kind, namespace, name), resource.create,
                                body=body, namespace=namespace).to_dict()

    def merge_patch(self, api_version, kind, name, patch, namespace=None):
        resource = self.resource(api_version, kind)
        return self.client.call(describe_target("patch", kind, namespace, name), resource.patch,
                                body=patch, name=name, namespace=namespace,
                                content_type=MERGE_PATCH).to_dict()

    def core_get(self, kind, name, namespace):
        """A core object (Service, PersistentVolumeClaim, Secret, ServiceAccount) as a dict."""
        method = {
            "Service": self.client.core.read_namespaced_service,
            "PersistentVolumeClaim": self.client.core.read_namespaced_persistent_volume_claim,
            "Secret": self.client.core.read_namespaced_secret,
            "ServiceAccount": self.client.core.read_namespaced_service_account,
        }[kind]
        try:
            obj = self.client.call(describe_target("get", kind, namespace, name), method, name,
                                   namespace)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return self.client.api_client.sanitize_for_serialization(obj)

    def ensure(self, api_version, kind, name, namespace, plan, check_mode=False, existing=None,
               read_first=True):
        """Read, plan, and unless check_mode write, retrying on 409 with a fresh read.

        ``plan(obj)`` takes the current object (dict or None) and returns
        ``(action, body)``: ``("create", full object)``, ``("update", merge patch)``
        or ``("unchanged", None)``; it may raise OpenShiftError. Updates carry the
        object's ``metadata.resourceVersion``. Returns ``(action, before, after)``
        where ``after`` is what the server returned (or, in check mode, the
        predicted object).
        """
        obj = self.get(api_version, kind, name, namespace) if read_first else existing
        for _attempt in range(CONFLICT_RETRIES):
            action, body = plan(obj)
            if action == "unchanged":
                return action, obj, obj
            if check_mode:
                predicted = body if action == "create" else apply_merge_patch(obj, body)
                return action, obj, predicted
            try:
                if action == "create":
                    return "create", None, self.create(api_version, kind, body, namespace)
                patch = apply_merge_patch(body, {"metadata": {
                    "resourceVersion": obj["metadata"]["resourceVersion"]}})
                return "update", obj, self.merge_patch(api_version, kind, name, patch, namespace)
            except KubeError as exc:
                if exc.status != 409:
                    raise
            obj = self.get(api_version, kind, name, namespace)
        raise OpenShiftError("%s %s kept changing under us; gave up after %d conflicts"
                             % (kind, "%s/%s" % (namespace, name) if namespace else name,
                                CONFLICT_RETRIES))


def wait_for_admission(api, name, namespace, timeout, first=None, poll=0.5, sleep=time.sleep,
                       clock=time.monotonic):
    """Poll the Route until a router admits its host; bounded by ``timeout`` seconds.

    ``first`` is an already read copy of the route (saves a GET when it is admitted).
    Returns (host, router, route). Raises OpenShiftError when a router rejects the route or
    time runs out; the message says which and what to check.
    """
    deadline = clock() + timeout
    route = first
    while True:
        if route is None:
            route = api.get(ROUTE_API, "Route", name, namespace)
            if route is None:
                raise OpenShiftError("Route %s/%s disappeared while waiting for a router to "
                                     "admit it" % (namespace, name))
        state, host, detail = route_admission(route)
        if state == "admitted":
            return host, detail.get("router"), route
        if state == "rejected":
            raise OpenShiftError(
                "Router %s rejected Route %s/%s for host %s: %s: %s" % (
                    detail.get("router"), namespace, name, detail.get("host") or host or "(none)",
                    detail.get("reason") or "no reason given", detail.get("message") or ""))
        if clock() >= deadline:
            raise OpenShiftError(
                "Route %s/%s was not admitted by a router within %ss (spec.host %s). Check that "
                "the cluster's router (ingress controller) runs and that the host is not "
                "claimed by another route; raise wait_timeout if routers are slow"
                % (namespace, name, timeout, host or "not assigned yet"))
        sleep(max(0.0, min(poll, deadline - clock())))
        route = None


# --- RoleBindings (rbac.authorization.k8s.io, typed: no discovery request) ----------------

def list_role_bindings(api, namespace):
    """{name: RoleBinding dict} of one namespace (one LIST)."""
    items = api.client.list_json(describe_target("list", "RoleBinding", namespace),
                                 api.rbac().list_namespaced_role_binding, namespace=namespace)
    return dict((item["metadata"]["name"], item) for item in items)


def read_role_binding(api, namespace, name):
    try:
        return api.client.call_json(describe_target("get", "RoleBinding", namespace, name),
                                    api.rbac().read_namespaced_role_binding, name, namespace)
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def write_role_binding(api, step):
    """Do a plan_image_puller() step's write. KubeError 409 means: read again and replan."""
    rbac, namespace, name = api.rbac(), step["namespace"], step["name"]
    write = step["write"]
    if write in ("delete", "recreate"):
        try:
            api.client.call(describe_target("delete", "RoleBinding", namespace, name),
                            rbac.delete_namespaced_role_binding, name, namespace)
        except KubeError as exc:
            if exc.status != 404:  # already gone is what a delete wants
                raise
    if write in ("create", "recreate"):
        api.client.call(describe_target("create", "RoleBinding", namespace, name),
                        rbac.create_namespaced_role_binding, namespace, step["body"])
    elif write == "replace":
        api.client.call(describe_target("update", "RoleBinding", namespace, name),
                        rbac.replace_namespaced_role_binding, name, namespace, step["body"])
