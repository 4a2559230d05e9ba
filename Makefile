# Test and CI entry points. `make test` is what .ci/run runs.
# Everything Python runs from .venv; Debian packages are installed when missing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(REPO)/.venv
PY := $(VENV)/bin/python
ANSIBLE_TEST := $(REPO)/tests/ansible_test.sh
export PATH := $(VENV)/bin:$(PATH)

# Go for the cluster's binaries (tests/cluster/build-go.sh: Kubernetes, etcd and containerd
# from Go modules), Debian's containerd 1.6 (the config.toml checks), the node's runc, CNI
# plugins, pause image (gcc -static) and app image (busybox-static), the registry, and what
# the scripts call (rsync: ansible_test.sh; strace: the egress tests). `make` must be there
# to read this file.
DEBIAN_PACKAGES := golang-go rsync \
	jq containerd docker-registry skopeo apache2-utils make openssl git python3-venv \
	runc containernetworking-plugins busybox-static gcc libc6-dev util-linux \
	shellcheck strace

# pytest exits 5 when it collected no test: not a failure here.
PYTEST_OK := || test $$? -eq 5

.PHONY: help deps apt venv cluster cluster-node node-build-bg cluster-stop sanity lint units integration functional test demo demo-stop bench sync-bench rotation-drill docs build

help:
	@echo "make deps | cluster | cluster-node | cluster-stop | demo | demo-stop | bench | sync-bench | rotation-drill | docs | sanity | lint | units | integration | functional | test"

## --- dependencies ---------------------------------------------------------------------

deps: apt venv

# dpkg-query first: apt-get update only runs when something is missing.
apt:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  [ "$$(dpkg-query -W -f='$${db:Status-Status}' "$$p" 2>/dev/null)" = installed ] || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.deps-stamp

# Reinstalled only when a requirements file changed since the last install.
$(VENV)/.deps-stamp: $(wildcard $(REPO)/requirements*.txt)
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r $(REPO)/requirements-test.txt
	@touch $@

## --- local control plane (tests/cluster) ----------------------------------------------

# The current single-node cluster in .cluster: Kubernetes, etcd and containerd from Go
# modules (built once and cached by tests/cluster/build-go.sh, which prints each cold
# build's time; it waits for a build already running), a Ready node and a private registry.
# Every integration target and functional test runs on it.
cluster: deps
	@bash tests/cluster/build-go.sh > /dev/null
	@if [ -f $(REPO)/.tmp/build-go.log ]; then grep -v '^go: downloading' $(REPO)/.tmp/build-go.log || true; fi
	$(PY) tests/cluster/localcluster.py start --node
	@# The openshift/api module's CRDs (Route, the registry operator's Config) for the
	@# OpenShift tests, into the Go module cache; the tests read it offline.
	$(PY) tests/cluster/crds.py --fetch-openshift-api

# The same cluster: .cluster-node is an alias of .cluster (tests written for a separate
# node cluster use it).
cluster-node: cluster

# `make test` starts the Go builds in the background right after deps, so that they
# overlap the sanity, lint and unit steps; cluster then waits for them (a lock per
# component) and finds the binaries cached.
node-build-bg:
	@mkdir -p $(REPO)/.tmp
	@setsid bash tests/cluster/build-go.sh > $(REPO)/.tmp/build-go.log 2>&1 < /dev/null &

# Stdlib only: works without .venv. Also stops every <repo>/.cluster-* cluster that
# tests started (.cluster-plain, .cluster-iam, ...).
cluster-stop:
	python3 tests/cluster/localcluster.py stop --all

## --- tests ----------------------------------------------------------------------------

sanity: venv
	$(ANSIBLE_TEST) sanity

lint: venv
	$(VENV)/bin/ansible-lint --profile production
	$(VENV)/bin/antsibull-changelog lint
	@# antsibull-docs lint-collection-docs, then the whole reference built (and thrown away) with --fail-on-error.
	dest=$$(mktemp -d) && docs/build_reference.sh "$$dest/reference" && rm -rf "$$dest"

units: venv
	$(VENV)/bin/pytest tests/unit -q $(PYTEST_OK)
	$(ANSIBLE_TEST) units

integration: cluster
	$(ANSIBLE_TEST) integration

functional: cluster
	$(VENV)/bin/pytest tests/functional -q --durations=40 $(PYTEST_OK)

# Every step runs, so one failure does not hide the next; the exit code is non-zero if any
# failed. Under CI the cluster is stopped afterwards; locally it stays up for reuse.
test:
	@summary=""; failed=""; \
	for step in deps node-build-bg sanity lint units cluster integration functional; do \
	  start=$$SECONDS; \
	  if $(MAKE) --no-print-directory $$step; then result=ok; else result=FAILED; failed="$$failed $$step"; fi; \
	  summary="$$summary  $$step: $$result ($$((SECONDS - start))s)\n"; \
	done; \
	if [ -n "$${CI:-}" ]; then $(MAKE) --no-print-directory cluster-stop; fi; \
	printf "\nmake test:\n$$summary"; \
	if [ -n "$$failed" ]; then echo "make test FAILED:$$failed"; exit 1; fi

## --- demo / bench / docs -------------------------------------------------------------

# The full registry setup (playbooks/site.yml) on the demo's own local control plane,
# twice, then playbooks/verify.yml and a summary (scripts/demo.sh).
demo: deps
	scripts/demo.sh

demo-stop:
	scripts/demo.sh stop

# Many namespaces, side by side with kubernetes.core loops and kubectl (docs/performance.md).
bench: deps
	$(PY) tests/bench/run.py --crowded 5000 $(BENCH_ARGS)

# The key rotation drill (docs/iam.md): 20 namespaces with an IAM-minted pull secret, pods
# pulling us.icr.io all along while playbooks/rotate_api_key.yml rotates the key, against the
# local stand-ins for IAM and the registry on a node cluster of its own (.cluster-drill);
# prints `failed pulls: K of M` (exit 1 unless K is 0) and how long the old key stayed valid.
# make rotation-drill DRILL_ARGS="--namespaces 50 --duration 300 --grace-period 30"
rotation-drill: deps
	@bash tests/cluster/build-go.sh > /dev/null
	$(PY) tests/functional/rotation_drill.py $(DRILL_ARGS)

# The collection tarball, for ansible-galaxy collection install dist/*.tar.gz.
build: venv
	$(VENV)/bin/ansible-galaxy collection build --force --output-path $(REPO)/dist $(REPO)

# Module and role reference with antsibull-docs into docs/reference/ (not kept in git).
docs: venv
	docs/build_reference.sh

# Event-driven sync: 100 namespaces in a burst through ansible-rulebook (docs/event-driven-sync.md);
# prints p95 and missed, writes its section of docs/performance.md.
sync-bench: deps
	$(PY) tests/bench/sync_bench.py
