"""The rendered manifests, run with Docker as their pod specs say (see kubelet.py), against
the image the project builds: the manifests and the image cannot drift apart unnoticed.

No cluster runs here. What a cluster adds (scheduling, Services, the HPA, NetworkPolicies,
storage classes) is checked for shape in test_deploy.py; these tests check that every pod,
as written, does its job with this image.
"""

import contextlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from .conftest import Build, docker_support, on_worker, project_data, project_module
from .kubelet import Cluster, PodContainer, docker_options
from .s3_server import CREDENTIALS, upload
from .test_deploy import SLUG, find, kustomize, overlay_dir, pod_specs
from .test_model_uri import baked_model

pytestmark = on_worker("3.11")  # the 3.11 image is built once, on one worker
TOKEN = "manifest-test-token"


def shared(path: Path) -> Path:
    """A folder that stands in for a volume: writable by the image's user, as fsGroup makes it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def wait_for(url: str, status: int = 200, timeout: float = 60, **request: Any) -> float:
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < timeout:
        try:
            last = httpx.get(url, timeout=2, **request).status_code
            if last == status:
                return time.monotonic() - started
        except httpx.TransportError as error:
            last = error
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout} s (last: {last})")


@contextlib.contextmanager
def running(docker: Any, pod: PodContainer) -> Iterator[Any]:
    container = docker.containers.run(**pod.options)
    try:
        yield container
    except BaseException:
        print(container.logs().decode(errors="replace")[-4000:])
        raise
    finally:
        container.remove(force=True)


def run_to_end(docker: Any, pod: PodContainer) -> str:
    with running(docker, pod) as container:
        code = container.wait(timeout=300)["StatusCode"]
        logs = str(container.logs().decode(errors="replace"))
        assert code == 0, logs
        return logs


def pod_of(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [pod] = pod_specs(find(objects, kind, name))
    return pod


def scoring_dataset(project: Path, folder: Path, parts: int = 3, rows: int = 4_000) -> pd.DataFrame:
    """`rows` rows of the project's training data (repeated), without the target, as `parts`
    CSV files, each row with an id."""
    features = project_data(project).rows
    frame = pd.concat([features] * (rows // len(features) + 1), ignore_index=True)[:rows]
    frame.insert(0, "id", [f"row-{i:06d}" for i in range(rows)])
    for k in range(parts):
        frame[k * rows // parts : (k + 1) * rows // parts].to_csv(folder / f"{k}.csv", index=False)
    return frame


def read_parts(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.csv"))
    assert parts, f"no parts in {folder}"
    return pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)


@pytest.fixture(scope="module")
def image_3_11(build: Build) -> tuple[Path, str]:
    return build("3.11")


def test_the_deployment_probes_answer_as_written_and_a_stop_in_the_grace_period_exits_0(
    docker: Any, image_3_11: tuple[Path, str], tmp_path: Path
) -> None:
    project, tag = image_3_11
    objects = kustomize(overlay_dir(project, "prod"))
    pod = pod_of(objects, "Deployment")
    cluster = Cluster(objects, tmp_path, secrets={f"{SLUG}-api-token": {"token": TOKEN}})
    server = docker_options(pod, "server", cluster, tag)
    with running(docker, server) as container:
        # Live at once: the startup and liveness probes pass before the model is loaded.
        assert wait_for(server.probe_url("startupProbe")) < 10
        wait_for(server.probe_url("livenessProbe"))
        wait_for(server.probe_url("readinessProbe"))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        row = project_data(project).example
        assert httpx.post(server.url("/predict"), json=row).status_code == 401
        answer = httpx.post(server.url("/predict"), json=row, headers=auth)
        assert answer.status_code == 200, answer.text
        # The kubelet runs preStop, then sends SIGTERM and waits out the rest of the grace.
        grace = pod["terminationGracePeriodSeconds"]
        started = time.monotonic()
        pre_stop = server.spec["lifecycle"]["preStop"]["exec"]["command"]
        assert container.exec_run(pre_stop).exit_code == 0
        container.stop(timeout=max(int(grace - (time.monotonic() - started)), 1))
        assert container.wait(timeout=grace)["StatusCode"] == 0
        assert time.monotonic() - started < grace


def test_the_deployment_is_live_but_not_ready_until_a_model_is_there(
    docker: Any, image_3_11: tuple[Path, str], tmp_path: Path
) -> None:
    """The scheduled overlay serves the model volume: empty until the first training."""
    project, tag = image_3_11
    objects = kustomize(overlay_dir(project, "scheduled"))
    cluster = Cluster(
        objects,
        tmp_path,
        claims={
            f"{SLUG}-model": shared(tmp_path / "model"),
            f"{SLUG}-data": shared(tmp_path / "d"),
        },
        secrets={f"{SLUG}-api-token": {"token": TOKEN}},
    )
    server = docker_options(pod_of(objects, "Deployment"), "server", cluster, tag)
    with running(docker, server):
        wait_for(server.probe_url("livenessProbe"))
        wait_for(server.probe_url("readinessProbe"), status=503)


def test_the_indexed_job_run_once_per_index_adds_up_to_a_single_run(
    docker: Any, image_3_11: tuple[Path, str], tmp_path: Path
) -> None:
    project, tag = image_3_11
    objects = kustomize(overlay_dir(project, "batch"))
    job = find(objects, "Job")
    data = shared(tmp_path / "data")
    rows = scoring_dataset(project, shared(data / "input"))
    cluster = Cluster(objects, tmp_path, claims={f"{SLUG}-data": data})
    pod = pod_of(objects, "Job")
    assert job["spec"]["completionMode"] == "Indexed"
    # Kubernetes gives each pod of an Indexed Job its index and, through the downward API,
    # the Job's uid; `parallelism` pods run at once.
    for uid in ("first-run", "second-run"):  # applying the Job again scores again
        given = [
            {"JOB_COMPLETION_INDEX": str(index), "BATCH_RUN_ID": uid}
            for index in range(job["spec"]["completions"])
        ]
        with ThreadPoolExecutor(job["spec"]["parallelism"]) as pool:
            list(
                pool.map(
                    lambda env: run_to_end(
                        docker, docker_options(pod, "predict", cluster, tag, env)
                    ),
                    given,
                )
            )
        assert json.loads((data / "scores" / "_SUCCESS").read_text())["run"] == uid
    single = shared(tmp_path / "single")
    logs = docker.containers.run(
        tag,
        ["predict", "--input", "/in", "--output", "/out/all"],
        volumes={str(data / "input"): {"bind": "/in", "mode": "ro"}, str(single): {"bind": "/out"}},
        remove=True,
    )
    assert b"done" in logs
    scores = read_parts(data / "scores")
    pd.testing.assert_frame_equal(scores, read_parts(single / "all"))
    assert list(scores["id"]) == list(rows["id"])
    assert json.loads((data / "scores" / "_SUCCESS").read_text())["rows"] == len(rows)


def test_the_retraining_cronjob_trains_into_the_volume_the_deployment_serves(
    docker: Any, image_3_11: tuple[Path, str], tmp_path: Path
) -> None:
    project, tag = image_3_11
    objects = kustomize(overlay_dir(project, "scheduled"))
    model, data = shared(tmp_path / "model"), shared(tmp_path / "data")
    # Half the training data the baked model learnt from: a model of its own.
    labelled = project_data(project).labelled()[::2]
    labelled.to_csv(shared(data / "train") / "half.csv", index=False)
    cluster = Cluster(
        objects,
        tmp_path,
        claims={f"{SLUG}-model": model, f"{SLUG}-data": data},
        secrets={f"{SLUG}-api-token": {"token": TOKEN}},
    )
    logs = run_to_end(
        docker, docker_options(pod_of(objects, "CronJob", f"{SLUG}-retrain"), "train", cluster, tag)
    )
    assert f"loaded {len(labelled)} rows from 1 file(s) in /opt/ml/input/data/train" in logs, logs
    trained = json.loads((model / "metadata.json").read_text())["model_version"]
    baked = (
        docker.containers.run(
            tag,
            [
                "-c",
                "import json; print(json.load(open('/opt/ml/model/metadata.json'))['model_version'])",
            ],
            entrypoint="python",
            remove=True,
        )
        .decode()
        .strip()
    )
    assert trained != baked
    server = docker_options(pod_of(objects, "Deployment"), "server", cluster, tag)
    with running(docker, server):
        wait_for(server.probe_url("readinessProbe"))
        metadata = httpx.get(server.url("/metadata"), headers={"Authorization": f"Bearer {TOKEN}"})
        assert metadata.json()["model"]["model_version"] == trained

    # The nightly scoring CronJob scores the data volume with the model volume's model.
    scoring_dataset(project, shared(data / "input"), parts=2, rows=1_000)
    nightly = pod_of(objects, "CronJob", f"{SLUG}-score-nightly")
    shards = find(objects, "CronJob", f"{SLUG}-score-nightly")["spec"]["jobTemplate"]["spec"]
    for index in range(shards["completions"]):
        given = {
            "JOB_COMPLETION_INDEX": str(index),
            "JOB_NAME": "score-nightly-29000000",
            "BATCH_RUN_ID": "nightly-uid",
        }
        run_to_end(docker, docker_options(nightly, "predict", cluster, tag, given))
    success = json.loads((data / "scores" / "score-nightly-29000000" / "_SUCCESS").read_text())
    assert success["rows"] == 1_000 and success["model_version"] == trained


def test_the_kserve_predictor_answers_the_open_inference_protocol(
    docker: Any, image_3_11: tuple[Path, str], tmp_path: Path
) -> None:
    project, tag = image_3_11
    objects = kustomize(overlay_dir(project, "kserve"))
    cluster = Cluster(objects, tmp_path, secrets={f"{SLUG}-api-token": {"token": TOKEN}})
    predictor = docker_options(
        pod_of(objects, "InferenceService"), "kserve-container", cluster, tag
    )
    data = project_data(project)
    datatypes = project_module(project, "serve.v2_codec").FEATURE_DATATYPE
    schema = project_module(project, "core.schema")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running(docker, predictor):
        wait_for(predictor.probe_url("readinessProbe"))
        assert httpx.get(predictor.url("/v2/health/ready")).status_code == 200
        # The example record as KServe's clients send it: one tensor per feature.
        body = {
            "inputs": [
                {
                    "name": feature.name,
                    "shape": [1],
                    "datatype": datatypes[feature.type],
                    "data": [data.example[feature.name]],
                }
                for feature in schema.FEATURES
            ]
        }
        answer = httpx.post(predictor.url(f"/v2/models/{SLUG}/infer"), json=body, headers=auth)
        assert answer.status_code == 200, answer.text
        # The label the same model gives the example through the project's own JSON API.
        own = httpx.post(predictor.url("/predict"), json=data.example, headers=auth)
        assert own.status_code == 200, own.text
        [label] = own.json()["predictions"]
        assert label in data.classes
        assert answer.json()["outputs"][0]["data"] == [label]


def on_host_network(pod: PodContainer) -> PodContainer:
    """The pod's container on the host's network, its ports free ones: it reaches servers the
    test started on 127.0.0.1, as a pod reaches the company's store."""
    options = {k: v for k, v in pod.options.items() if k != "ports"}
    ports = {str(p["containerPort"]): docker_support.free_port() for p in pod.spec["ports"]}
    named = {p["name"]: ports[str(p["containerPort"])] for p in pod.spec["ports"] if "name" in p}
    options["network_mode"] = "host"
    options["environment"] = {
        **options["environment"],
        "HOST": "127.0.0.1",
        "PORT": str(ports["8080"]),
        "GRPC_PORT": str(ports["8081"]),
    }
    return PodContainer(options, pod.spec, {**ports, **named})


