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
    C(sha256:) fingerprint of the content instead.
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
  regions:
    description:
      - IAM regions whose registry domains the secret covers with O(iam_api_key), for
        example V(us-south) (C(us.icr.io)) or V(global) (C(icr.io)); V(all) for every
        region, which is what C(all-icr-io) holds.
    type: list
    elements: str
    default: [all]
  endpoints:
    description:
      - Which domains of each region, with O(iam_api_key) - V(public) (C(us.icr.io)),
        V(private) (C(private.us.icr.io)), or both.
    type: list
    elements: str
    choices: [public, private]
    default: [public, private]
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
  email:
    description:
      - Email stored with each registry entry. Registries ignore it; some tools expect it.
    type: str
  service_accounts:
    description:
      - Service accounts in each target namespace that reference the secret in
        C(imagePullSecrets), for example V(default). Entries already on the service
        account stay where they are.
      - With O(state=absent), the reference is removed from them.
    type: list
    elements: str
    default: []
  service_account_timeout:
    description:
      - Seconds to wait for a service account that does not exist yet (a namespace
        created moments ago gets C(default) shortly after). After that the namespace
        fails with a clear message.
    type: int
    default: 30
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
  force:
    description:
      - With O(state=present), overwrite an existing secret whose content cannot be
        parsed. With O(state=absent), delete secrets that this collection did not create.
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
  - ibmcloud.registry.targeting
attributes:
  check_mode:
    support: full
    description: Reads only; reports the same changes a real run would make.
  diff_mode:
    support: full
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
  description: Name of the secret.
  returned: always
  type: str
  sample: all-icr-io
servers:
  description: Registry servers the secret holds credentials for.
  returned: when state is present
  type: list
  elements: str
  sample: [icr.io, private.icr.io, us.icr.io]
fingerprint:
  description: C(sha256:) of the canonical JSON content, to compare secrets across clusters without showing them.
  returned: when state is present
  type: str
  sample: sha256:1f0c3a5c2e0d4c6f9b2d2f1c5a9e8d7b6a5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e
results:
  description: One entry per target namespace.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: The namespace.
      type: str
    name:
      description: The secret name.
      type: str
    action:
      description: What happened (or, in check mode, would happen).
      type: str
      sample: created
    error:
      description: Why this namespace failed.
      type: str
      returned: when action is failed
counts:
  description: Number of namespaces per action.
  returned: always
  type: dict
  sample: {created: 3, updated: 0, unchanged: 97, deleted: 0, absent: 0, failed: 0}
service_accounts:
  description: Per namespace and service account, the references added or removed.
  returned: when O(service_accounts) is set
  type: list
  elements: dict
  sample: [{namespace: dev, name: default, action: updated, added: [all-icr-io], removed: []}]
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.dockerconfig import ICR_ENDPOINTS
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.runners import (
    DEFAULT_COPY_SOURCE,
    run_icr_pull_secret,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import target_argument_spec


def argument_spec():
    """The options documented above: shared groups (each with its doc fragment), then this module's own."""
    return kube_argument_spec().merge(target_argument_spec()).add(
        name=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        iam_api_key=dict(type="str", no_log=True),
        regions=dict(type="list", elements="str", default=["all"]),
        endpoints=dict(type="list", elements="str", choices=list(ICR_ENDPOINTS), default=list(ICR_ENDPOINTS)),
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
        email=dict(type="str"),
        service_accounts=dict(type="list", elements="str", default=[]),
        service_account_timeout=dict(type="int", default=30),
        validate_credentials=dict(type="bool", default=False),
        registry_ca_path=dict(type="path"),
        force=dict(type="bool", default=False),
    )


def main():
    run_icr_pull_secret(argument_spec().create_ansible_module(supports_check_mode=True))


if __name__ == "__main__":
    main()
