# -*- coding: utf-8 -*-
"""A stand-in for AnsibleModule in the connection-layer unit tests: only what module_utils reads."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import client as kube


class Failed(Exception):
    """fail_json was called; the message is the exception's."""


class FakeModule:
    """params: every kubernetes.core connection option (None), then DEFAULTS, then the given ones."""

    DEFAULTS = {}

    def __init__(self, **params):
        self.params = dict((key, None) for key in kube.AUTH_ARG_SPEC)
        self.params.update(self.DEFAULTS)
        self.params.update(params)
        self.no_log_values = set()

    def fail_json(self, **kwargs):
        raise Failed(kwargs["msg"])
