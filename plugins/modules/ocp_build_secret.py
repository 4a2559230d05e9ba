#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ocp_build_secret
short_description: Registry secrets for OpenShift builds - builder service account and BuildConfigs
version_added: 0.1.0
description:
  - Lets OpenShift builds push to and pull from a registry such as IBM Cloud
    Container Registry, as the "Setting up builds" steps of IBM Cloud's "Setting up an image
    registry" documentation do with C(oc).
  - Links the secrets to the C(builder) service account for both pull and mount
    (C(oc secrets link builder SECRET --for=pull,mount)) - builds from OpenShift
    4.15 read C(imagePullSecrets), older ones C(secrets). Entries already there
    stay, in order, and each name appears once.
  - Sets the push secret (C(spec.output.pushSecret), C(oc set build-secret --push))
    and the pull secret (the strategy's C(pullSecret), C(oc set build-secret --pull))
    of the named BuildConfigs, with JSON merge patches guarded by their
    C(resourceVersion).
  - On a cluster without C(build.openshift.io) (plain Kubernetes) the task fails with
    a message that says so, before any write.
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  namespace:
    description: Project of the build configurations and the service account.
    type: str
    required: true
  push_secret:
    description:
      - Secret with write access to the registry builds push to, for example one made
        by M(ibmcloud.registry.icr_pull_secret) with a Writer API key.
      - Set as the push secret of O(build_configs) and linked to O(service_account).
    type: str
  pull_secret:
    description:
      - Secret for pulling the build's base image. Set as the strategy's pull secret of
        O(build_configs) and linked to O(service_account). May be the same as
        O(push_secret).
    type: str
  build_configs:
    description:
      - Names of the BuildConfigs to set the secrets on. A missing one fails the task
        (the others are still done).
    type: list
    elements: str
    default: []
  service_account:
    description: The service account builds run as.
    type: str
    default: builder
  link_service_account:
    description: Link the secrets to O(service_account).
    type: bool
    default: true
  link_for:
    description:
      - Which lists of O(service_account) get the secrets - V(pull) (C(imagePullSecrets),
        read by builds on OpenShift 4.15 and later) and V(mount) (C(secrets), read up to 4.14).
    type: list
    elements: str
    choices: [mount, pull]
    default: [pull, mount]
  state:
    description:
      - V(present) sets and links the secrets. V(absent) unlinks them and clears the
        BuildConfig fields that name them (fields naming other secrets stay).
    type: str
    choices: [present, absent]
    default: present
  missing_secret:
    description:
      - What to do when a secret does not exist in the project - V(warn), V(fail)
        before anything is written, or V(ignore).
    type: str
    choices: [warn, fail, ignore]
    default: warn
  service_account_timeout:
    description: Seconds to wait for the service account if it does not exist yet.
    type: int
    default: 30
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
attributes:
  diff_mode:
    description: Shows secret names on the BuildConfigs and the service account lists.
seealso:
  - module: ibmcloud.registry.icr_pull_secret
  - module: ibmcloud.registry.sa_pull_secret
"""

EXAMPLES = r"""
# The guide "Setting up an image registry", section "Setting up builds in the internal registry to push images to IBM Cloud
# Container Registry", steps 3 to 5.
- name: A secret with Writer access to us.icr.io in the default project
  ibmcloud.registry.icr_pull_secret:
    name: icr-writer
    iam_api_key: "{{ writer_service_id_api_key }}"
    regions: [us-south]
    namespaces: [default]
    service_accounts: []

- name: Link it to builder and use it to push and pull in two build configs
  ibmcloud.registry.ocp_build_secret:
    namespace: default
    push_secret: icr-writer
    pull_secret: icr-writer
    build_configs: [frontend, backend]

- name: Different secrets for push and pull, builder link for OpenShift 4.15+ only
  ibmcloud.registry.ocp_build_secret:
    namespace: team-a
    push_secret: icr-writer
    pull_secret: all-icr-io
    build_configs: [app]
    link_for: [pull]

- name: Undo
  ibmcloud.registry.ocp_build_secret:
    namespace: default
    push_secret: icr-writer
    pull_secret: icr-writer
    build_configs: [frontend, backend]
    state: absent
"""

RETURN = r"""
results:
  description: One entry per BuildConfig in O(build_configs).
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: The project.
      type: str
    name:
      description: The BuildConfig.
      type: str
    action:
      description: V(updated), V(unchanged) or V(failed) (in check mode, what would happen).
      type: str
    push_secret:
      description: The push secret the BuildConfig uses afterwards.
      type: str
    pull_secret:
      description: The strategy pull secret the BuildConfig uses afterwards.
      type: str
    error:
      description: Why this BuildConfig failed.
      type: str
      returned: when action is failed
counts:
  description: Number of BuildConfigs per action.
  returned: always
  type: dict
service_accounts:
  description: The service account link, with the secret names added or removed.
  returned: when O(link_service_account) is true
  type: list
  elements: dict
  sample: [{namespace: default, name: builder, action: updated, added: [icr-writer], removed: []}]
missing_secrets:
  description: Secrets that do not exist in the project.
  returned: always
  type: list
  elements: str
namespace:
  description: The project.
  returned: always
  type: str
flavour:
  description:
    - What API discovery found - V(openshift4), V(openshift3) or V(kubernetes).
    - Also in the failure result when the cluster serves no BuildConfigs
      (C(build.openshift.io)), which is checked before any secret or BuildConfig is read.
  returned: always
  type: str
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.openshift.runners import run_ocp_build_secret
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.service_accounts import LINK_FIELDS


def argument_spec():
    return kube_argument_spec().add(
        namespace=dict(type="str", required=True),
        push_secret=dict(type="str", no_log=False),
        pull_secret=dict(type="str", no_log=False),
        build_configs=dict(type="list", elements="str", default=[]),
        service_account=dict(type="str", default="builder"),
        service_account_timeout=dict(type="int", default=30),
        link_service_account=dict(type="bool", default=True),
        link_for=dict(type="list", elements="str", choices=sorted(LINK_FIELDS), default=["pull", "mount"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        missing_secret=dict(type="str", choices=["warn", "fail", "ignore"], default="warn"),
    )


def main():
    run_module(argument_spec, run_ocp_build_secret)


if __name__ == "__main__":
    main()
