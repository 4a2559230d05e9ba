#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ocp_image_puller
short_description: Let other OpenShift projects pull images from the internal registry
version_added: 0.1.0
description:
  - The OpenShift way to let deployments in project B pull images that live in project
    A of the internal registry - what C(oc policy add-role-to-group system:image-puller
    system:serviceaccounts:B -n A) does - for any number of projects in one call. It
    completes step 8 of "Setting up a secure external route for the internal registry"
    in IBM Cloud's guide "Setting up an image registry" without copying credentials.
  - Creates, in every project of O(image_namespaces), one RoleBinding per consumer project
    (the projects O(namespaces), O(namespace_selector) or O(all_namespaces) select),
    named C(ibmcloud-registry-image-puller-<consumer>), that grants ClusterRole
    C(system:image-puller) to all service accounts of the consumer project (group
    C(system:serviceaccounts:<consumer>)) or, with O(service_accounts), to the named ones.
  - The consumer projects' own C(<sa>-dockercfg-*) secrets, which OpenShift keeps valid,
    then authenticate their pulls. Nothing expires, unlike copies of those secrets
    (M(ibmcloud.registry.ocp_internal_pull_secret)), whose tokens are bound and expire
    after about an hour from OpenShift 4.16.
  - A project never gets a binding for itself (OpenShift's C(system:image-pullers)
    binding lets a project pull its own images).
  - One LIST per images project reads the bindings; only what differs is written.
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  image_namespaces:
    description: Projects that hold the images (their image streams in the internal registry).
    type: list
    elements: str
    required: true
  service_accounts:
    description:
      - Service accounts of each consumer project that may pull. Empty - every service
        account of the project (group C(system:serviceaccounts:<consumer>)).
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) creates or updates the bindings; V(absent) deletes them (only bindings
        with the C(app.kubernetes.io/managed-by=ibmcloud.registry) label unless O(force)).
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Replace or delete a binding of the same name that this collection did not create.
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
  - ibmcloud.registry.targeting
attributes:
  diff_mode:
    description: Shows the role and subjects of every binding that changes (no secret is involved).
notes:
  - The identity running the task needs C(create), C(update) and C(delete) on
    C(rolebindings) in the images projects and C(bind) on ClusterRole
    C(system:image-puller) (docs/rbac/ocp-image-puller.yaml).
seealso:
  - module: ibmcloud.registry.ocp_internal_pull_secret
  - module: ibmcloud.registry.ocp_registry_route
"""

EXAMPLES = r"""
- name: Deployments in team-a and team-b pull the images of project shared-images
  ibmcloud.registry.ocp_image_puller:
    image_namespaces: [shared-images]
    namespaces: [team-a, team-b]

- name: Only the default service account of every labelled project
  ibmcloud.registry.ocp_image_puller:
    image_namespaces: [shared-images, base-images]
    namespace_selector: ["pulls-internal=true"]
    service_accounts: [default]

- name: Take the grants back
  ibmcloud.registry.ocp_image_puller:
    image_namespaces: [shared-images]
    namespaces: [team-a, team-b]
    state: absent
"""

RETURN = r"""
role:
  description: The ClusterRole granted.
  returned: always
  type: str
  sample: system:image-puller
results:
  description: One entry per images project and consumer project.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: The images project that holds the RoleBinding.
      type: str
    name:
      description: The RoleBinding's name.
      type: str
      sample: ibmcloud-registry-image-puller-team-a
    consumer:
      description: The project whose service accounts may pull.
      type: str
    subjects:
      description: Who the binding grants the role to (empty when deleted).
      type: list
      elements: str
      sample: [Group system:serviceaccounts:team-a]
    action:
      description: V(created), V(updated), V(unchanged), V(deleted), V(absent) or V(failed) (in check mode, what would happen).
      type: str
    error:
      description: Why this binding failed.
      type: str
      returned: when action is failed
counts:
  description:
    - Number of RoleBindings per action - one binding per images project and consumer
      project, none where they are the same project. A binding of that name that this
      collection did not create counts as V(failed) unless O(force) is set.
  returned: always
  type: dict
  sample: {created: 2, updated: 0, unchanged: 0, deleted: 0, absent: 0, failed: 0}
flavour:
  description:
    - V(openshift4) or V(openshift3), as API discovery found; both serve the image API
      (C(image.openshift.io)) whose C(system:image-puller) role the bindings grant.
    - V(kubernetes) only comes with a failure - a cluster without that API fails the task
      before any write.
  returned: always
  type: str
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import target_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift.runners import run_ocp_image_puller


def argument_spec():
    return kube_argument_spec().merge(target_argument_spec()).add(
        image_namespaces=dict(type="list", elements="str", required=True),
        service_accounts=dict(type="list", elements="str", default=[]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        force=dict(type="bool", default=False),
    )


def main():
    run_module(argument_spec, run_ocp_image_puller)


if __name__ == "__main__":
    main()