def test_the_store_overlay_serves_the_model_its_settings_name_with_the_secret_s_credentials(
    docker: Any, build: Build, s3_endpoint: str, tmp_path: Path
) -> None:
    """The slim serving image, as the store overlay runs it: MODEL_URI from the settings, the
    store's credentials from the Secret, the fetched model in its own emptyDir."""
    project, full = build("3.11")
    _project, slim = build("3.11", target="serve")
    objects = kustomize(overlay_dir(project, "store"))
    settings = Cluster(objects, tmp_path).config_map(find(objects, "ConfigMap")["metadata"]["name"])
    bucket, _, prefix = settings["MODEL_URI"].removeprefix("s3://").partition("/")
    model = baked_model(docker, full, tmp_path / "model")
    upload(s3_endpoint, model, prefix, bucket=bucket)
    store = {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint, "AWS_REGION": "us-east-1"}
    cluster = Cluster(
        objects,
        tmp_path,
        secrets={f"{SLUG}-api-token": {"token": TOKEN}, f"{SLUG}-model-store": store},
    )
    server = on_host_network(docker_options(pod_of(objects, "Deployment"), "server", cluster, slim))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running(docker, server) as container:
        wait_for(server.probe_url("readinessProbe"))
        metadata = httpx.get(server.url("/metadata"), headers=auth).json()
        assert metadata["source"] == settings["MODEL_URI"]
        baked = json.loads((model / "metadata.json").read_text())["model_version"]
        assert metadata["model"]["model_version"] == baked
        example = project_data(project).example
        answer = httpx.post(server.url("/predict"), json=example, headers=auth)
        assert answer.status_code == 200, answer.text
        # The fetched model sits in the cache folder the overlay mounts, not in /tmp.
        folder = settings["MODEL_CACHE_DIR"]
        cached = container.exec_run(["sh", "-c", f"ls {folder}/*/metadata.json"])
        assert cached.exit_code == 0, cached.output.decode()
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in container.logs().decode()


