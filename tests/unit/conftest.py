# -*- coding: utf-8 -*-
"""Make ``ansible_collections.ibmcloud.registry`` importable under plain pytest.

ansible-test units runs from a tree that already ends in
ansible_collections/ibmcloud/registry; a plain clone does not, so point a
git-ignored link at the repository root.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os
import sys


def _importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


if not _importable("ansible_collections.ibmcloud.registry"):
    _root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    _base = os.path.join(_root, ".tmp", "pytest-collections")
    _link = os.path.join(_base, "ansible_collections", "ibmcloud", "registry")
    if not os.path.islink(_link):
        os.makedirs(os.path.dirname(_link), exist_ok=True)
        os.symlink(_root, _link)
    sys.path.insert(0, _base)
    for _name in [m for m in sys.modules if m == "ansible_collections" or m.startswith("ansible_collections.")]:
        del sys.modules[_name]
