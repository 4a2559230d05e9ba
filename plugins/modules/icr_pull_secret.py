#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: icr_pull_secret
short_description: Ensure an image pull secret in many namespaces
version_added: 0.1.0
description:
  - Ensures a C(kubernetes.io/dockerconfigjson) secret with the same content in every
    target namespace, in one call. One LIST reads all of them, and only the namespaces
    that differ are written, in bounded parallel.
  - "Credentials come from exactly one source: an IBM Cloud IAM API key (username
    C(iamapikey), one entry per IBM Cloud Container Registry domain), an entitlement
    key for the entitled registry C(cp.icr.io) (username C(cp)), any registry, or a
    copy of an existing secret such as C(all-icr-io) in C(default)."
  - Content is compared semantically (decoded JSON), so reruns and key-order
    differences are no change.
  - Optionally adds the secret to service accounts (C(imagePullSecrets)), keeping
    the entries already there, as M(ibmcloud.registry.sa_pull_secret) does.
  - Secret values never appear in results, diffs or messages; results carry a
    fingerprint of the content instead (RV(fingerprint)).
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  name:
    description:
      - Name of the secret in every target namespace.
      - Defaults to the source's name with O(copy_from), and to C(entitled-cp-icr-io)
        with O(entitlement_key); required otherwise.
    type: str
  state:
    description:
      - V(present) creates or updates the secret; V(absent) deletes it.
      - V(absent) deletes only secrets that carry the C(app.kubernetes.io/managed-by=ibmcloud.registry)
        label unless O(force) is set.
    type: str
    choices: [present, absent]
    default: present
  iam_api_key:
    description:
      - IBM Cloud IAM API key (of a service ID, preferably) for IBM Cloud Container
        Registry. The secret gets one entry per domain chosen by O(regions) and
        O(endpoints), with username C(iamapikey).
    type: str
  entitlement_key:
    description:
      - Entitlement key from the IBM container software library for the entitled
        registry C(cp.icr.io) (username C(cp)).
    type: str
  registry:
    description:
      - Credentials for any other registry.
    type: dict
    suboptions:
      server:
        description: Registry server, C(host[:port]) optionally with a path or C(https://).
        type: str
        required: true
      username:
        description: Username for the registry.
        type: str
        required: true
      password:
        description: Password or token for the registry.
        type: str
        required: true
  copy_from:
    description:
      - Copy an existing secret's registry credentials (data and type only; never its
        metadata) into the target namespaces.
      - With O(all_namespaces) or O(namespace_selector), the source namespace is
        skipped.
    type: dict
    suboptions:
      namespace:
        description: Namespace of the source secret.
        type: str
        default: default
      name:
        description: Name of the source secret.
        type: str
        default: all-icr-io
  validate_credentials:
    description:
      - Before writing anything, log in to the registry with the credentials (Docker
        Registry HTTP API v2, basic or bearer-token challenge). A rejected login fails
        the task and nothing is written.
      - With O(iam_api_key) one public domain is checked, since one key serves every
        domain. Not available with O(copy_from).
    type: bool
    default: false
  registry_ca_path:
    description:
      - CA bundle used to verify the registry's certificate for O(validate_credentials).
    type: path
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
  - ibmcloud.registry.targeting
  - ibmcloud.registry.pull_secret
  - ibmcloud.registry.icr_secret
attributes:
  diff_mode:
    description: Shows servers, usernames and emails per namespace; secret values are redacted.
seealso:
  - module: ibmcloud.registry.sa_pull_secret
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: Copy all-icr-io from default into every application namespace (Setting up an image registry, "Copying an existing image pull secret")
  ibmcloud.registry.icr_pull_secret:
    copy_from:
      namespace: default
      name: all-icr-io
    all_namespaces: true
    exclude_namespaces: [sandbox-*]
    service_accounts: [default]

- name: Pull secret with a service ID's API key for us.icr.io only (Setting up an image registry, "different IAM API key credentials")
  ibmcloud.registry.icr_pull_secret:
    name: payments-icr-io
    iam_api_key: "{{ payments_service_id_api_key }}"
    regions: [us-south]
    endpoints: [public]
    namespaces: [payments]
    validate_credentials: true
    service_accounts: [default]

