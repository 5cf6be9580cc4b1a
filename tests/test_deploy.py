"""Deployment without a cluster: every Kubernetes overlay renders, every object passes a
strict schema, the manifests agree with the image's settings, and the compose file passes the
Compose specification. No Docker needed; the manifest-driven container tests run the image
exactly as these manifests say.
"""

import ast
import copy
import importlib.resources
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml

from .conftest import PYTHON, ROOT, run_in

# The Kubernetes version the objects are validated against; the pinned kubectl
# (scripts/kube-tools.sh) is of the same minor version.
KUBERNETES_VERSION = "1.35.0"
KUBECTL = ROOT / "build/tools/bin/kubectl"
SCHEMAS = Path(__file__).parent / "schemas"
CUSTOM_SCHEMAS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve-inferenceservice-v1beta1.json",
    ("keda.sh/v1alpha1", "ScaledJob"): "keda-scaledjob-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication-v1alpha1.json",
}

SLUG = "iris-classifier"
IMAGE_USER = 10001
SERVING = Counter(["ServiceAccount", "ConfigMap", "Deployment", "Service", "NetworkPolicy"])
AUTOSCALED = SERVING + Counter(["HorizontalPodAutoscaler", "PodDisruptionBudget"])
STORAGE = Counter({"PersistentVolumeClaim": 2})
KSERVE = Counter(
    ["ServiceAccount", "ConfigMap", "InferenceService", "NetworkPolicy", "PodDisruptionBudget"]
)
# The exact kinds each overlay renders. The base needs no CRDs; only kserve and events do.
OVERLAY_KINDS = {
    "dev": SERVING,
    "prod": AUTOSCALED,
    "kserve": KSERVE,
    "batch": AUTOSCALED + STORAGE + Counter(["Job"]),
    "scheduled": AUTOSCALED + STORAGE + Counter({"CronJob": 2}),
    "events": AUTOSCALED + STORAGE + Counter(["ConfigMap", "ScaledJob", "TriggerAuthentication"]),
    "store": AUTOSCALED,
    "kserve-store": KSERVE,
}
# Secrets the engineer creates (README, "On Kubernetes"); every other reference must resolve.
EXTERNAL_SECRETS = {f"{SLUG}-api-token", f"{SLUG}-rabbitmq", f"{SLUG}-model-store"}


class RenderError(Exception):
    """An overlay that kubectl cannot render."""


def kustomize(overlay: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from an overlay folder."""
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(overlay)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RenderError(f"overlay {overlay.name} does not render: {result.stderr.strip()}")
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def overlay_dir(project: Path, overlay: str) -> Path:
    return project / "deploy/kubernetes/overlays" / overlay


@pytest.fixture(scope="session")
def rendered(default_project: Path) -> dict[str, list[dict[str, Any]]]:
    if not KUBECTL.exists():
        pytest.fail(f"no pinned kubectl at {KUBECTL}: run `make kube-tools`")
    return {name: kustomize(overlay_dir(default_project, name)) for name in OVERLAY_KINDS}


def kubernetes_definitions() -> referencing.Resource:
    """The strict Kubernetes definitions kubernetes-validate bundles, which the custom
    resources' schemas refer to for the Kubernetes types they embed."""
    folder = f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict"
    path = importlib.resources.files("kubernetes_validate") / folder / "_definitions.json"
    return referencing.Resource.from_contents(json.loads(path.read_text()))


CUSTOM_VALIDATORS = {
    key: jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / name).read_text()),
        registry=kubernetes_definitions() @ referencing.Registry(),
    )
    for key, name in CUSTOM_SCHEMAS.items()
}


def field_path(path: Any) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """How an object breaks its schema, each error naming the object and the field."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CUSTOM_VALIDATORS:
        errors = CUSTOM_VALIDATORS[key].iter_errors(obj)
        return [f"{name}: {field_path(e.absolute_path)}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {key[0]} {key[1]}: add one to tests/schemas"]
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {field_path(error.absolute_path)}: {error.message}"]
    return []


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod spec a workload runs (KServe's predictor inlines one)."""
    spec = obj.get("spec", {})
    return {
        "Deployment": lambda: [spec["template"]["spec"]],
        "Job": lambda: [spec["template"]["spec"]],
        "CronJob": lambda: [spec["jobTemplate"]["spec"]["template"]["spec"]],
        "ScaledJob": lambda: [spec["jobTargetRef"]["template"]["spec"]],
        "InferenceService": lambda: [spec["predictor"]],
    }.get(obj["kind"], list)()


def job_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]
    return {"Job": lambda: [spec], "CronJob": lambda: [spec["jobTemplate"]["spec"]]}.get(
        obj["kind"], list
    )()


