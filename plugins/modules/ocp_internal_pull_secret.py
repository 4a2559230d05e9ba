#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ocp_internal_pull_secret
short_description: Pull secrets for the OpenShift internal registry in many projects
version_added: 0.1.0
description:
  - Copies the internal registry's credentials into other projects as a pull secret for
    its external route - step 8 of "Setting up a secure external route for the internal
    registry" in IBM Cloud's guide "Setting up an image registry", for any number of
    projects in one call.
  - Prefer M(ibmcloud.registry.ocp_image_puller) to let other projects pull from the
    internal registry - a C(system:image-puller) RoleBinding, nothing to copy, nothing
    that expires. Use this module only where a real copy of the credentials is needed
    (for example, pulls from outside the cluster through the route).
  - From OpenShift 4.16 the C(<sa>-dockercfg-*) secret holds a bound token that expires
    after about an hour (annotation
    C(openshift.io/internal-registry-auth-token.binding=bound)); copies of it stop
    working, so such a source is refused unless O(allow_expiring_token=true). A legacy
    token (before 4.16, or C(binding=legacy)) does not expire; copying it is done with a
    warning, because every target project then pulls with the source account's rights.
  - Reads the credentials from a service account's C(<sa>-dockercfg-*) secret (by
    default C(default) in project C(default)) - both the shape before OpenShift 4.16
    (C(username)/C(password) per registry) and the 4.16+ shape (only C(auth)) - and
    builds a C(kubernetes.io/dockerconfigjson) secret for the route host (port
    optional), without ever returning or logging the token.
  - Creates or updates that secret in every target project and adds it to their
    service accounts' C(imagePullSecrets) (by default C(default)), exactly as
    M(ibmcloud.registry.icr_pull_secret) does - one LIST reads all projects, only
    what differs is written, entries already on the service accounts stay.
  - The host comes from the registry's Route (see M(ibmcloud.registry.ocp_registry_route))
    unless O(registry_host) gives it.
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  name:
    description: Name of the pull secret in every target project.
    type: str
    default: internal-registry
  state:
    description:
      - V(present) creates or updates the secret and the references; V(absent) removes
        both (only secrets with the C(app.kubernetes.io/managed-by=ibmcloud.registry)
        label unless O(force) is set).
    type: str
    choices: [present, absent]
    default: present
  source_namespace:
    description: Project of the service account whose credentials are used.
    type: str
    default: default
  source_service_account:
    description:
      - Service account whose C(<sa>-dockercfg-*) secret holds the credentials. Pulls
        with them are allowed where this service account may pull (C(system:image-puller)).
    type: str
    default: default
  registry_host:
    description:
      - Host name of the registry for the secret. Not given - the host of the Route
        O(route_name) in O(route_namespace).
    type: str
  registry_port:
    description:
      - Port added to the host in the secret, for example V(5000) as in IBM Cloud's
        example. Not given - the host alone, which matches image names without a
        port (the route listens on 443).
    type: int
  route_name:
    description: The registry's Route. Defaults to C(image-registry) (OpenShift 4) or C(docker-registry) (3.11).
    type: str
  route_namespace:
    description: Project of the Route. Defaults to C(openshift-image-registry) (OpenShift 4) or C(default) (3.11).
    type: str
  service_accounts:
    description:
      - Service accounts in each target project that reference the secret in
        C(imagePullSecrets). An empty list leaves service accounts alone.
    type: list
    elements: str
    default: [default]
  allow_expiring_token:
    description:
      - Copy a bound (expiring) token anyway. The copies stop working when the token
        expires (about an hour) or when OpenShift recreates the source secret; rerun the
        task before then.
    type: bool
    default: false
requirements:
  - jmespath >= 1.0
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
  - ibmcloud.registry.targeting
  - ibmcloud.registry.pull_secret
attributes:
  diff_mode:
    description: Shows server and username per project; the token is redacted.
notes:
  - With O(allow_expiring_token=true), run the task again (for example on a schedule) to
    refresh the copies of a bound token; a run with unchanged credentials writes nothing.
seealso:
  - module: ibmcloud.registry.ocp_image_puller
    description: The preferred way to let projects pull from the internal registry, with nothing copied.
  - module: ibmcloud.registry.ocp_registry_route
    description: Creates the Route whose host the secret is for.
  - module: ibmcloud.registry.icr_pull_secret
    description: The same secret-and-links flow for IBM Cloud Container Registry credentials.
  - module: ibmcloud.registry.sa_pull_secret
    description: Links the copies to more service accounts, or to their C(secrets) for builds.
