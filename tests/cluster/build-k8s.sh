#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from Debian's `kubernetes`
# source package, once per machine. Binaries are cached outside the repository,
# keyed by the source version: $IBMREG_CACHE/k8s/<version>/bin.
# No kube-apiserver binary is published in any registry this project can reach;
# see ../shared/reference/local-cluster.md for why each step is needed.
set -euo pipefail

cache_root=${IBMREG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ibmcloud-registry}
work=$cache_root/k8s-src
mkdir -p "$work"
# One build per machine at a time; a second caller waits, then finds the binaries.
exec 9> "$cache_root/.build.lock"
flock 9

# A private apt configuration that adds deb-src for the configured Debian mirror,
# without touching /etc/apt.
sources=/etc/apt/sources.list.d/debian.sources
uri=$(awk '/^URIs:/ {print $2; exit}' "$sources" 2>/dev/null || true)
suite=$(awk '/^Suites:/ {print $2; exit}' "$sources" 2>/dev/null || true)
if [ -z "$uri" ]; then
  uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
  suite=$(awk '$1 == "deb" {print $3; exit}' /etc/apt/sources.list)
fi
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
echo "deb-src $uri $suite main" > "$work/apt/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
          -o APT::Sandbox::User=root)

version=$(find "$cache_root/k8s" -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort | head -n1 || true)
if [ -z "${IBMREG_FORCE_BUILD:-}" ] && [ -n "$version" ] \
   && [ -x "$version/kube-apiserver" ] && [ -x "$version/kube-controller-manager" ]; then
  echo "$version"
  exit 0
fi

(cd "$work" && apt-get "${apt_opts[@]}" -qq update >&2)
ver=$(cd "$work" && apt-cache "${apt_opts[@]}" showsrc kubernetes | awk '/^Version:/ {print $2; exit}')
[ -n "$ver" ] || { echo "build-k8s: Debian has no kubernetes source package" >&2; exit 1; }
out=$cache_root/k8s/$ver/bin
if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ]; then
  echo "$out"
  exit 0
fi

src=$work/src-$ver
if [ ! -d "$src" ]; then
  dl=$work/dl
  rm -rf "$dl" && mkdir -p "$dl"
  (cd "$dl" && apt-get "${apt_opts[@]}" -qq source --download-only kubernetes >&2)
  tarball=$(find "$dl" -maxdepth 1 -name "kubernetes_*.orig.tar.*" | head -n1)
  mkdir -p "$src.tmp"
  tar -xf "$tarball" -C "$src.tmp" --strip-components=1
  mv "$src.tmp" "$src"
fi

# The vendored reflect2 1.0.1 crashes on Go >= 1.18 at the first custom resource.
rm -rf "$src/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"

gopath=$work/gopath
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$src" "$gopath/src/k8s.io/kubernetes"
cd "$gopath/src/k8s.io/kubernetes"
export GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOPROXY=off GOFLAGS=
for what in cmd/kube-apiserver cmd/kube-controller-manager; do
  make WHAT=$what >&2
done
mkdir -p "$out.tmp"
cp _output/local/bin/linux/*/kube-apiserver _output/local/bin/linux/*/kube-controller-manager "$out.tmp/"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
