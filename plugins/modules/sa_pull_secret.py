#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sa_pull_secret
short_description: Reference secrets from service accounts in many namespaces
version_added: 0.1.0
description:
  - Adds secret names to, or removes them from, service accounts' C(imagePullSecrets)
    (O(link_for=pull)) and C(secrets) (O(link_for=mount)) lists in every target namespace - the
    equivalent of C(oc secrets link) and of C(kubectl patch serviceaccount) in the IBM Cloud guide
    "Setting up an image registry".
  - Set semantics - each name appears once; entries this task does not name (for
    example OpenShift's C(*-dockercfg-*)) stay where they are, in order.
  - Writes send the whole new list as a JSON merge patch guarded by the service
    account's C(resourceVersion), and are recomputed from a fresh read when another
    writer got there first (HTTP 409). Strategic merge (which replaces the list) and
    JSON-patch append (which duplicates it) are not used.
  - A service account that does not exist yet (a namespace created moments ago) is
    waited for, up to O(service_account_timeout) seconds.
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  secrets:
    description: Names of the secrets to reference.
    type: list
    elements: str
    required: true
    aliases: [secret]
  service_accounts:
    description: Service accounts to edit in each namespace, for example V(default) or V(builder).
    type: list
    elements: str
    default: [default]
    aliases: [service_account]
  link_for:
    description:
      - Which list to edit - V(pull) edits C(imagePullSecrets) (what pods and, from
        OpenShift 4.15, builds use), V(mount) edits C(secrets) (what builds up to
        OpenShift 4.14 read). Both may be given.
      - The same option as O(ibmcloud.registry.ocp_build_secret#module:link_for).
      - The alias C(for) is deprecated and will be removed in version 2.0.0.
    type: list
    aliases: [for]
    elements: str
    choices: [mount, pull]
    default: [pull]
  state:
    description: V(present) adds the references, V(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  missing_secret:
    description:
      - What to do when a referenced secret does not exist in a namespace (a pod would
        show it as C((not found))) - V(warn), V(fail) that namespace, or V(ignore).
    type: str
    choices: [warn, fail, ignore]
    default: warn
  service_account_timeout:
    description:
      - Seconds to wait for a service account that does not exist yet. After that the
        namespace fails with a clear message.
    type: int
    default: 30
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
  - ibmcloud.registry.targeting
attributes:
  diff_mode:
    description: Shows the reference lists before and after, per service account.
seealso:
  - module: ibmcloud.registry.icr_pull_secret
"""

EXAMPLES = r"""
- name: Store the pull secret in the default service account (Setting up an image registry, "Storing the image pull secret in the Kubernetes service account")
  ibmcloud.registry.sa_pull_secret:
    secrets: [all-icr-io]
    all_namespaces: true

- name: Entitled registry secret for the default service account of two namespaces
  ibmcloud.registry.sa_pull_secret:
    secrets: [entitled-cp-icr-io]
    namespaces: [cp4i, cp4d]
    missing_secret: fail

- name: Link a push secret to the OpenShift builder account for pull and mount (oc secrets link builder icr-writer)
  ibmcloud.registry.sa_pull_secret:
    service_accounts: [builder]
    secrets: [icr-writer]
    link_for: [pull, mount]
    namespaces: [ci]

- name: Remove a reference, leaving the rest of the list alone
  ibmcloud.registry.sa_pull_secret:
    secrets: [old-registry]
    state: absent
    namespace_selector: ["team=payments"]
"""

RETURN = r"""
results:
  description:
    - One entry per service account and namespace, service account by service account.
  returned: always
  type: list
  elements: dict
  sample: [{namespace: team-a, name: default, action: updated, added: [all-icr-io], removed: []}]
  contains:
    name:
      description: The service account.
      type: str
    namespace:
      description: Its namespace.
      type: str
    action:
      description:
        - What happened to the service account (in check mode, what would happen) -
          V(updated), V(unchanged) or V(failed), words of the collection's result vocabulary.
      type: str
    added:
      description: Secret names added to O(link_for)'s lists.
      type: list
      elements: str
    removed:
      description: Secret names removed from them.
      type: list
      elements: str
    error:
      description: Why this service account could not be edited (the others are done all the same).
      type: str
      returned: when action is failed
counts:
  description: Number of service accounts per action.
  returned: always
  type: dict
missing_secrets:
  description: Per namespace, the referenced secrets that do not exist there.
  returned: always
  type: dict
  sample: {dev: [entitled-cp-icr-io]}
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.runners import run_sa_pull_secret
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.service_accounts import LINK_FIELDS
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import target_argument_spec


def argument_spec():
    return kube_argument_spec().merge(target_argument_spec()).add(
        service_accounts=dict(type="list", elements="str", default=["default"], aliases=["service_account"]),
        service_account_timeout=dict(type="int", default=30),
        secrets=dict(type="list", elements="str", required=True, aliases=["secret"], no_log=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        missing_secret=dict(type="str", choices=["warn", "fail", "ignore"], default="warn"),
        # "for" was this option's first name; ocp_build_secret calls it link_for too.
        link_for=dict(type="list", elements="str", choices=sorted(LINK_FIELDS), default=["pull"], aliases=["for"],
                      deprecated_aliases=[dict(name="for", version="2.0.0", collection_name="ibmcloud.registry")]),
    )


def main():
    run_module(argument_spec, run_sa_pull_secret)


if __name__ == "__main__":
    main()
