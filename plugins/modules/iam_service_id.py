#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: iam_service_id
short_description: Ensure an IBM Cloud IAM service ID by name
version_added: 0.1.0
description:
  - Ensures that an IBM Cloud IAM service ID with a given name exists (with a given
    description) in an account, or that it does not.
  - IAM does not keep service ID names unique, so the service ID is looked up by name
    (all pages of the listing). Two service IDs with the same name fail the task with
    a message that lists their IDs; set O(id) to choose one.
  - O(state=absent) deletes the service ID, and with it (IAM does this) its API keys
    and access policies. The deleted keys are listed by name and ID in the result.
  - "This is step 2 of \"Creating an image pull secret with different IAM API key
    credentials\" in the IBM Cloud guide \"Setting up an image registry\"
    (C(ibmcloud iam service-id-create))."
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  name:
    description:
      - Name of the service ID, for example C(<cluster_name>-<namespace>-id).
      - With O(id), the service ID with that ID is renamed to this name if needed.
    type: str
    required: true
  id:
    description:
      - Unique ID of the service ID (C(ServiceId-...)), to choose one of several with the
        same name, or to rename one. It must exist; IAM chooses the ID of a new service ID.
    type: str
  description:
    description:
      - Description of the service ID. Not managed when omitted.
    type: str
  state:
    description:
      - V(present) creates or updates the service ID; V(absent) deletes it with its API keys.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - ibmcloud.registry.ibmcloud_auth
attributes:
  check_mode:
    support: full
    description: Reads IAM only; reports the change a real run would make.
  diff_mode:
    support: full
    description: Shows the name and description before and after.
seealso:
  - module: ibmcloud.registry.iam_registry_policy
  - module: ibmcloud.registry.iam_pull_secret
"""

EXAMPLES = r"""
- name: Service ID for a cluster namespace ("different IAM API key credentials", step 2)
  ibmcloud.registry.iam_service_id:
    name: mycluster-payments-id
    description: Service ID for IBM Cloud Container Registry in Kubernetes cluster mycluster namespace payments
  register: sid

- name: The service ID that "ibmcloud ks cluster pull-secret apply" uses
  ibmcloud.registry.iam_service_id:
    name: cluster-c0a1b2c3d4e5f6g7h8i9
    description: ID for mycluster
    iam_endpoint: private

- name: Two service IDs share a name; keep managing the one with this ID
  ibmcloud.registry.iam_service_id:
    id: ServiceId-1f0c3a5c-2e0d-4c6f-9b2d-2f1c5a9e8d7b
    name: mycluster-payments-id

- name: Delete the service ID and its API keys
  ibmcloud.registry.iam_service_id:
    name: mycluster-payments-id
    state: absent
"""

RETURN = r"""
results:
  description:
    - The one item, as the many-namespace modules report them - C(name), C(id), and C(action),
      what happened (or, in check mode, would happen) - created, updated, unchanged, deleted or absent.
  returned: always
  type: list
  elements: dict
  sample: [{namespace: null, name: mycluster-payments-id, id: ServiceId-1f0c..., action: created}]
counts:
  description:
    - The one item of RV(results) counted by its action - 1 for that action, 0 for each
      other word of the vocabulary (V(failed) too, as an IAM error fails the task).
  returned: always
  type: dict
  sample: {created: 1, updated: 0, unchanged: 0, deleted: 0, absent: 0, failed: 0}
service_id:
  description: The service ID; C(id), C(iam_id) and C(crn) are null when check mode would create it.
  returned: when it exists or would be created
  type: dict
  sample:
    id: ServiceId-1f0c3a5c-2e0d-4c6f-9b2d-2f1c5a9e8d7b
    iam_id: iam-ServiceId-1f0c3a5c-2e0d-4c6f-9b2d-2f1c5a9e8d7b
    name: mycluster-payments-id
    description: Service ID for IBM Cloud Container Registry in Kubernetes cluster mycluster namespace payments
    crn: crn:v1:bluemix:public:iam-identity::a/0123456789abcdef0123456789abcdef::serviceid:ServiceId-1f0c3a5c-2e0d-4c6f-9b2d-2f1c5a9e8d7b
    account_id: 0123456789abcdef0123456789abcdef
account_id:
  description: The account the service ID lives in.
  returned: always
  type: str
  sample: 0123456789abcdef0123456789abcdef
api_keys:
  description: API keys deleted with the service ID (names and IDs, never values).
  returned: when state is absent
  type: list
  elements: dict
  sample: [{id: ApiKey-2b9d..., name: mycluster-payments-key, created_at: "2026-01-02T03:04+0000", managed: true, action: deleted}]
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.client import iam_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.runners import run_iam_service_id


def argument_spec():
    return iam_argument_spec().add(
        name=dict(type="str", required=True),
        id=dict(type="str"),
        description=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def main():
    run_module(argument_spec, run_iam_service_id)


if __name__ == "__main__":
    main()
