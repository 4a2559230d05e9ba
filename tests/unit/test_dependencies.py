# -*- coding: utf-8 -*-
"""requirements.txt, the modules' documented requirements, and docs/dependencies.md agree.

- every package a module's (or its doc fragments') ``requirements:`` names with a
  version is in requirements.txt with the same bounds;
- ibm-platform-services has a lower bound and a cap below its next major, not one minor;
- every package of requirements.txt is imported by the collection (a real use);
- ``openshift`` has a range, and is used for the username/password login at OpenShift's
  OAuth server (its OCPLoginConfiguration); discovery is ``kubernetes.dynamic``'s, and
  without ``openshift`` only that login fails (missing_required_lib);
- every package of requirements.txt is explained in docs/dependencies.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)\s*((?:[<>=!~]=?\s*[0-9][0-9.]*\s*,?\s*)+)")


def requirements_txt():
    found = {}
    with open(os.path.join(REPO, "requirements.txt"), encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line:
                match = REQUIREMENT.match(line)
                assert match, "cannot read requirement %r" % line
                found[normalise(match.group(1))] = bounds(match.group(2))
    return found


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def bounds(text):
    return sorted(re.sub(r"\s+", "", part) for part in text.split(",") if part.strip())


def documented_requirements():
    """(where, package, bounds) for every versioned entry of a module's or fragment's requirements."""
    entries = []
    files = glob.glob(os.path.join(REPO, "plugins", "modules", "*.py")) + \
        glob.glob(os.path.join(REPO, "plugins", "doc_fragments", "*.py"))
    for path in sorted(files):
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        for block in re.findall(r'(?:DOCUMENTATION|DOCUMENTATION_FRAGMENT)?\s*=\s*r?"""(.*?)"""', source, re.S):
            try:
                document = yaml.safe_load(block)
            except yaml.YAMLError:
                continue
            if not isinstance(document, dict):
                continue
            for entry in document.get("requirements") or []:
                match = REQUIREMENT.match(str(entry))
                if match:
                    entries.append((os.path.relpath(path, REPO), normalise(match.group(1)), bounds(match.group(2))))
    return entries


def test_documented_module_requirements_match_requirements_txt():
    pinned = requirements_txt()
    entries = documented_requirements()
    assert entries, "no documented requirement found: the parser is broken"
    wrong = ["%s: %s %s, requirements.txt has %s" % (where, name, ",".join(spec), ",".join(pinned.get(name, [])))
             for where, name, spec in entries
             # Node-side libraries (containerd_hosts) are not controller requirements.
             if name in pinned and spec != pinned[name]]
    assert wrong == []


def test_ibm_platform_services_is_capped_below_its_next_major_not_one_minor():
    spec = requirements_txt()["ibm-platform-services"]
    lower = [s for s in spec if s.startswith(">=")]
    upper = [s for s in spec if s.startswith("<") and not s.startswith("<=")]
    assert lower and upper, spec
    low = [int(p) for p in lower[0][2:].split(".")]
    high = [int(p) for p in upper[0][1:].split(".")]
    assert high[0] == low[0] + 1 and all(p == 0 for p in high[1:]), "cap %s is not the next major" % upper[0]


# Import name of each runtime package of requirements.txt.
IMPORT_NAMES = {"kubernetes": "kubernetes", "ibm-platform-services": "ibm_platform_services", "pyjwt": "jwt",
                "jmespath": "jmespath", "tomli-w": "tomli_w", "openshift": "openshift"}


def test_every_runtime_package_is_imported_by_the_collection():
    assert set(requirements_txt()) == set(IMPORT_NAMES), "a package without a known import name"
    imported = set()
    for path in glob.glob(os.path.join(REPO, "plugins", "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as handle:
            imported.update(re.findall(r"^\s*(?:from|import)\s+([A-Za-z0-9_]+)", handle.read(), re.M))
    assert sorted(name for name, module in IMPORT_NAMES.items() if module not in imported) == []


def test_openshift_has_a_range_not_an_exact_pin():
    spec = requirements_txt()["openshift"]
    assert [s for s in spec if s.startswith(">=")] and [s for s in spec if s.startswith("<")], spec
    assert not [s for s in spec if s.startswith("==")], spec


def test_openshift_is_for_the_password_login_and_kubernetes_dynamic_for_discovery():
    from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import (  # pylint: disable=import-outside-toplevel
        client, openshift_login)
    from openshift.helper.userpassauth import OCPLoginConfiguration  # pylint: disable=import-outside-toplevel

    # The login is the openshift package's own OCPLoginConfiguration, hooked into the one factory.
    assert openshift_login.OCPLoginConfiguration is OCPLoginConfiguration
    assert client.login_with_password is openshift_login.login_with_password
    assert client.DynamicClient.__module__.startswith("kubernetes.dynamic")


def test_without_openshift_only_the_password_login_needs_it():
    probe = ("import sys; sys.modules['openshift'] = None; sys.modules['openshift.helper'] = None\n"
             "sys.modules['openshift.helper.userpassauth'] = None\n"
             "from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import client, openshift_login\n"
             "from kubernetes.client import Configuration\n"
             "class Module:\n"
             "    no_log_values = set()\n"
             "    def fail_json(self, msg, **kwargs):\n"
             "        print('FAILED', msg); sys.exit(0)\n"
             "print(client.HAS_KUBERNETES, openshift_login.HAS_OPENSHIFT)\n"
             "assert openshift_login.login_with_password(Module(), {'api_key': 't'}, Configuration())\n"
             "openshift_login.login_with_password(Module(), {'username': 'apikey', 'password': 'k'}, Configuration())\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout
    assert out.startswith("True False\nFAILED Failed to import the required Python library (openshift)"), out


def test_every_runtime_package_is_explained_in_docs_dependencies():
    with open(os.path.join(REPO, "docs", "dependencies.md"), encoding="utf-8") as handle:
        text = handle.read()
    names = set(normalise(name) for name in re.findall(r"^\| `([A-Za-z0-9_.-]+)` \|", text, re.M))
    assert set(requirements_txt()) <= names
    assert "OCPLoginConfiguration" in text and "oc login -u apikey" in text
