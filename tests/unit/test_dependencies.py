# -*- coding: utf-8 -*-
"""requirements.txt, the modules' documented requirements, and docs/dependencies.md agree.

- every package a module's (or its doc fragments') ``requirements:`` names with a
  version is in requirements.txt with the same bounds;
- ibm-platform-services has a lower bound and a cap below its next major, not one minor;
- the ``openshift`` package is optional: the Kubernetes client layer falls back to
  ``kubernetes.dynamic`` without it, and the collection never calls the one method that
  ``openshift``'s DynamicClient adds;
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


def test_openshift_is_optional_and_kubernetes_dynamic_suffices():
    assert "openshift" not in requirements_txt()
    # Without the openshift package the client layer takes kubernetes' DynamicClient.
    probe = ("import sys; sys.modules['openshift'] = None; sys.modules['openshift.dynamic'] = None\n"
             "from ansible_collections.ibmcloud.registry.plugins.module_utils.kube import client\n"
             "print(client.HAS_KUBERNETES, client.DynamicClient.__module__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout.split()
    assert out[0] == "True" and out[1].startswith("kubernetes.dynamic"), out


def test_the_collection_never_calls_what_only_openshifts_dynamic_client_has():
    try:
        from openshift.dynamic import DynamicClient as OpenShiftDynamic  # pylint: disable=import-outside-toplevel
    except ImportError:
        return  # not installed: nothing it could add
    from kubernetes.dynamic import DynamicClient  # pylint: disable=import-outside-toplevel

    extra = sorted(name for name in vars(OpenShiftDynamic) if not name.startswith("_")
                   and not hasattr(DynamicClient, name))
    assert extra == ["apply"]
    calls = []
    for path in glob.glob(os.path.join(REPO, "plugins", "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if re.search(r"\.(dynamic|resource\([^)]*\))\.apply\(|\bdynamic\.apply\(", line):
                    calls.append("%s:%d" % (os.path.relpath(path, REPO), number))
    assert calls == []


def test_every_runtime_package_is_explained_in_docs_dependencies():
    with open(os.path.join(REPO, "docs", "dependencies.md"), encoding="utf-8") as handle:
        text = handle.read()
    names = set(normalise(name) for name in re.findall(r"^\| `([A-Za-z0-9_.-]+)` \|", text, re.M))
    assert set(requirements_txt()) <= names
    assert "openshift" in text and "kubernetes.dynamic" in text
