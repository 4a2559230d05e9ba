#!/usr/bin/env bash
# The demo behind `make demo`: the whole registry setup of playbooks/site.yml against a local
# Kubernetes control plane, twice (the second run changes nothing), then playbooks/verify.yml,
# then a summary of what exists in the cluster.
#
#   scripts/demo.sh          (after `make deps`; `make demo` does both)
#   scripts/demo.sh stop     stop the demo's control plane
#
# The control plane is its own (state in <repo>/.cluster-demo), so the demo never touches the
# cluster the tests use. Each run starts it fresh; it keeps running afterwards, for kubectl:
#   KUBECONFIG=.cluster-demo/kubeconfig kubectl get secrets -A
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
state=$repo/.cluster-demo
python=$venv/bin/python
export PATH=$venv/bin:$PATH

if [ "${1:-}" = stop ]; then
  python3 "$repo/tests/cluster/localcluster.py" stop --dir "$state"
  exit 0
fi
[ -x "$python" ] || { echo "no $venv: run 'make deps' first (make demo does)" >&2; exit 1; }

banner() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

banner "What is real here and what is not"
cat <<'EOF'
Real: a Kubernetes 1.20 control plane (etcd, kube-apiserver, kube-controller-manager) on
loopback, this collection's roles and modules, kubernetes.core, ansible-playbook.
Not real, and said so:
  - all-icr-io in `default` is a STAND-IN: IBM Cloud Kubernetes Service creates the real one
    (playbooks/demo_prepare.yml makes a clearly labelled placeholder);
  - the private registry password and the entitlement key are placeholders (nothing logs in);
  - the local control plane has no nodes: the containerd DaemonSet is created but runs no pod;
  - IBM Cloud IAM (service IDs, policies, API keys: the iam_pull_secret part) cannot be reached
    from here, so it is not in the demo's vars; the tests run it against a local IAM stand-in;
  - the OpenShift parts are in the vars on purpose: this is plain Kubernetes, so site.yml skips
    them and says why.
EOF

banner "Local control plane ($state), started fresh"
k8s_bin=$(bash "$repo/tests/cluster/build-k8s.sh" | tail -n1)
# A fresh start (empty etcd) every time, so that the first run shows the whole setup.
"$python" "$repo/tests/cluster/localcluster.py" stop --dir "$state" >/dev/null
IBMREG_K8S_BIN=$k8s_bin "$python" "$repo/tests/cluster/localcluster.py" start --dir "$state"

# The repository, installed as the collection ibmcloud.registry (a symlink).
collections=$repo/.tmp/demo-collections
link=$collections/ansible_collections/ibmcloud/registry
mkdir -p "$(dirname "$link")"
[ -L "$link" ] || ln -sfn "$repo" "$link"
export ANSIBLE_COLLECTIONS_PATH=$collections ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_NOCOLOR=${ANSIBLE_NOCOLOR:-}
export ANSIBLE_LOCAL_TEMP=$repo/.tmp/demo-ansible-tmp
inventory=$repo/playbooks/inventory/demo.yml
vars=$repo/playbooks/vars/demo.yml
logs=$repo/.tmp/demo-logs
mkdir -p "$logs"

play() {  # play NAME PLAYBOOK [ARGS...]: run, keep the output in .tmp/demo-logs/NAME.log
  local name=$1 playbook=$2; shift 2
  ansible-playbook -i "$inventory" "$repo/playbooks/$playbook" "$@" 2>&1 | tee "$logs/$name.log"
  return "${PIPESTATUS[0]}"
}
recap() { grep -A3 '^PLAY RECAP' "$logs/$1.log" | grep -E '^local-demo ' | head -n1; }

banner "DEMO ONLY: prepare the cluster like a fresh IBM Cloud cluster (namespaces, STAND-IN all-icr-io)"
play prepare demo_prepare.yml

banner "site.yml, first run: set everything up"
play site-1 site.yml -e "@$vars"

banner "site.yml, second run: must report no change"
play site-2 site.yml -e "@$vars"
second=$(recap site-2)
echo "$second"
case "$second" in
  *" changed=0 "*) echo "second run: changed=0 - idempotent" ;;
  *) echo "second run changed something: $second" >&2; exit 1 ;;
esac

banner "verify.yml: read-only audit (fails on drift)"
play verify verify.yml -e "@$vars"

banner "What now exists in the cluster"
"$python" - "$state/kubeconfig-fixture" <<'EOF'
import sys

from kubernetes import client, config

api = config.new_client_from_config(config_file=sys.argv[1])
core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
managed = "app.kubernetes.io/managed-by=ibmcloud.registry"
print("Image pull secrets made by ibmcloud.registry:")
for s in sorted(core.list_secret_for_all_namespaces(label_selector=managed).items,
                key=lambda s: (s.metadata.namespace, s.metadata.name)):
    print("  %-10s %-24s %s" % (s.metadata.namespace, s.metadata.name, s.type))
print("Service accounts that use them (imagePullSecrets):")
for ns in ("demo-apps", "demo-web", "demo-cp"):
    refs = core.read_namespaced_service_account("default", ns).image_pull_secrets or []
    print("  %-10s default -> %s" % (ns, ", ".join(r.name for r in refs)))
for ds in apps.list_daemon_set_for_all_namespaces(label_selector=managed).items:
    print("containerd hosts.toml DaemonSet: %s/%s (no nodes here, so %d pods)"
          % (ds.metadata.namespace, ds.metadata.name, ds.status.current_number_scheduled or 0))
EOF

banner "Done"
cat <<EOF
The control plane keeps running:  KUBECONFIG=$state/kubeconfig kubectl get secrets -A
Try drift:  KUBECONFIG=$state/kubeconfig kubectl -n demo-web delete secret all-icr-io
            ANSIBLE_COLLECTIONS_PATH=.tmp/demo-collections .venv/bin/ansible-playbook
              -i playbooks/inventory/demo.yml playbooks/verify.yml -e @playbooks/vars/demo.yml
Logs: $logs/   Stop: scripts/demo.sh stop   IAM, OpenShift and AWX: docs/guide.md, docs/awx.md
EOF
