#!/usr/bin/env bash
# Runs ansible-test on a copy of this repository laid out as ansible-test requires it:
#   <repo>/.tmp/collections/ansible_collections/ibmcloud/registry
# with kubernetes.core (from the `ansible` package in .venv) beside it.
#
#   tests/ansible_test.sh sync                     refresh the copy, print its path
#   tests/ansible_test.sh sanity|units|integration [ansible-test options]
#
# Runs offline: the get-pip bootstrap that ansible-test would download is pre-seeded,
# and integration_config.yml is generated from the running local cluster.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$repo/.venv
python=$venv/bin/python
root=$repo/.tmp/collections
copy=$root/ansible_collections/ibmcloud/registry
export PATH=$venv/bin:$PATH

sync_copy() {
  mkdir -p "$copy"
  # Tracked files plus untracked ones that are not ignored, as `git status` sees the tree.
  # Excluded paths are left alone in the copy, so ansible-test's own output survives.
  (cd "$repo" && git ls-files --others --ignored --exclude-standard --directory | sed 's|^|/|') > "$root/.excludes"
  rsync -a --delete --exclude=/.git --exclude=/tests/output/ --exclude-from="$root/.excludes" "$repo/" "$copy/"
  # The copy needs a git repository of its own: otherwise ansible-test asks the enclosing
  # one (this repository), which ignores .tmp/, and finds no file to test.
  [ -d "$copy/.git" ] || git -C "$copy" init -q
  local site
  site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mkdir -p "$root/ansible_collections/kubernetes"
  ln -sfn "$site/ansible_collections/kubernetes/core" "$root/ansible_collections/kubernetes/core"
}

# ansible-test bootstraps pip in its sanity venvs with get-pip from outside the reachable
# registries, unless ~/.ansible/test/cache/get_pip_<version>.py exists. This stand-in
# installs pip from the interpreter's ensurepip, then the pip version asked for, with the
# PIP_* settings of the caller (ansible-test passes no PIP_* variable through).
seed_get_pip() {
  local version cache
  version=$("$python" -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
from ansible_test._internal.host_configs import NativePythonConfig as C
print(g(C(version="3.11"))["pip"])')
  cache=$HOME/.ansible/test/cache/get_pip_${version//./_}.py
  mkdir -p "$(dirname "$cache")"
  "$python" - "$cache" <<'EOF'
import json, os, sys
pip_env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
script = f'''"""Stand-in for get-pip.py (written by tests/ansible_test.sh): ensurepip, then pip install."""
import os, subprocess, sys
for key, value in {json.dumps(pip_env)}.items():
    os.environ.setdefault(key, value)
subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.run([sys.executable, "-m", "pip", "install", *args]).returncode)
'''
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write(script)
EOF
}

# Variables for integration targets, from the running cluster's cluster.json.
write_integration_config() {
  local cluster_dir=${IBMREG_CLUSTER_DIR:-$repo/.cluster}
  local out=$repo/tests/integration/integration_config.yml
  "$python" "$repo/tests/cluster/localcluster.py" status --dir "$cluster_dir" > /dev/null \
    || { echo "ansible_test.sh: no running cluster in $cluster_dir (make cluster)" >&2; exit 1; }
  jq -r --arg python "$python" --arg repo "$repo" '
    "ibmreg_kubeconfig: \(.kubeconfig | tojson)",
    "ibmreg_fixture_kubeconfig: \(.fixture_kubeconfig | tojson)",
    "ibmreg_audit_log: \(.audit_log | tojson)",
    "ibmreg_python: \($python | tojson)",
    "ibmreg_repo: \($repo | tojson)",
    "ibmreg_audit_cli: \("\($repo)/tests/cluster/audit.py" | tojson)"
  ' "$cluster_dir/cluster.json" > "$out"
  cp "$out" "$copy/tests/integration/integration_config.yml"
}

command=${1:?usage: $0 sync|sanity|units|integration [ansible-test options]}
shift
# One run at a time per repository: runs share the copy.
mkdir -p "$root"
exec 9> "$root/.lock"
flock 9
sync_copy
case $command in
  sync) echo "$copy" ;;
  sanity)
    seed_get_pip
    cd "$copy" && ansible-test sanity --local --python 3.11 "$@" ;;
  units)
    cd "$copy" && ansible-test units --local --python 3.11 "$@" ;;
  integration)
    write_integration_config
    cd "$copy" && ansible-test integration --local --python 3.11 "$@" ;;
  *) echo "unknown command: $command" >&2; exit 2 ;;
esac
