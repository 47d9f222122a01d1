#!/usr/bin/env bash
# make e2e-kind: the integration suite against a kind cluster with cronfleet
# installed by Helm. Needs a Docker engine, kind, kubectl and helm on PATH
# (this project's build machines have no Docker engine: it does not run there).
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${KIND_CLUSTER:-cronfleet-e2e}"
TAG="${IMAGE_TAG:-e2e}"
OPERATOR_IMAGE="ghcr.io/cronfleet/cronfleet-operator:${TAG}"
RUNNER_IMAGE="ghcr.io/cronfleet/cronfleet-runner:${TAG}"
KUBECONFIG_FILE="${PWD}/.cluster/kind-${CLUSTER}.kubeconfig"

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "e2e-kind needs $tool on PATH" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "e2e-kind needs a running Docker engine" >&2; exit 2; }

mkdir -p .cluster
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"
export KUBECONFIG="$KUBECONFIG_FILE"

docker build -f operator/Dockerfile -t "$OPERATOR_IMAGE" .
docker build -t "$RUNNER_IMAGE" runner-image/
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$RUNNER_IMAGE"

helm upgrade --install cronfleet charts/cronfleet \
  --namespace cronfleet-system --create-namespace \
  --set operator.image.tag="$TAG" --set runner.image.tag="$TAG" \
  --set operator.image.pullPolicy=Never --set runner.image.pullPolicy=Never \
  --wait --timeout 180s

# The suite's own operator stays off: the installed one serves every namespace.
# Tests that need the local control plane's processes (stopping
# kube-controller-manager, killing the operator) skip themselves here.
kubectl -n cronfleet-system port-forward svc/cronfleet-metrics 18080:8080 >/dev/null 2>&1 &
forward=$!
trap 'kill $forward 2>/dev/null || true' EXIT
CRONFLEET_TEST_KUBECONFIG="$KUBECONFIG_FILE" CRONFLEET_TEST_OPERATOR=external \
  CRONFLEET_TEST_METRICS_URL=http://127.0.0.1:18080/metrics \
  .venv/bin/pytest tests/integration "$@"
