#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ocp_registry_config
short_description: Storage, management state and default route of the OpenShift internal registry
version_added: 0.1.0
description:
  - Manages the image registry operator's configuration,
    C(configs.imageregistry.operator.openshift.io/cluster) - the storage backend
    (switch to the worker node's C(emptyDir), or to a PVC), C(spec.managementState),
    and C(spec.defaultRoute) - with JSON merge patches guarded by the object's
    C(resourceVersion). Only the options given are compared and changed.
  - Reports the registry's storage volume - the size and storage class of its PVC
    (C(image-registry-storage) in C(openshift-image-registry) on OpenShift 4,
    C(registry-backing) in C(default) on OpenShift 3.11), like C(oc describe pvc).
  - Switching to C(emptyDir) is done only when asked, with
    O(allow_non_persistent_storage=true), and always warns - images in C(emptyDir)
    are lost when the registry pod or its worker node restarts.
  - OpenShift 3.11 has no image registry operator - there the module only reports the
    volume, and fails clearly if asked to change anything. On plain Kubernetes it
    fails with a message that says the cluster is not OpenShift.
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  storage:
    description:
      - Storage backend of the registry. V(emptyDir) - the worker node's empty
        directory (fast, B(not persistent)). V(pvc) - a persistent volume claim.
        Other backends configured (for example C(ibmcos) or C(s3)) are removed from
        the configuration.
      - Not given - the storage is left as it is.
    type: str
    choices: [emptyDir, pvc]
  allow_non_persistent_storage:
    description:
      - Must be V(true) with O(storage=emptyDir), to confirm that losing every image
        on a pod or node restart is acceptable.
    type: bool
    default: false
  pvc_claim:
    description:
      - With O(storage=pvc), the name of the claim. Not given - any claim is fine, and
        when switching the operator creates C(image-registry-storage).
    type: str
  management_state:
    description:
      - C(spec.managementState). V(Managed) lets the operator apply the configuration
        (needed for a storage change to take effect, for example on Satellite clusters
        that are V(Unmanaged)). V(Unmanaged) - the operator leaves the registry alone.
        V(Removed) - the operator deletes the registry and, when its storage is
        V(Managed) (for example the C(image-registry-storage) PVC the operator created),
        that storage with every image in it; the module warns before it asks for it.
      - C(Force) is not offered - the operator does not act on it.
    type: str
    choices: [Managed, Unmanaged, Removed]
  default_route:
    description:
      - C(spec.defaultRoute) - whether the operator exposes the registry with its own
        reencrypt route C(default-route). An alternative to
        M(ibmcloud.registry.ocp_registry_route).
    type: bool
requirements:
  - jmespath >= 1.0
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
attributes:
  diff_mode:
    description: Shows management state, storage backend and default route before and after.
notes:
  - O(parallelism) has no effect; the module writes one object.
  - Resizing the volume is done in the IBM Cloud infrastructure account; the PVC
    does not show the new size afterwards (see IBM Cloud's "Setting up an image registry" documentation).
seealso:
  - module: ibmcloud.registry.ocp_registry_route
"""

EXAMPLES = r"""
# The guide "Setting up an image registry", section "Classic: Storing images in the internal registry" - viewing volume details.
- name: Size and storage class of the registry's volume (OpenShift 4 or 3.11)
  ibmcloud.registry.ocp_registry_config:
  register: registry

- name: Show them
  ansible.builtin.debug:
    msg: "{{ registry.volume.size }} of {{ registry.volume.storage_class }} ({{ registry.volume.phase }})"

# The guide "Setting up an image registry", section "Storing images in the worker node empty directory", steps 2 and 3.
- name: Store registry images in the worker node's emptyDir (NOT persistent)
  ibmcloud.registry.ocp_registry_config:
    storage: emptyDir
    allow_non_persistent_storage: true
    management_state: Managed

- name: Back to persistent storage on a PVC the operator creates
  ibmcloud.registry.ocp_registry_config:
    storage: pvc

- name: Let the operator expose the registry itself (default-route)
  ibmcloud.registry.ocp_registry_config:
    default_route: true
  register: registry

- name: Its host, once the operator created the route and a router admitted it
  ansible.builtin.debug:
    var: registry.default_route_host
"""

RETURN = r"""
config:
  description: The operator configuration after the task (in check mode, as it would be).
  returned: on OpenShift 4
  type: dict
  contains:
    management_state:
      description: C(spec.managementState).
      type: str
      sample: Managed
    storage:
      description: The configured storage backend.
      type: str
      sample: emptyDir
    default_route:
      description: C(spec.defaultRoute).
      type: bool
    pvc_claim:
      description: The claim name, when the backend is C(pvc) (null when the operator picks it).
      type: str
      returned: when the backend is pvc
storage:
  description: Storage backend type and whether it is persistent.
  returned: on OpenShift 4
  type: dict
  sample: {type: emptyDir, persistent: false}
volume:
  description: The registry's PVC, or null when there is none.
  returned: always
  type: dict
  contains:
    name:
      description: PVC name.
      type: str
      sample: image-registry-storage
    namespace:
      description: PVC namespace.
      type: str
    phase:
      description: C(Bound), C(Pending) or C(Lost).
      type: str
    storage_class:
      description: Storage class.
      type: str
      sample: ibmc-file-gold
    size:
      description: Capacity of the bound volume, or the requested size while it is not bound.
      type: str
      sample: 100Gi
    requested:
      description: Size requested in the PVC spec.
      type: str
    capacity:
      description: Capacity reported in the PVC status (null until bound).
      type: str
    access_modes:
      description: Access modes.
      type: list
      elements: str
    volume_name:
      description: Bound persistent volume.
      type: str
default_route_host:
  description: Host of the operator's C(default-route), when it is enabled and admitted.
  returned: always
  type: str
result:
  description:
    - What happened to the operator Config, in the vocabulary of every module's per-item
      results. Not a top-level C(action), which the json callbacks overwrite with the
      module name.
  returned: success
  type: dict
  contains:
    name:
      description: The Config's name, C(cluster) (null on OpenShift 3.11, which has none).
      type: str
    action:
      description: V(updated) or V(unchanged) (in check mode, what would happen).
      type: str
  sample: {name: cluster, action: updated}
flavour:
  description:
    - What API discovery found. V(openshift4) - the operator's Config is read and, when
      asked, changed. V(openshift3) - only RV(volume) is reported, as 3.11 has no image
      registry operator, and a change fails. V(kubernetes) - the task fails.
  returned: always
  type: str
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift import plan as ocp
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift.runners import run_ocp_registry_config


def argument_spec():
    return kube_argument_spec().add(
        storage=dict(type="str", choices=["emptyDir", "pvc"]),
        allow_non_persistent_storage=dict(type="bool", default=False),
        pvc_claim=dict(type="str"),
        management_state=dict(type="str", choices=list(ocp.MANAGEMENT_STATES)),
        default_route=dict(type="bool"),
    )


def main():
    run_module(argument_spec, run_ocp_registry_config)


if __name__ == "__main__":
    main()
