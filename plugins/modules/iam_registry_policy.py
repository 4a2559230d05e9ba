#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: iam_registry_policy
short_description: Ensure a service ID's IBM Cloud Container Registry access policies
version_added: 0.1.0
description:
  - Ensures that an IAM service ID has IBM Cloud Container Registry access with the
    given service roles, optionally scoped to IAM regions and to registry namespaces,
    using the IAM Policy Management v2 API.
  - One policy per region and registry namespace pair holds all of O(roles). An
    existing policy with the same scope and the same roles is no change; one with the
    same scope and other roles is replaced in place (with C(If-Match)); otherwise a
    policy is created.
  - With O(exclusive), every other Container Registry policy of the service ID is
    deleted, which is what C(ibmcloud ks cluster pull-secret apply) does to customised
    policies.
  - "This is step 3 of \"Creating an image pull secret with different IAM API key
    credentials\" in the IBM Cloud guide \"Setting up an image registry\"
    (C(ibmcloud iam service-policy-create --service-name container-registry))."
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  service_id:
    description:
      - Name or ID (C(ServiceId-...)) of the service ID. A name that two service IDs
        share fails the task with their IDs.
      - In check mode a service ID that does not exist yet (created by an earlier task in
        the same check run) is not an error; the result shows what would be created.
    type: str
    required: true
  roles:
    description:
      - Container Registry service roles - V(Reader) (pull), V(Writer) (push and pull),
        V(Manager). Case does not matter.
    type: list
    elements: str
    default: [Reader]
  regions:
    description:
      - IAM regions the access is limited to, for example V(us-south) or V(global) (the
        C(icr.io) registry); one policy per region. Empty means every region.
    type: list
    elements: str
    default: []
  resource_namespaces:
    description:
      - Registry namespaces the access is limited to (C(resourceType=namespace)); one
        policy per namespace (and region). Empty means every registry namespace.
    type: list
    elements: str
    default: []
    aliases: [registry_namespaces]
  exclusive:
    description:
      - Delete every other Container Registry policy of the service ID, including ones
        with conditions or other attributes that this module would not write.
    type: bool
    default: false
  description:
    description:
      - Description of the policies this module creates or replaces. Existing policies
        are not rewritten for a different description.
    type: str
  state:
    description:
      - V(present) makes the policies exist. V(absent) deletes the Container Registry
        policies of the service ID with the scopes of O(regions) and
        O(resource_namespaces) (any roles), or every Container Registry policy of it when
        neither is given.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - ibmcloud.registry.ibmcloud_auth
attributes:
  check_mode:
    support: full
    description: Reads IAM only; reports the policies a real run would create, replace or delete.
  diff_mode:
    support: full
    description: Shows roles, region and registry namespace of each policy before and after.
notes:
  - Policies are edited with the API version that created them. Policies created with
    the v1 API (older CLI versions) may need O(exclusive) (delete and create) instead of
    an in-place replacement.
seealso:
  - module: ibmcloud.registry.iam_service_id
  - module: ibmcloud.registry.iam_pull_secret
"""

EXAMPLES = r"""
- name: Reader on Container Registry, us-south only, registry namespace payments (guide step 3)
  ibmcloud.registry.iam_registry_policy:
    service_id: mycluster-payments-id
    roles: [Reader]
    regions: [us-south]
    resource_namespaces: [payments]

- name: Reader on every region, and nothing else (what "cluster pull-secret apply" sets)
  ibmcloud.registry.iam_registry_policy:
    service_id: cluster-c0a1b2c3d4e5f6g7h8i9
    roles: [Reader]
    exclusive: true

- name: Push and pull for a CI service ID in two regions
  ibmcloud.registry.iam_registry_policy:
    service_id: ci-pipeline-id
    roles: [Reader, Writer]
    regions: [us-south, eu-de]

- name: Remove every Container Registry policy of the service ID
  ibmcloud.registry.iam_registry_policy:
    service_id: ci-pipeline-id
    state: absent
"""

RETURN = r"""
policies:
  description: One entry per policy created, replaced, kept or deleted.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Policy ID; null for a policy that check mode would create.
      type: str
    action:
      description: created, updated (replaced with If-Match), unchanged, deleted, or absent (already gone).
      type: str
    roles:
      description: Role names of the policy.
      type: list
      elements: str
    region:
      description: IAM region of the policy, C(all) for every region; null for a custom policy.
      type: str
    namespace:
      description: Registry namespace of the policy, C(all) for every namespace; null for a custom policy.
      type: str
    custom:
      description: True for a policy with attributes or conditions this module does not write.
      type: bool
      returned: for such policies
  sample: [{id: 0b1c..., action: created, roles: [Reader], region: us-south, namespace: payments}]
counts:
  description:
    - Number of RV(policies) per action. V(failed) stays 0 - an IAM error fails the task
      at once, and then RV(policies) and these counts hold what was done before it.
  returned: unless O(state=absent) finds no service ID
  type: dict
  sample: {created: 1, updated: 0, unchanged: 0, deleted: 0, absent: 0, failed: 0}
service_id:
  description: The service ID (id, iam_id, name, description, crn, account_id).
  returned: when it exists
  type: dict
account_id:
  description: The account.
  returned: always
  type: str
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.client import iam_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.runners import run_iam_registry_policy


def argument_spec():
    return iam_argument_spec().add(
        service_id=dict(type="str", required=True),
        roles=dict(type="list", elements="str", default=["Reader"]),
        regions=dict(type="list", elements="str", default=[]),
        resource_namespaces=dict(type="list", elements="str", default=[], aliases=["registry_namespaces"]),
        exclusive=dict(type="bool", default=False),
        description=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def main():
    run_module(argument_spec, run_iam_registry_policy)


if __name__ == "__main__":
    main()
