#!/usr/bin/env bash
# Builds the current cluster's binaries from Go modules, once per machine and version:
#   kubernetes: kube-apiserver kube-controller-manager kube-scheduler kubelet
#   etcd:       etcd
#   containerd: containerd containerd-shim-runc-v2 ctr
#   actionlint: actionlint (checks docs/ci/github-actions.yml in the tests)
# Versions: tests/cluster/versions.env. Build modules: tests/cluster/gobuild/<component>.
# Binaries: $IBMREG_CACHE/<component>/<version>/bin (default ~/.cache/ibmcloud-registry),
# never in the repository. A cached component is not rebuilt.
#
# Usage: build-go.sh [component...]   (default: all four)
# Prints one line per component, "<component>=<bin dir>", on stdout; build logs and the
# cold build time of each component go to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache_root=${IBMREG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ibmcloud-registry}
mkdir -p "$cache_root"

# Builds share 2 cores with the other make test steps, at normal priority: the functional
# tests wait for these binaries, so the build is the longer branch of a cold run.
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
[ -n "${GOTOOLCHAIN_PIN:-}" ] && export GOTOOLCHAIN=$GOTOOLCHAIN_PIN

build() {  # component version binary...
  local comp=$1 ver=$2; shift 2
  local out=$cache_root/$comp/$ver/bin missing="" b
  for b in "$@"; do [ -x "$out/$b" ] || missing="$missing $b"; done
  if [ -n "$missing" ]; then
    # One build of a component at a time; a second caller waits, then finds the binaries.
    exec 8> "$cache_root/.build-$comp.lock"
    flock 8
    missing=""
    for b in "$@"; do [ -x "$out/$b" ] || missing="$missing $b"; done
  fi
  if [ -n "$missing" ]; then
    local start=$SECONDS pkgs=() tags="" ldflags="-s -w"
    mkdir -p "$out.tmp"
    case $comp in
      kubernetes) for b in $missing; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
                  # What /version and the node report; `go build` alone leaves v0.0.0.
                  local v=k8s.io/component-base/version minor=${ver#v1.}
                  minor=${minor%%.*}
                  ldflags="$ldflags -X $v.gitVersion=$ver -X $v.gitMajor=1 -X $v.gitMinor=$minor"
                  ldflags="$ldflags -X $v.gitTreeState=clean" ;;
      etcd) pkgs=(go.etcd.io/etcd/server/v3) ;;
      containerd) for b in $missing; do pkgs+=("github.com/containerd/containerd/v2/cmd/$b"); done
                  tags="no_btrfs no_devmapper no_zfs" ;;
      actionlint) pkgs=(github.com/rhysd/actionlint/cmd/actionlint)
                  ldflags="$ldflags -X github.com/rhysd/actionlint.version=$ver" ;;
    esac
    echo "build-go: $comp $ver:$missing" >&2
    for p in "${pkgs[@]}"; do
      local name=${p##*/}
      [ "$comp" = etcd ] && name=etcd
      (cd "$here/gobuild/$comp" && go build -trimpath -tags "$tags" \
         -ldflags "$ldflags" -o "$out.tmp/$name" "$p") >&2
    done
    mkdir -p "$out"
    mv "$out.tmp"/* "$out"/ && rmdir "$out.tmp"
    echo "build-go: $comp $ver built in $((SECONDS - start))s (cold build time)" >&2
    exec 8>&-
  fi
  echo "$comp=$out"
}

comps=("$@")
[ ${#comps[@]} -gt 0 ] || comps=(etcd containerd actionlint kubernetes)
for c in "${comps[@]}"; do
  case $c in
    kubernetes) build kubernetes "$KUBERNETES_VERSION" kube-apiserver kube-controller-manager kube-scheduler kubelet ;;
    etcd) build etcd "$ETCD_VERSION" etcd ;;
    containerd) build containerd "$CONTAINERD_VERSION" containerd containerd-shim-runc-v2 ctr ;;
    actionlint) build actionlint "$ACTIONLINT_VERSION" actionlint ;;
    *) echo "build-go: unknown component $c" >&2; exit 2 ;;
  esac
done
