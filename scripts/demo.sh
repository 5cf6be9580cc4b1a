#!/usr/bin/env bash
# Render the default project, build its image, start it and show a real prediction.
# Each docker command is printed before it runs, and the build shows its steps.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/demo
port="${DEMO_PORT:-8080}"
python=.venv/bin/python
run() { echo "+ $*"; "$@"; }

rm -rf "$out"
run .venv/bin/cookiecutter --no-input --output-dir "$out" .
project="$(ls -d "$out"/*/ | head -n 1)"
image="$(basename "$project"):demo"

# Only the base image this project's Dockerfile builds FROM (the default Python version).
version="$(sed -n 's/^ARG BASE_IMAGE=python:\([0-9.]*\)-slim$/\1/p' "$project/Dockerfile")"
[ -n "$version" ] || { echo "demo: no ARG BASE_IMAGE=python:<version>-slim in $project/Dockerfile" >&2; exit 1; }
run bash scripts/base-images.sh "$version"

run docker build --target runtime -t "$image" "$project"
run docker rm -f ml-container-demo >/dev/null 2>&1 || true
run docker run -d --rm --name ml-container-demo -p "127.0.0.1:$port:8080" "$image"
trap 'docker stop ml-container-demo >/dev/null 2>&1 || true' EXIT

"$python" - "$port" <<'PY'
import json, sys, time, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(300):
    try:
        urllib.request.urlopen(base + "/readyz", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the container did not become ready; see `docker logs ml-container-demo`")

record = {"sepal_length": 6.3, "sepal_width": 2.9, "petal_length": 5.6, "petal_width": 1.8}
request = urllib.request.Request(
    base + "/predict", data=json.dumps(record).encode(), headers={"Content-Type": "application/json"}
)
print(f"+ POST {base}/predict {json.dumps(record)}")
print(json.dumps(json.load(urllib.request.urlopen(request)), indent=2))
PY
echo "The container serves on http://127.0.0.1:$port (docs at /docs); it stops now."
