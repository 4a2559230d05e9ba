# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How the IAM modules of ibmcloud.registry authenticate to IBM Cloud.
    DOCUMENTATION = r"""
options:
  ibmcloud_api_key:
    description:
      - IBM Cloud API key that calls IAM (a user's or a service ID's key with the IAM
        roles the task needs, for example Administrator on IAM Identity Service and on
        Container Registry).
      - If not set, the value of the E(IC_API_KEY) environment variable, then of
        E(IBMCLOUD_API_KEY), is used.
      - Never shown in output, diffs or error messages.
    type: str
  account_id:
    description:
      - IBM Cloud account ID (32 hexadecimal characters) that holds the service IDs and
        policies.
      - Defaults to the account of O(ibmcloud_api_key), read from its IAM token.
    type: str
  iam_url:
    description:
      - Base URL of IAM, used for both the token exchange (C(<iam_url>/identity/token))
        and the IAM Identity and Policy Management APIs.
      - Overrides O(iam_endpoint). Defaults to C(https://iam.cloud.ibm.com).
    type: str
  iam_endpoint:
    description:
      - V(public) uses C(https://iam.cloud.ibm.com); V(private) uses the private
        endpoint C(https://private.iam.cloud.ibm.com), reachable from IBM Cloud
        private networks only.
    type: str
    choices: [public, private]
    default: public
  iam_retries:
    description:
      - How many times one IAM request is retried after HTTP 429, a 5xx status or a
        dropped connection, with exponential backoff that honours C(Retry-After).
      - Other errors fail with a message naming the IAM call, the HTTP status and
        IAM's transaction ID.
    type: int
    default: 5
requirements:
  - ibm-platform-services >= 0.77.1, < 1 (with ibm-cloud-sdk-core)
  - PyJWT >= 2.11, < 3
notes:
  - Check mode makes read requests to IAM only (and the token exchange); it never
    creates, changes or deletes anything in IAM.
"""
