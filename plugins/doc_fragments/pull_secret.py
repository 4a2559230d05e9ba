# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of the modules that write one image pull secret into many namespaces and
    # link it to service accounts (icr_pull_secret, iam_pull_secret, ocp_internal_pull_secret);
    # argument spec: pull_secret_argument_spec().
    DOCUMENTATION = r"""
options:
  email:
    description:
      - Email stored with each registry entry. Registries ignore it; some tools expect it.
    type: str
  service_account_timeout:
    description:
      - Seconds to wait for a service account that does not exist yet (a namespace
        created moments ago gets C(default) shortly after). After that the namespace
        fails with a clear message.
    type: int
    default: 30
  force:
    description:
      - With O(state=present), overwrite an existing secret whose content cannot be
        parsed. With O(state=absent), delete secrets that this collection did not create.
    type: bool
    default: false
notes:
  - Results carry a C(fingerprint) of the secret's content instead of its values (see
    RV(fingerprint)); equal content gives an equal fingerprint in every cluster and run.
  - A secret larger than the 1 MiB a Secret may hold is refused before anything is
    written.
"""
