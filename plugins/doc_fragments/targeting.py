# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The one way modules of ibmcloud.registry choose the namespaces they act on.
    DOCUMENTATION = r"""
options:
  namespaces:
    description:
      - Namespaces to act on, by name. Names are used as given, system namespaces
        included.
      - Mutually exclusive with O(namespace_selector) and O(all_namespaces).
    type: list
    elements: str
    aliases: [namespace]
  namespace_selector:
    description:
      - Label selectors for the namespaces to act on, for example C(team=payments) or
        C(env in (dev,test)). Several entries must all match.
      - Mutually exclusive with O(namespaces) and O(all_namespaces).
    type: list
    elements: str
  all_namespaces:
    description:
      - Act on every namespace of the cluster except those in O(exclude_namespaces)
        and, unless O(include_system_namespaces) is set, system namespaces.
      - Mutually exclusive with O(namespaces) and O(namespace_selector).
    type: bool
    default: false
  exclude_namespaces:
    description:
      - Namespaces, or shell-style patterns such as C(sandbox-*), that
        O(all_namespaces) and O(namespace_selector) skip.
    type: list
    elements: str
    default: []
  include_system_namespaces:
    description:
      - Also act on system namespaces (C(kube-*), C(openshift), C(openshift-*), C(ibm-*),
        C(calico-*), C(tigera-operator)) when they are selected by
        O(all_namespaces) or O(namespace_selector).
    type: bool
    default: false
  missing_namespaces:
    description:
      - What happens when a namespace named in O(namespaces) does not exist, with
        C(state=present) where the module has a C(state) option. The namespaces are
        found with the same LIST of namespaces that the task makes anyway, before
        anything is written.
      - V(fail) fails the task before the first write, with a message that names the
        namespaces that do not exist.
      - V(skip) leaves them out and gives one warning per namespace.
      - When the task may not list namespaces (namespaced Roles only), the names are used
        as given and a missing namespace fails on its own when it is written to.
    type: str
    choices: [fail, skip]
    default: fail
notes:
  - A selection that matches no namespace is an error, so that a typo in a selector
    does not pass silently.
"""
