#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: iam_pull_secret
short_description: Mint a service ID API key straight into image pull secrets, reuse or rotate it
version_added: 0.1.0
description:
  - Writes an IBM Cloud Container Registry image pull secret (username C(iamapikey), one
    entry per C(icr.io) domain chosen by O(regions) and O(endpoints)) into every target
    namespace, holding an API key of an IAM service ID, in one step. The key value
    never passes through Ansible variables, results, facts or logs.
  - Reuse - when the target secrets already hold a key that IAM still knows (looked up
    by value) and that belongs to the service ID, no key is created, and only secrets
    that differ are written. A rerun is no change, with no write to IAM or the cluster.
  - Otherwise a new key is created (named O(api_key_name), with a description marked
    C([managed-by ibmcloud.registry])) and written to the secrets. If no secret could
    be written, the new key is deleted again.
  - Rotation (O(rotate=true)) - a new key is created and logged in with (exchanged for an
    IAM token, as the registry's token service does on a pull), every target secret is
    updated, and only then are the keys that this collection created earlier under
    O(api_key_name) for the service ID deleted, at once or after
    O(rotation_grace_period). Keys that it did not create are never deleted. A new key
    that cannot log in is deleted again and no secret changes. If a secret could not be
    updated, no older key is deleted, and the task fails naming the namespaces whose
    secrets still hold the old key (RV(namespaces_holding_old_key)).
  - An existing secret of that name that this collection did not create (no label
    C(app.kubernetes.io/managed-by=ibmcloud.registry)), for example the C(all-icr-io)
    that IBM Cloud made in C(default), is left as it is unless O(replace_existing=true).
  - Optionally adds the secret to service accounts (C(imagePullSecrets)), keeping the
    entries already there.
  - "Reproduces steps 4 to 8 of \"Creating an image pull secret with different IAM API key
    credentials\" in the IBM Cloud guide \"Setting up an image registry\" and, with the
    service ID and policy modules or the ibmcloud.registry.iam_pull_secret role,
    C(ibmcloud ks cluster pull-secret apply)."
author:
  - ibmcloud.registry maintainers (@ibmcloud-registry)
options:
  service_id:
    description:
      - Name or ID (C(ServiceId-...)) of the service ID whose API key the secrets hold.
        It must exist (see M(ibmcloud.registry.iam_service_id)), except in check mode.
    type: str
    required: true
  api_key_name:
    description:
      - Name of the API keys this task creates, and by which (with the marker in their
        description) rotation recognises the keys it may delete.
      - Defaults to C(<service ID name>-key).
      - Use one name per set of secrets that should share a key; two tasks with the same
        service ID and key name rotate each other's keys away.
    type: str
  api_key_description:
    description:
      - Description of the API keys this task creates; C([managed-by ibmcloud.registry])
        is appended.
      - Defaults to C(API key for service ID <name>, stored in image pull secret <secret>).
    type: str
  rotate:
    description:
      - Create a new key even if the secrets hold a valid one, log in with it, update every
        secret, then delete the older keys this collection created under O(api_key_name).
        Always a change; use it on a schedule or with a condition.
    type: bool
    default: false
  rotation_grace_period:
    description:
      - Seconds the older keys stay valid after a rotation, for pods and nodes that still
        pull with a copy of the old secret. V(0) deletes them as soon as every secret holds
        the new key.
      - A rotation with a grace period writes the time into the older keys' description
        (C([retired by rotation; delete after <UTC time>])); any later run of this task
        deletes them once that time has passed, whatever its own O(rotate).
    type: int
    default: 0
  replace_existing:
    description:
      - Replace an existing secret of that name that this collection did not create, for
        example the C(all-icr-io) in C(default) that IBM Cloud made. By default such a
        secret is left as it is (reported V(unchanged) with C(kept=true), and a warning).
      - Secrets this collection created are always updated.
    type: bool
    default: false
  name:
    description:
      - Name of the secret in every target namespace.
    type: str
    default: all-icr-io
  state:
    description:
      - V(present) ensures the secrets (and the key they hold).
      - V(absent) deletes the secrets (only those labelled
        C(app.kubernetes.io/managed-by=ibmcloud.registry) unless O(force)), removes them
        from O(service_accounts), and, when every secret is gone, deletes the keys this
        collection created under O(api_key_name).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ibmcloud.registry.kube
  - ibmcloud.registry.targeting
  - ibmcloud.registry.ibmcloud_auth
  - ibmcloud.registry.pull_secret
  - ibmcloud.registry.icr_secret
attributes:
  check_mode:
    description:
      - Reads the cluster and IAM only (the key lookup by value is a read); creates no
        key and writes no secret, and reports the same changes a real run would make.
  diff_mode:
    description:
      - Shows key names and IDs, and per namespace the registry servers and usernames;
        key values are redacted.
notes:
  - The key is looked up in IAM by value (C(GET /v1/apikeys/details)) with the value in a
    request header, never in a URL.
  - The API key that calls IAM needs to create API keys for the service ID (for example
    the Operator role on IAM Identity Service for it) and to read keys by value.
seealso:
  - module: ibmcloud.registry.iam_service_id
    description: Creates the service ID whose API key the secrets hold (step 2 of the guide).
  - module: ibmcloud.registry.iam_registry_policy
    description: Gives that service ID its Container Registry access (step 3).
  - module: ibmcloud.registry.icr_pull_secret
    description: The same secrets from an API key, entitlement key or registry credentials you already have.
  - module: ibmcloud.registry.sa_pull_secret
    description: References the secret from more service accounts, or from their C(secrets) for builds.
"""

EXAMPLES = r"""
# "Creating an image pull secret with different IAM API key credentials":
# service ID (step 2), policy (step 3), then key and secret in one step (steps 4-8).
- name: Service ID for cluster mycluster, namespace payments
  ibmcloud.registry.iam_service_id:
    name: mycluster-payments-id
    description: Service ID for IBM Cloud Container Registry in Kubernetes cluster mycluster namespace payments

- name: Reader on Container Registry in us-south
  ibmcloud.registry.iam_registry_policy:
    service_id: mycluster-payments-id
    roles: [Reader]
    regions: [us-south]

- name: API key straight into the pull secret in payments, used by its default service account
  ibmcloud.registry.iam_pull_secret:
    service_id: mycluster-payments-id
    api_key_name: mycluster-payments-key
    api_key_description: API key for service ID mycluster-payments-id in Kubernetes cluster mycluster namespace payments
    name: payments-icr-io
    regions: [us-south]
    namespaces: [payments]
    service_accounts: [default]

# "Updating existing clusters to use the API key image pull secret"
# (ibmcloud ks cluster pull-secret apply): the role does all of it in one include.
- name: all-icr-io in default with the cluster's service ID key, replacing the one IBM Cloud made
  ibmcloud.registry.iam_pull_secret:
    service_id: cluster-c0a1b2c3d4e5f6g7h8i9
    name: all-icr-io
    namespaces: [default]
    service_accounts: [default]
    replace_existing: true

- name: Rotate the key of every namespace that holds it, first thing each month
  ibmcloud.registry.iam_pull_secret:
    service_id: cluster-c0a1b2c3d4e5f6g7h8i9
    all_namespaces: true
    rotate: "{{ ansible_date_time.day == '01' }}"
    rotation_grace_period: 3600   # old keys deleted by the first run an hour later

- name: Remove the secrets and the keys this collection made for them
  ibmcloud.registry.iam_pull_secret:
    service_id: mycluster-payments-id
    api_key_name: mycluster-payments-key
    name: payments-icr-io
    namespaces: [payments]
    service_accounts: [default]
    state: absent
"""

RETURN = r"""
name:
  description: Name of the secret.
  returned: always
  type: str
  sample: all-icr-io
service_id:
  description: The service ID (id, iam_id, name, description, crn, account_id); null when check mode runs before it exists.
  returned: always
  type: dict
account_id:
  description: The account.
  returned: always
  type: str
api_key:
  description:
    - The key the secrets hold - C(id), C(name), C(created_at), C(managed) (created by this
      collection), C(action) (V(unchanged) when reused, V(created), or V(deleted) when no
      secret could take it), C(rotated) (true when this run rotated) and C(fingerprint)
      (an C(scrypt:) fingerprint of the value, computed as for the secrets). Never the value.
  returned: when state is present
  type: dict
  sample: {id: ApiKey-2b9d..., name: mycluster-payments-key, created_at: "2026-01-02T03:04+0000", managed: true,
           action: unchanged, rotated: false, fingerprint: "scrypt:5c1e07..."}
deleted_api_keys:
  description: Keys deleted by a rotation, after a grace period or by O(state=absent) (id, name, created_at, managed).
  returned: always
  type: list
  elements: dict
retired_api_keys:
  description: Older keys kept for O(rotation_grace_period), each with C(delete_after) (UTC).
  returned: when state is present
  type: list
  elements: dict
namespaces_holding_old_key:
  description:
    - Namespaces whose secret still holds an older key of this collection because it could
      not be updated (or was left as it is); their key is not deleted.
  returned: when state is present
  type: list
  elements: str
servers:
  description: Registry servers the secret holds credentials for.
  returned: when state is present
  type: list
  elements: str
  sample: [icr.io, private.icr.io, us.icr.io]
fingerprint:
  description:
    - C(scrypt:) and 64 hexadecimal digits of the secret's content, the salted and
      deliberately slow hash that RV(ibmcloud.registry.icr_pull_secret#module:fingerprint)
      describes; unlike the key's own C(fingerprint) in RV(api_key), it also covers the
      servers, username and email.
  returned: when state is present and not a check-mode prediction of a new key
  type: str
results:
  description: One entry per target namespace, in the order of O(namespaces), else sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: Target namespace.
      type: str
    name:
      description: Name of the secret, O(name).
      type: str
    action:
      description:
        - What happened to the secret in this namespace (in check mode, what would happen) -
          V(created) or V(updated) (it holds the key of RV(api_key) now), V(unchanged),
          V(deleted), V(absent) (nothing to delete) or V(failed).
      type: str
      sample: created
    kept:
      description:
        - True for a secret of that name that this collection did not create, left as it is
          (action V(unchanged)) because O(replace_existing) is not set.
      type: bool
      returned: for such secrets
    error:
      description: Why the secret could not be written or deleted; its namespace keeps what it held.
      type: str
      returned: when action is failed
counts:
  description:
    - Number of target namespaces per action of their secret, with every action of the
      vocabulary as a key. The API keys are not counted here - see RV(api_key),
      RV(retired_api_keys) and RV(deleted_api_keys).
  returned: always
  type: dict
  sample: {created: 1, updated: 0, unchanged: 0, deleted: 0, absent: 0, failed: 0}
service_accounts:
  description: Per namespace and service account, the references added or removed.
  returned: when O(service_accounts) is set
  type: list
  elements: dict
"""

from ansible_collections.ibmcloud.registry.plugins.module_utils.common.argspec import run_module
from ansible_collections.ibmcloud.registry.plugins.module_utils.pull_secrets.runners import (
    icr_secret_argument_spec,
    pull_secret_argument_spec,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.client import iam_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.iam.pull_secret_runner import (
    DEFAULT_SECRET_NAME,
    run_iam_pull_secret,
)
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.client import kube_argument_spec
from ansible_collections.ibmcloud.registry.plugins.module_utils.kube.targeting import target_argument_spec


def argument_spec():
    return kube_argument_spec().merge(target_argument_spec()).merge(iam_argument_spec()).merge(
        pull_secret_argument_spec()).merge(icr_secret_argument_spec()).add(
        service_id=dict(type="str", required=True),
        api_key_name=dict(type="str"),
        api_key_description=dict(type="str", no_log=False),
        rotate=dict(type="bool", default=False),
        rotation_grace_period=dict(type="int", default=0),
        replace_existing=dict(type="bool", default=False),
        name=dict(type="str", default=DEFAULT_SECRET_NAME),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def main():
    run_module(argument_spec, run_iam_pull_secret)


if __name__ == "__main__":
    main()
