"""The documentation names IBM Cloud's guide by its title and links only inside this
repository: no internal wording ("seed"), no path out of the repository, no web link."""

from __future__ import annotations

import glob
import os
import re

import pytest

from playbook import REPO

DOCS = sorted({os.path.relpath(p, REPO) for pattern in ("README.md", "docs/**/*.md", "roles/*/README.md")
               for p in glob.glob(os.path.join(REPO, pattern), recursive=True)
               if not os.path.relpath(p, REPO).startswith("docs/reference")})


def test_docs_found():
    assert "README.md" in DOCS and "docs/guide.md" in DOCS and "roles/pull_secrets/README.md" in DOCS


@pytest.mark.parametrize("path", DOCS)
def test_doc_language_and_links(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        text = handle.read()
    problems = ["line %d: %s" % (text.count("\n", 0, m.start()) + 1, m.group(0))
                for m in re.finditer(r"\bseeds?\b|\.\./shared\b|\]\((?:https?:|//)[^)]*\)|<https?://[^>]*>",
                                     text, re.I)]
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if not re.match(r"[a-z]+:", target):
            resolved = os.path.normpath(os.path.join(REPO, os.path.dirname(path), target))
            if not resolved.startswith(REPO + os.sep) or not os.path.exists(resolved):
                problems.append("link to %s (outside the repository or missing)" % target)
    assert not problems, problems
    if path == "docs/guide.md":
        assert '"Setting up an image registry"' in text


# What ansible-doc and antsibull-docs render: every plugin's DOCUMENTATION, EXAMPLES and
# RETURN, the doc fragments, and the roles' argument specs and defaults.
PLUGIN_DOCS = sorted(os.path.relpath(p, REPO) for pattern in (
    "plugins/modules/*.py", "plugins/doc_fragments/*.py", "plugins/filter/*.py", "plugins/filter/*.yml",
    "roles/*/meta/argument_specs.yml", "roles/*/defaults/main.yml", "extensions/eda/plugins/event_source/*.py")
    for p in glob.glob(os.path.join(REPO, pattern)))
# Links as ansible-doc and antsibull-docs render them: L() and U() markup, a seealso `link:`,
# markdown or angle-bracket links. A URL written as a value (C(https://iam.cloud.ibm.com), a
# hosts.toml `server` in an example) is data, not a link.
WEB_LINK = re.compile(r"\bseeds?\b|\.\./shared\b|\b[LU]\(|^\s*-?\s*link:|\]\((?:https?:|//)|<https?://", re.I | re.M)


def test_plugin_docs_found():
    assert "plugins/modules/icr_pull_secret.py" in PLUGIN_DOCS
    assert "roles/pull_secrets/meta/argument_specs.yml" in PLUGIN_DOCS


@pytest.mark.parametrize("path", PLUGIN_DOCS)
def test_plugin_docs_language_and_links(path):
    """No link out of the repository (L(), U(), a seealso link) and no internal wording in what users read."""
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        text = handle.read()
    problems = ["line %d: %s" % (text.count("\n", 0, m.start()) + 1, m.group(0).strip())
                for m in WEB_LINK.finditer(text)]
    assert not problems, problems
