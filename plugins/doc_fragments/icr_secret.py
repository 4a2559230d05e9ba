# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # What an IBM Cloud Container Registry pull secret covers and which service accounts
    # reference it, in the modules that write one (icr_pull_secret, iam_pull_secret);
    # argument spec: icr_secret_argument_spec().
    DOCUMENTATION = r"""
options:
  regions:
    description:
      - IAM regions whose IBM Cloud Container Registry domains the secret covers with an
        IAM API key, for example V(us-south) (C(us.icr.io)) or V(global) (C(icr.io));
        V(all) for every region, which is what C(all-icr-io) holds.
    type: list
    elements: str
    default: [all]
  endpoints:
    description:
      - Which domains of each region, with an IAM API key - V(public) (C(us.icr.io)),
        V(private) (C(private.us.icr.io)), or both.
    type: list
    elements: str
    choices: [public, private]
    default: [public, private]
  service_accounts:
    description:
      - Service accounts in each target namespace that reference the secret in
        C(imagePullSecrets), for example V(default). Entries already on the service
        account stay where they are.
      - With O(state=absent), the reference is removed from them.
    type: list
    elements: str
    default: []
"""
