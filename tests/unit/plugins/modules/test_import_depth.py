# -*- coding: utf-8 -*-
"""How many files of this collection a module's import path goes through to the Kubernetes client.

Counted from the module file (included) to the file that imports the ``kubernetes``
package (included), over the longest chain of imports: every layer on that chain is a
file a reader has to open to follow a request from the task to the API.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
PREFIX = "ansible_collections.ibmcloud.registry."


def _path(module_name):
    base = os.path.join(ROOT, *module_name[len(PREFIX):].split("."))
    return base + ".py" if os.path.isfile(base + ".py") else None


def _imports(path):
    """(collection files this file imports, whether it imports the kubernetes package)."""
    tree = ast.parse(open(path).read())
    files, kubernetes = set(), False
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + ["%s.%s" % (node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            kubernetes = kubernetes or name == "kubernetes" or name.startswith("kubernetes.")
            if name.startswith(PREFIX) and _path(name):
                files.add(os.path.normpath(_path(name)))
    return files, kubernetes


def longest_chain_to_client(path, seen=()):
    """The longest import chain (list of files) from ``path`` to a file that imports kubernetes."""
    files, kubernetes = _imports(path)
    best = [path] if kubernetes else None
    for child in sorted(files - set(seen) - {path}):
        chain = longest_chain_to_client(child, seen + (path,))
        if chain and (best is None or len(chain) + 1 > len(best)):
            best = [path] + chain
    return best


def module_file(name):
    return os.path.normpath(os.path.join(ROOT, "plugins", "modules", name + ".py"))


@pytest.mark.parametrize("name", ["icr_pull_secret", "sa_pull_secret"])
def test_pull_secret_modules_reach_the_api_through_at_most_four_files(name):
    chain = longest_chain_to_client(module_file(name))
    shown = " -> ".join(os.path.relpath(p, ROOT) for p in chain)
    assert len(chain) <= 4, shown
    assert chain[-1].endswith(os.path.join("kube", "client.py")), shown


def test_the_count_follows_imports_to_the_client():
    # The measure itself: the kube layer's own files are one step from the client.
    chain = longest_chain_to_client(os.path.normpath(os.path.join(
        ROOT, "plugins", "module_utils", "kube", "service_accounts.py")))
    assert [os.path.basename(p) for p in chain] == ["service_accounts.py", "client.py"]
