#!/usr/bin/env bash
# Generates the module, plugin and role reference of ibmcloud.registry with antsibull-docs,
# offline, into docs/reference/ (reStructuredText, one file per plugin or role, index.rst),
# after checking every DOCUMENTATION, EXAMPLES, RETURN and argument_specs with
# `antsibull-docs lint-collection-docs`. The output is generated, not kept in git.
#
#   docs/build_reference.sh [DEST]        (default DEST: docs/reference)
#   docs/build_reference.sh --lint-only   (only the lint; `make lint` runs the whole build into a temporary DEST)
#
# Uses the antsibull-docs and ansible of .venv (or of $VENV). antsibull-docs copies the
# collection and its dependencies before it reads them, and copies a directory that is
# inside a git work tree with `git ls-files`: kubernetes.core from .venv (inside this
# checkout, untracked) would arrive empty and its doc fragments unknown. So both are copied
# first to a temporary ansible_collections/ outside any git tree: this collection (what
# `ansible-galaxy collection build` ships, plus galaxy.yml) and kubernetes.core from the
# `ansible` package in the venv; the venv's own collections are not scanned.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
lint_only=false
if [ "${1:-}" = --lint-only ]; then lint_only=true; shift; fi
dest=$(realpath -m "${1:-$repo/docs/reference}")
export PATH=$venv/bin:$PATH

work=$(mktemp -d "${TMPDIR:-/tmp}/ibmreg-docs.XXXXXX")
trap 'rm -rf "$work"' EXIT
copy=$work/ansible_collections/ibmcloud/registry
mkdir -p "$copy"
rsync -a --exclude .git --exclude .venv --exclude '.cluster*' --exclude .tmp --exclude .ansible \
  --exclude .pytest_cache --exclude __pycache__ --exclude dist --exclude docs/reference \
  --exclude tests/output --exclude '*.tar.gz' "$repo/" "$copy/"
site_packages=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp -a "$site_packages/ansible_collections/kubernetes" "$work/ansible_collections/"
export ANSIBLE_COLLECTIONS_PATH=$work ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false

echo "antsibull-docs lint-collection-docs (plugins, roles, changelog)"
(cd "$work" && antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck "$copy")
$lint_only && exit 0

mkdir -p "$dest"
(cd "$work" && antsibull-docs collection --use-current --squash-hierarchy --output-format simplified-rst \
  --no-add-antsibull-docs-version --fail-on-error --cleanup everything --dest-dir "$dest" ibmcloud.registry)
echo "reference written to $dest ($(find "$dest" -maxdepth 1 -type f | wc -l) files; start at index.rst)"
