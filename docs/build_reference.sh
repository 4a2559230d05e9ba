#!/usr/bin/env bash
# Generates the module, plugin and role reference of ibmcloud.registry with antsibull-docs,
# offline, into docs/reference/ (reStructuredText, one file per plugin or role, index.rst),
# after checking every DOCUMENTATION, EXAMPLES, RETURN and argument_specs with
# `antsibull-docs lint-collection-docs`. The output is generated, not kept in git.
#
#   docs/build_reference.sh [DEST]        (default DEST: docs/reference)
#
# Uses the antsibull-docs and ansible of .venv (or of $VENV); the collection is made
# visible through a symlink, as the functional tests do.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
dest=${1:-$repo/docs/reference}
export PATH=$venv/bin:$PATH

collections=$repo/.tmp/docs-collections
link=$collections/ansible_collections/ibmcloud/registry
mkdir -p "$(dirname "$link")"
[ -L "$link" ] || ln -sfn "$repo" "$link"
export ANSIBLE_COLLECTIONS_PATH=$collections

echo "antsibull-docs lint-collection-docs (plugins, roles, changelog)"
antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck "$link"

mkdir -p "$dest"
antsibull-docs collection --use-current --squash-hierarchy --output-format simplified-rst \
  --no-add-antsibull-docs-version --fail-on-error --cleanup everything --dest-dir "$dest" ibmcloud.registry
echo "reference written to $dest ($(ls "$dest" | wc -l) files; start at index.rst)"