def settings_port(project: Path, name: str = "port") -> int:
    """The default of `port` (or `grpc_port`) in the project's Settings (core/settings.py),
    read from the source."""
    source = (project / "src/iris_classifier/core/settings.py").read_text()
    settings = next(
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef) and node.name == "Settings"
    )
    for statement in settings.body:
        if isinstance(statement, ast.AnnAssign) and ast.unparse(statement.target) == name:
            assert isinstance(statement.value, ast.Call)
            return int(ast.literal_eval(statement.value.args[0]))
    raise AssertionError(f"core/settings.py's Settings has no `{name}`")


def settings_fields(project: Path) -> set[str]:
    source = (project / "src/iris_classifier/core/settings.py").read_text()
    return {name.upper() for name in re.findall(r"^    (\w+): .*= Field\(", source, re.M)}


# --- Rendering ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAY_KINDS)
def test_every_overlay_renders_exactly_its_kinds(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    assert Counter(o["kind"] for o in rendered[overlay]) == OVERLAY_KINDS[overlay]


def test_an_overlay_that_does_not_render_fails_with_its_name_and_the_reason(
    default_project: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "deploy"
    shutil.copytree(default_project / "deploy", broken)
    (broken / "kubernetes/overlays/dev/one-replica.yaml").unlink()
    with pytest.raises(RenderError, match=r"(?s)overlay dev does not render: .*one-replica\.yaml"):
        kustomize(broken / "kubernetes/overlays/dev")


def test_make_k8s_prints_the_command_and_the_manifests(
    rendered: dict[str, list[dict[str, Any]]], default_project: Path
) -> None:
    result = run_in(
        default_project,
        "make",
        "--no-print-directory",  # under `make test`, make would announce the folder it enters
        "k8s",
        "OVERLAY=prod",
        f"KUBECTL={KUBECTL}",
    )
    assert result.returncode == 0, result.stderr
    command, manifests = result.stdout.split("\n", 1)
    assert command == f"{KUBECTL} kustomize deploy/kubernetes/overlays/prod"
    assert [d for d in yaml.safe_load_all(manifests) if d] == rendered["prod"]


def fake_tool(folder: Path, name: str, script: str) -> None:
    (folder / name).write_text(f"#!/bin/sh\n{script}\n")
    (folder / name).chmod(0o755)


@pytest.mark.parametrize(
    ("plugin", "standalone", "compose"),
    [(True, True, "docker compose"), (False, True, "docker-compose"), (False, False, None)],
    ids=["plugin", "standalone", "none"],
)
def test_make_compose_runs_the_compose_there_is_or_says_how_to_get_one(
    default_project: Path, tmp_path: Path, plugin: bool, standalone: bool, compose: str | None
) -> None:
    """The `docker compose` plugin when it answers, else `docker-compose`; without either, one
    line saying how to get one, not Docker's "unknown shorthand flag: 'p' in -p"."""
    tools = tmp_path / "bin"  # the whole PATH: only these tools, faked, and `id`
    tools.mkdir()
    (tools / "id").symlink_to(shutil.which("id") or "/usr/bin/id")
    answers = "" if plugin else '[ "$1" = compose ] && exit 1'
    fake_tool(tools, "docker", f'{answers}\necho "ran docker $*"')
    if standalone:
        fake_tool(tools, "docker-compose", 'echo "ran docker-compose $*"')
    make = shutil.which("make") or "make"
    result = run_in(
        default_project, make, "--no-print-directory", "compose-down", env={"PATH": str(tools)}
    )
    if compose is None:
        assert result.returncode != 0
        assert result.stderr.splitlines()[0] == (
            "no Docker Compose: install the Compose plugin (`docker compose`) or the standalone "
            "docker-compose: https://docs.docker.com/compose/install/"
        )
        assert "ran " not in result.stdout
        return
    assert result.returncode == 0, result.stdout + result.stderr
    arguments = f"-p {SLUG} -f deploy/compose.yaml down --remove-orphans"
    echoed, ran = result.stdout.splitlines()
    assert echoed.endswith(f" {compose} {arguments}"), echoed  # the Makefile shows the command
    assert ran == f"ran {compose} {arguments}"


# --- Schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAY_KINDS)
def test_every_object_passes_its_strict_schema(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    assert [error for obj in rendered[overlay] for error in schema_errors(obj)] == []


# (overlay, kind, where the misspelled field goes, the misspelled field)
MISSPELLED = [
    ("prod", "Deployment", ["spec", "template", "spec", "containers", 0], "livenesProbe"),
    ("scheduled", "CronJob", ["spec"], "concurencyPolicy"),
    ("kserve", "InferenceService", ["spec", "predictor"], "minReplica"),
    ("kserve", "InferenceService", ["spec", "predictor", "containers", 0], "readinesProbe"),
    ("events", "ScaledJob", ["spec"], "pollingIntervall"),
    ("events", "ScaledJob", ["spec", "jobTargetRef"], "backofLimit"),
    ("events", "TriggerAuthentication", ["spec", "secretTargetRef", 0], "paramter"),
]


@pytest.mark.parametrize(
    ("overlay", "kind", "where", "field"), MISSPELLED, ids=[m[-1] for m in MISSPELLED]
)
def test_a_misspelled_field_fails_naming_the_object_and_the_field(
    rendered: dict[str, list[dict[str, Any]]],
    overlay: str,
    kind: str,
    where: list[str | int],
    field: str,
) -> None:
    obj = copy.deepcopy(next(o for o in rendered[overlay] if o["kind"] == kind))
    parent = obj
    for step in where:
        parent = parent[step]
    parent[field] = 1
    [error] = schema_errors(obj)
    assert error.startswith(f"{kind}/{obj['metadata']['name']}: {field_path(where)}: ")
    assert f"'{field}' was unexpected" in error


def test_an_object_without_a_schema_fails() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert schema_errors(obj) == [
        "Widget/w: no schema for example.com/v1 Widget: add one to tests/schemas"
    ]


def test_compose_file_passes_the_compose_specification(
    default_project: Path, tmp_path: Path
) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return run_in(
            default_project,
            PYTHON,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        )

    compose = default_project / "deploy/compose.yaml"
    result = check(compose)
    assert result.returncode == 0, result.stdout + result.stderr
    misspelled = tmp_path / "compose.yaml"
    misspelled.write_text(compose.read_text().replace("    healthcheck:", "    healthchek:"))
    result = check(misspelled)
    assert result.returncode == 1
    assert "$.services.server" in result.stdout
    assert "'healthchek' was unexpected" in result.stdout


# --- The manifests agree with the image ---------------------------------------------------


def settings_of(objects: list[dict[str, Any]], pod: dict[str, Any]) -> dict[str, str]:
    """The environment a pod's first container gets from its ConfigMaps and its env (not
    from Secrets, which the engineer creates)."""
    container = pod["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


@pytest.mark.parametrize("overlay", ["dev", "prod", "kserve", "store", "kserve-store"])
def test_the_grace_period_outlasts_the_pre_stop_pause_and_graceful_timeout(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    [server] = [o for o in rendered[overlay] if o["kind"] in {"Deployment", "InferenceService"}]
    [pod] = pod_specs(server)
    graceful_timeout = int(settings_of(rendered[overlay], pod)["GRACEFUL_TIMEOUT"])
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + graceful_timeout


def test_compose_stops_the_server_after_graceful_timeout(default_project: Path) -> None:
    compose = yaml.safe_load((default_project / "deploy/compose.yaml").read_text())
    server = compose["services"]["server"]
    grace = int(server["stop_grace_period"].removesuffix("s"))
    assert grace > int(server["environment"]["GRACEFUL_TIMEOUT"])


@pytest.mark.parametrize(("overlay", "kind"), [("batch", "Job"), ("scheduled", "CronJob")])
def test_sharded_jobs_set_shard_count_to_their_completions(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, kind: str
) -> None:
    """JOB_COMPLETION_INDEX comes from Kubernetes; SHARD_COUNT must match completions."""
    sharded = [
        (obj, job)
        for obj in rendered[overlay]
        if obj["kind"] == kind
        for job in job_specs(obj)
        if job.get("completionMode") == "Indexed"
    ]
    assert sharded, f"no Indexed {kind} in {overlay}"
    for obj, job in sharded:
        pod = job["template"]["spec"]
        env = settings_of(rendered[overlay], pod)
        assert int(env["SHARD_COUNT"]) == job["completions"] >= job["parallelism"], obj
        assert job["backoffLimitPerIndex"] >= 1 and pod["restartPolicy"] == "Never"
        assert pod["containers"][0]["args"][0] == "predict"


@pytest.mark.parametrize("overlay", OVERLAY_KINDS)
def test_every_port_is_the_settings_port(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, default_project: Path
) -> None:
    port, grpc_port = settings_port(default_project), settings_port(default_project, "grpc_port")
    objects = rendered[overlay]
    for obj in objects:
        for pod in pod_specs(obj):
            container = pod["containers"][0]
            named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            probes = [container.get(p) for p in ("startupProbe", "livenessProbe", "readinessProbe")]
            for probe in filter(None, probes):
                assert named[probe["httpGet"]["port"]] == port, obj["metadata"]["name"]
            assert set(named.values()) <= {port, grpc_port}
            if named:  # a server: it offers gRPC too, on the port named `grpc`
                assert named.get("grpc") == grpc_port, obj["metadata"]["name"]
            annotations = obj.get("spec", {}).get("template", {}).get("metadata", {})
            annotations = {**annotations.get("annotations", {}), **pod.get("annotations", {})}
            assert annotations.get("prometheus.io/port", str(port)) == str(port)
    if "Service" in OVERLAY_KINDS[overlay]:
        [server] = pod_specs(find(objects, "Deployment"))
        named = {p["name"]: p["containerPort"] for p in server["containers"][0]["ports"]}
        service_ports = find(objects, "Service")["spec"]["ports"]
        admitted = find(objects, "NetworkPolicy")["spec"]["ingress"][0]["ports"]
        assert sorted(named[p["targetPort"]] for p in service_ports) == [port, grpc_port]
        assert sorted(named[p["port"]] for p in admitted) == [port, grpc_port]


def test_compose_serves_the_settings_port(default_project: Path) -> None:
    ports = [settings_port(default_project, name) for name in ("port", "grpc_port")]
    server = yaml.safe_load((default_project / "deploy/compose.yaml").read_text())["services"]
    server = server["server"]
    assert [p.rsplit(":", 1)[1] for p in server["ports"]] == [str(p) for p in ports]
    assert all(p.startswith("127.0.0.1:") for p in server["ports"])
    assert f"127.0.0.1:{ports[0]}/readyz" in " ".join(server["healthcheck"]["test"])


def test_the_images_expose_the_settings_ports(default_project: Path) -> None:
    """The `system` stage, which both the full and the serving image are built on."""
    dockerfile = (default_project / "Dockerfile").read_text()
    system = dockerfile.split("AS system", 1)[1].split("\nFROM ", 1)[0]
    exposed = re.search(r"^EXPOSE (.+)$", system, re.M)
    assert exposed is not None, "the system stage has no EXPOSE"
    ports = [settings_port(default_project, name) for name in ("port", "grpc_port")]
    assert exposed.group(1).split() == [str(p) for p in ports]


def test_settings_in_the_configmap_are_settings_of_the_project(
    rendered: dict[str, list[dict[str, Any]]], default_project: Path
) -> None:
    settings = find(rendered["prod"], "ConfigMap")["data"]
    assert set(settings) <= settings_fields(default_project)


@pytest.mark.parametrize("overlay", OVERLAY_KINDS)
def test_every_pod_runs_as_the_image_user_with_a_read_only_root(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    pods = [(o["metadata"]["name"], pod) for o in rendered[overlay] for pod in pod_specs(o)]
    assert pods
    for name, pod in pods:
        security = pod["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] == IMAGE_USER, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in pod["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, name
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert [m["name"] in empty_dirs for m in tmp] == [True], name
    service_account = find(rendered[overlay], "ServiceAccount")
    assert service_account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAY_KINDS)
def test_every_reference_names_an_object_of_the_overlay(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """ConfigMaps (hashed names included), claims and service accounts the pods use are
    rendered beside them; the only Secrets left out are the ones the engineer creates."""
    objects = rendered[overlay]
    names = Counter((o["kind"], o["metadata"]["name"]) for o in objects)
    used: list[tuple[str, str]] = []
    for obj in objects:
        for pod in pod_specs(obj):
            used.append(("ServiceAccount", pod["serviceAccountName"]))
            for container in pod["containers"]:
                for source in container["envFrom"]:
                    if "secretRef" in source:
                        assert source["secretRef"]["name"] in EXTERNAL_SECRETS
                    else:
                        used.append(("ConfigMap", source["configMapRef"]["name"]))
            for volume in pod.get("volumes", []):
                if "configMap" in volume:
                    used.append(("ConfigMap", volume["configMap"]["name"]))
                if "persistentVolumeClaim" in volume:
                    claim = volume["persistentVolumeClaim"]["claimName"]
                    used.append(("PersistentVolumeClaim", claim))
                if "secret" in volume:
                    assert volume["secret"]["secretName"] in EXTERNAL_SECRETS
    assert [reference for reference in used if reference not in names] == []


@pytest.mark.parametrize("overlay", [o for o in OVERLAY_KINDS if o != "dev"])
def test_every_workload_runs_the_image_the_overlay_sets(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    images = {c["image"] for o in rendered[overlay] for p in pod_specs(o) for c in p["containers"]}
    # The overlays that serve a model from a store: the slim serving image.
    tag = "0.1.0-serve" if overlay in {"store", "kserve-store"} else "0.1.0"
    assert images == {f"ghcr.io/your-org/{SLUG}:{tag}"}
