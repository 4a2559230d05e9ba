#!/usr/bin/env bash
# What users run today, after the guide ("Setting up an image registry"): list the
# namespaces, then per namespace `kubectl create secret docker-registry` and
# `kubectl patch serviceaccount/default -p '{"imagePullSecrets":[...]}'`.
# The secret holds the same dockerconfig document as the other paths (--from-file),
# so the outcome is identical; one server per `--docker-server` could not hold 26 domains.
#
# usage: kubectl-loop.sh KUBECONFIG LABEL_SELECTOR SECRET_NAME DOCKERCONFIG_FILE
set -euo pipefail
kubeconfig=$1 selector=$2 name=$3 file=$4
for ns in $(kubectl --kubeconfig "$kubeconfig" get namespaces -l "$selector" \
              -o jsonpath='{.items[*].metadata.name}'); do
  kubectl --kubeconfig "$kubeconfig" --namespace "$ns" create secret docker-registry "$name" \
    --from-file=.dockerconfigjson="$file" >/dev/null
  kubectl --kubeconfig "$kubeconfig" --namespace "$ns" patch serviceaccount/default \
    -p "{\"imagePullSecrets\":[{\"name\":\"$name\"}]}" >/dev/null
done