"""

EXAMPLES = r"""
# The guide "Setting up an image registry", section "Setting up a secure external route for the internal registry", step 8:
# an image pull secret for the route host in each project, added to its default
# service account.
- name: Internal registry pull secret in the team projects
  ibmcloud.registry.ocp_internal_pull_secret:
    namespaces: [team-a, team-b]

- name: The documented variant, host with port 5000 and a fictional email, in every labelled project
  ibmcloud.registry.ocp_internal_pull_secret:
    name: internal-registry
    registry_port: 5000
    email: a@b.c
    namespace_selector: ["pulls-internal=true"]

- name: Credentials of a dedicated service account, explicit host
  ibmcloud.registry.ocp_internal_pull_secret:
    source_namespace: images
    source_service_account: puller
    registry_host: registry.example.com
    all_namespaces: true
    exclude_namespaces: [sandbox-*]

- name: Remove them again
  ibmcloud.registry.ocp_internal_pull_secret:
    state: absent
    namespaces: [team-a, team-b]
"""

RETURN = r"""
name:
  description: Name of the secret.
  returned: always
  type: str
  sample: internal-registry
server:
  description: The registry server the secret holds credentials for.
  returned: when state is present
  type: str
  sample: image-registry-openshift-image-registry.mycluster-abc123.us-south.containers.appdomain.cloud
fingerprint:
  description:
    - C(scrypt:) and 64 hexadecimal digits, the salted and deliberately slow hash of the
      secret's content that RV(ibmcloud.registry.icr_pull_secret#module:fingerprint) describes.
      A new token in the source secret gives a new fingerprint, so it tells a refreshed copy
      from a stale one without showing either token.
  returned: when state is present
  type: str
source:
  description:
    - Where the credentials came from - C(namespace), C(service_account), C(secret),
      C(shape) (V(username-password) before OpenShift 4.16, V(auth-only) from 4.16),
      C(token) (V(bound) - expires, V(legacy) - does not, or V(unknown)) and C(route)
      (the Route the host came from, or null).
  returned: when state is present
  type: dict
  sample: {namespace: default, service_account: default, secret: default-dockercfg-mpcn4,
           shape: username-password, token: legacy, route: openshift-image-registry/image-registry}
results:
  description: One entry per target project, in the order of O(namespaces), else sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: Target project.
      type: str
    name:
      description: Name of the copy there, O(name).
      type: str
    action:
      description:
        - What happened to the copy in this project (in check mode, what would happen) -
          V(created), V(updated) (other credentials or host, for example a refreshed token),
          V(unchanged), V(deleted), V(absent) (nothing to delete) or V(failed).
      type: str
      sample: created
    error:
      description: Why the copy could not be written or deleted in this project.
      type: str
      returned: when action is failed
counts:
  description:
    - Number of target projects per action of their copy, with every action of the
      vocabulary as a key. The service account links are reported in RV(service_accounts)
      and not counted here.
  returned: always
  type: dict
  sample: {created: 2, updated: 0, unchanged: 0, deleted: 0, absent: 0, failed: 0}
service_accounts:
  description: Per project and service account, the references added or removed.
  returned: when O(service_accounts) is not empty
  type: list
  elements: dict
  sample: [{namespace: team-a, name: default, action: updated, added: [internal-registry], removed: []}]
flavour:
  description:
    - What API discovery found - V(openshift4), V(openshift3) or V(kubernetes).
    - It sets the defaults of O(route_name) and O(route_namespace) - C(image-registry) in
      C(openshift-image-registry) on OpenShift 4, C(docker-registry) in C(default) on 3.11.
      Plain Kubernetes has no internal registry; there the task fails before any write.
  returned: always
  type: str
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift.runners import run_ocp_internal_pull_secret
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.runners import pull_secret_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import target_argument_spec


def argument_spec():
    return kube_argument_spec().merge(target_argument_spec()).merge(pull_secret_argument_spec()).add(
        mutually_exclusive=[("registry_host", "route_name"), ("registry_host", "route_namespace")],
        name=dict(type="str", default="internal-registry"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        source_namespace=dict(type="str", default="default"),
        source_service_account=dict(type="str", default="default"),
        registry_host=dict(type="str"),
        registry_port=dict(type="int"),
        route_name=dict(type="str"),
        route_namespace=dict(type="str"),
        service_accounts=dict(type="list", elements="str", default=["default"]),
        allow_expiring_token=dict(type="bool", default=False),
    )


def main():
    run_module(argument_spec, run_ocp_internal_pull_secret)


if __name__ == "__main__":
    main()