- name: Entitled software from cp.icr.io (Setting up an image registry, "Setting up a cluster to pull entitled software")
  ibmcloud.registry.icr_pull_secret:
    entitlement_key: "{{ entitlement_key }}"
    namespaces: [cp4i, cp4d]
    service_accounts: [default]

- name: Any other private registry (Setting up an image registry, "Accessing images that are stored in other private registries")
  ibmcloud.registry.icr_pull_secret:
    name: corp-registry
    registry:
      server: registry.example.com:5000
      username: robot$deployer
      password: "{{ corp_registry_token }}"
    email: a@b.c
    namespace_selector: ["team=payments"]

- name: Remove the secret again, from the service accounts too
  ibmcloud.registry.icr_pull_secret:
    name: corp-registry
    state: absent
    namespace_selector: ["team=payments"]
    service_accounts: [default]
"""

RETURN = r"""
name:
  description: Name of the secret in every target namespace - O(name), or the default of the source.
  returned: always
  type: str
  sample: entitled-cp-icr-io
servers:
  description: The servers of the secret's C(auths), sorted; with O(iam_api_key), the icr.io domains chosen.
  returned: when state is present
  type: list
  elements: str
  sample: [cp.icr.io]
fingerprint:
  description:
    - C(scrypt:) and 64 hexadecimal digits, to compare secrets across clusters and runs
      without showing them. Two equal fingerprints mean the same servers, usernames,
      emails and passwords; key order and encoding do not count.
    - Safe to show in logs. It is a deliberately slow and memory-hard hash (scrypt,
      16 MiB), salted with the secret's servers, usernames and emails, so each password
      guess costs that work for one secret; it is no plain hash that a weak password
      could be looked up or guessed from quickly. Long random credentials (API keys,
      entitlement keys, registry tokens) cannot be guessed from it at all.
  returned: when state is present
  type: str
  sample: scrypt:6c1f0e35c5ad2a9c4e8d7b1f3a2c9e0d4b5a6f7e8d9c0b1a2f3e4d5c6b7a8f90
results:
  description:
    - One entry per target namespace, in the order of O(namespaces), else sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description:
        - What happened to the secret there (or, in check mode, would happen) -
          V(created), V(updated), V(unchanged), V(deleted), V(absent) (nothing to delete)
          or V(failed).
      type: str
      sample: created
    namespace:
      description: Target namespace.
      type: str
      sample: team-a
    name:
      description: Name of the secret, the same in every namespace.
      type: str
      sample: all-icr-io
    error:
      description: Why this namespace failed; the other namespaces are done all the same.
      type: str
      returned: when action is failed
counts:
  description: Number of target namespaces per action, every action of the vocabulary included.
  returned: always
  type: dict
  sample: {created: 3, updated: 0, unchanged: 97, deleted: 0, absent: 0, failed: 0}
service_accounts:
  description:
    - The links of O(service_accounts), as M(ibmcloud.registry.sa_pull_secret) reports them -
      per namespace where the secret is in place and service account, C(action)
      (V(updated), V(unchanged) or V(failed)), the references C(added) and C(removed),
      and C(error) when it failed.
  returned: when O(service_accounts) is set
  type: list
  elements: dict
  sample: [{namespace: dev, name: default, action: updated, added: [all-icr-io], removed: []}]
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.runners import (
    DEFAULT_COPY_SOURCE,
    icr_secret_argument_spec,
    pull_secret_argument_spec,
    run_icr_pull_secret,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import target_argument_spec


def argument_spec():
    return kube_argument_spec().merge(target_argument_spec()).merge(pull_secret_argument_spec()).merge(
        icr_secret_argument_spec()).add(
        name=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        iam_api_key=dict(type="str", no_log=True),
        entitlement_key=dict(type="str", no_log=True),
        registry=dict(type="dict", options=dict(
            server=dict(type="str", required=True),
            username=dict(type="str", required=True),
            password=dict(type="str", required=True, no_log=True),
        )),
        copy_from=dict(type="dict", options=dict(
            namespace=dict(type="str", default=DEFAULT_COPY_SOURCE["namespace"]),
            name=dict(type="str", default=DEFAULT_COPY_SOURCE["name"]),
        )),
        validate_credentials=dict(type="bool", default=False),
        registry_ca_path=dict(type="path"),
    )


def main():
    run_module(argument_spec, run_icr_pull_secret)


if __name__ == "__main__":
    main()
