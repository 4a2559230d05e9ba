#!/usr/bin/env bash
# The demo behind `make demo`: the whole registry setup of playbooks/site.yml against a local
# Kubernetes cluster with one node and a private registry, twice (the second run changes
# nothing), then playbooks/verify.yml, then one pod per demo namespace that pulls its
# image through the secrets site.yml made, and a summary (scripts/demo_local.py). The IAM
# part runs against LOCAL STAND-INS on loopback: IBM Cloud IAM, and us.icr.io as a
# token-auth registry with its token service, which the node's hosts.toml mirrors.
#
#   scripts/demo.sh          (after `make deps`; `make demo` does both)
#   scripts/demo.sh stop     stop the demo's cluster and its stand-ins
#
# The cluster is its own (state in <repo>/.cluster-demo), so the demo never touches the
# cluster the tests use. Each run starts it fresh; it keeps running afterwards, for kubectl:
#   KUBECONFIG=.cluster-demo/kubeconfig kubectl get secrets -A
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
state=$repo/.cluster-demo
python=$venv/bin/python
export PATH=$venv/bin:$PATH

# Stdlib only, so that stop works without .venv.
stop_standins() { python3 "$repo/scripts/demo_local.py" stop-standins "$state"; }

if [ "${1:-}" = stop ]; then
  stop_standins
  python3 "$repo/tests/cluster/localcluster.py" stop --dir "$state"
  exit 0
fi
[ -x "$python" ] || { echo "no $venv: run 'make deps' first (make demo does)" >&2; exit 1; }

banner() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

banner "What is real here and what is not"
cat <<'TEXT'
Real: a Kubernetes cluster on loopback (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and one node, kubelet with containerd, all built from their Go modules by
tests/cluster/build-go.sh), a private registry (docker-registry with TLS and passwords)
holding a small busybox image, this collection's roles and modules, kubernetes.core,
ansible-playbook, the IBM Cloud SDK the IAM modules call. Pods on the node pull the
images through the secrets site.yml makes.
Not real, and said so:
  - all-icr-io in `default` is a STAND-IN: IBM Cloud Kubernetes Service creates the real one
    (an API key for icr.io); playbooks/demo_prepare.yml makes a clearly labelled one that
    holds the local registry's credentials;
  - the "private registry" and the entitled registry cp.icr.io are both the local registry:
    the node sends cp.icr.io to it (hosts.toml), and its password for user `cp` plays the
    entitlement key; nothing leaves this machine;
  - IBM Cloud IAM is a STAND-IN (tests/standins/iam_server.py) on 127.0.0.1: site.yml's IAM
    part makes a service ID, a Container Registry policy and an API key there, and puts the
    key into a pull secret in demo-iam; its admin key is made for this run, not a real key;
  - us.icr.io is a STAND-IN: a real docker-registry with token auth like icr.io, on a
    loopback address, whose token service is a STAND-IN (tests/standins/token_service.py)
    that asks the IAM stand-in whether the key and its policy allow the pull. The node's
    hosts.toml sends us.icr.io there, and its /etc/hosts maps the icr.io names to 127.0.0.1:
    nothing resolves or reaches a real icr.io;
  - the OpenShift parts are in the vars on purpose: this is plain Kubernetes, so site.yml skips
    them and says why.
TEXT

banner "Local cluster ($state), started fresh: one node, a private registry"
# Built once and cached (on a fresh machine this is the long step: build-go.sh prints each
# cold build's time).
bash "$repo/tests/cluster/build-go.sh" > /dev/null
# A fresh start (empty etcd, new stand-ins) every time, so that the first run shows the
# whole setup.
stop_standins >/dev/null
"$python" "$repo/tests/cluster/localcluster.py" stop --dir "$state" >/dev/null
"$python" "$repo/tests/cluster/localcluster.py" start --node --dir "$state"

banner "STAND-INS for the IAM part (not IBM's services), on loopback"
standins=$state/standins
rm -rf "$standins" && mkdir -p "$standins"
# In the background, in a session of its own; it stops when demo.sh stop (or the
# cluster's stop) says so.
setsid "$python" "$repo/scripts/demo_local.py" standins "$state" >"$standins/standins.log" 2>&1 </dev/null &
launched=$!
for _ in $(seq 1 240); do
  [ -f "$standins/standins.json" ] && break
  # Its own pid file (setsid may fork), else the one started here.
  pid=$(cat "$standins/pid" 2>/dev/null || echo "$launched")
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if [ ! -f "$standins/standins.json" ]; then
  cat "$standins/standins.log" >&2
  echo "the stand-ins did not start (log: $standins/standins.log)" >&2
  stop_standins >&2
  exit 1
fi
cat "$standins/standins.log"
# demo.yml's parts with the local registry's address and credentials (in the state dir).
local_vars=$state/demo-local-vars.yml
"$python" "$repo/scripts/demo_local.py" vars "$state" "$repo/playbooks/vars/demo.yml" "$local_vars"

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
play prepare demo_prepare.yml -e "@$local_vars"

banner "site.yml, first run: set everything up (IAM part against the STAND-IN)"
play site-1 site.yml -e "@$vars" -e "@$local_vars"

banner "site.yml, second run: must report no change"
play site-2 site.yml -e "@$vars" -e "@$local_vars"
second=$(recap site-2)
echo "$second"
case "$second" in
  *" changed=0 "*) echo "second run: changed=0 - idempotent" ;;
  *) echo "second run changed something: $second" >&2; exit 1 ;;
esac

banner "verify.yml: read-only audit (fails on drift)"
play verify verify.yml -e "@$vars" -e "@$local_vars"

banner "Pods in the demo namespaces pull through those secrets (demo-iam: us.icr.io STAND-IN, IAM-minted key)"
"$python" "$repo/scripts/demo_local.py" pods "$state" "$logs/summary.txt"

banner "Done"
iam_url=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["iam_url"])' "$standins/standins.json")
cat <<EOF
The cluster keeps running:  KUBECONFIG=$state/kubeconfig kubectl get pods -A
Try drift:  KUBECONFIG=$state/kubeconfig kubectl -n demo-web delete secret all-icr-io
            ANSIBLE_COLLECTIONS_PATH=.tmp/demo-collections .venv/bin/ansible-playbook
              -i playbooks/inventory/demo.yml playbooks/verify.yml -e @playbooks/vars/demo.yml
              -e @.cluster-demo/demo-local-vars.yml
The stand-ins keep running with it (IAM at $iam_url); their files: $standins/
Summary: $logs/summary.txt   Logs: $logs/   Stop (cluster and stand-ins): scripts/demo.sh stop
IAM against IBM Cloud, OpenShift and AWX: docs/guide.md, docs/awx.md
EOF