def test_the_kserve_store_predictor_serves_what_the_storage_initializer_fetched(
    docker: Any, build: Build, tmp_path: Path
) -> None:
    """KServe's storage initializer puts STORAGE_URI's model in /mnt/models (the test mounts
    a model there, as KServe adds that volume itself); the slim image serves it."""
    project, full = build("3.11")
    _project, slim = build("3.11", target="serve")
    objects = kustomize(overlay_dir(project, "kserve-store"))
    cluster = Cluster(objects, tmp_path, secrets={f"{SLUG}-api-token": {"token": TOKEN}})
    pod = pod_of(objects, "InferenceService")
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STORAGE_URI"].startswith("s3://") and env["MODEL_DIR"] == "/mnt/models"
    model = baked_model(docker, full, tmp_path / "model")
    predictor = docker_options(pod, "kserve-container", cluster, slim)
    predictor.options["volumes"][str(model)] = {"bind": "/mnt/models", "mode": "ro"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running(docker, predictor):
        wait_for(predictor.probe_url("readinessProbe"))
        metadata = httpx.get(predictor.url("/metadata"), headers=auth).json()
        assert metadata["source"] == "/mnt/models"
        baked = json.loads((model / "metadata.json").read_text())["model_version"]
        assert metadata["model"]["model_version"] == baked
        answer = httpx.post(
            predictor.url("/predict"), json=project_data(project).example, headers=auth
        )
        assert answer.status_code == 200, answer.text
