# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ibmcloud.registry developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One module's argument spec, put together from shared option groups and its own options.

Each shared option group is one factory paired with one doc fragment and carries its own
constraints: ``kube.kube_argument_spec`` (fragments kubernetes.core.k8s_auth_options and
ibmcloud.registry.kube), ``targeting.target_argument_spec`` (ibmcloud.registry.targeting),
``iam.iam_argument_spec`` (ibmcloud.registry.ibmcloud_auth). A module's ``argument_spec()``,
beside its DOCUMENTATION, merges the groups it documents and adds its own options; its
``main()`` hands that function and its one runner to ``run_module``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule


class ArgumentSpec(object):
    """Options and their mutually_exclusive groups. An option may be defined only once."""

    def __init__(self, argument_spec=None, mutually_exclusive=None):
        self.argument_spec = {}
        self.mutually_exclusive = []
        self.add(mutually_exclusive=mutually_exclusive, **(argument_spec or {}))

    def add(self, mutually_exclusive=None, **options):
        twice = sorted(set(options) & set(self.argument_spec))
        if twice:
            raise ValueError("options defined twice: %s" % ", ".join(twice))
        self.argument_spec.update(options)
        self.mutually_exclusive.extend(mutually_exclusive or [])
        return self

    def merge(self, other):
        return self.add(mutually_exclusive=other.mutually_exclusive, **other.argument_spec)

    def create_ansible_module(self, **kwargs):
        return AnsibleModule(argument_spec=self.argument_spec,
                             mutually_exclusive=self.mutually_exclusive or None, **kwargs)


def run_module(argument_spec, runner):
    """What a module's main() does: an AnsibleModule from the module's own argument spec, then its runner.

    Every module of the collection supports check mode.
    """
    runner(argument_spec().create_ansible_module(supports_check_mode=True))
