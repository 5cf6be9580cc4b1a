"""The runtimes in the image: the server loads the verified ONNX model without the training
framework, falls back to the native model with the reason, and the slim serving image
serves and scores with neither training nor Dask in it.

Both images run these (`make test-container`, `make test-container-serve`), but for the
tests marked for one of them: `full_image` (it trains, it loads the framework) or
`serving_image` (it holds no training library).
"""

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.core.artifact import load_artifact
from {{ cookiecutter.package_name }}.core.runtime import ONNX_FILE
from {{ cookiecutter.package_name }}.training.onnx_check import TOLERANCE

from .conftest import (
    EXAMPLE,
    REGRESSION,
    predicted,
    same_answers,
    training_libraries,
    training_table,
)
from .docker_support import MODEL_MOUNT, bind, run_job, serving, shared_dir

pytestmark = pytest.mark.container

# Run inside the container: where each of the given packages would be imported from, or
# null when the image does not have it.
PACKAGE_DIRS = """
import importlib.util, json, os, sys
found = {}
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    found[name] = None if spec is None or not spec.origin else os.path.dirname(spec.origin)
print(json.dumps(found))
"""


def package_dirs(container: Any, names: list[str]) -> dict[str, str | None]:
    code, output = container.exec_run(["python", "-c", PACKAGE_DIRS, *names])
    assert code == 0, output.decode()
    found: dict[str, str | None] = json.loads(output.decode().splitlines()[-1])
    return found


def mapped_files(container: Any) -> set[str]:
    """The files the server process (PID 1) has mapped: every shared library it loaded."""
    code, output = container.exec_run(["cat", "/proc/1/maps"])
    assert code == 0, output.decode()
    return {line.split()[-1] for line in output.decode().splitlines() if "/" in line}


def loaded_from(container: Any, packages: list[str]) -> list[str]:
    """Which of `packages` the server process loaded compiled code from."""
    dirs = {name: path for name, path in package_dirs(container, packages).items() if path}
    files = mapped_files(container)
    return sorted(
        name for name, path in dirs.items() if any(f.startswith(path + "/") for f in files)
    )


@pytest.fixture(scope="module")
def unverified_model(mounted_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of a trained model whose ONNX model did not pass its check at training."""
    model_dir = Path(shutil.copytree(mounted_model, tmp_path_factory.mktemp("unverified") / "m"))
    metadata = json.loads((model_dir / "metadata.json").read_text())
    reason = "probabilities differ by up to 0.2, more than 1e-05"
    metadata["onnx"] = {**metadata["onnx"], "verified": False, "reason": reason}
    del metadata["onnx"]["sha256"]
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    (model_dir / ONNX_FILE).unlink()
    shared_dir(model_dir)
    return model_dir


def test_the_server_runs_onnx_without_loading_the_training_framework(
    docker: Any, image: str, example_label: Any
) -> None:
    libraries = sorted(training_libraries())
    with serving(docker, image) as server:
        predictions = httpx.post(server.url + "/predict", json=EXAMPLE).json()["predictions"]
        assert same_answers(predictions, [example_label]), predictions
        assert httpx.get(server.url + "/metadata").json()["runtime"] == {
            "name": "onnx",
            "reason": None,
        }
        assert loaded_from(server.container, ["onnxruntime"]) == ["onnxruntime"]
        assert loaded_from(server.container, libraries) == []


@pytest.mark.full_image
def test_native_runtime_loads_the_framework_in_the_full_image(
    docker: Any, image: str, example_label: Any
) -> None:
    """The check above can fail: forced onto the native model, the server loads it."""
    with serving(docker, image, environment={"MODEL_RUNTIME": "native"}) as server:
        predictions = httpx.post(server.url + "/predict", json=EXAMPLE).json()["predictions"]
        assert same_answers(predictions, [example_label]), predictions
        assert httpx.get(server.url + "/metadata").json()["runtime"]["name"] == "native"
        assert loaded_from(server.container, sorted(training_libraries())) != []


@pytest.mark.full_image
def test_the_full_image_serves_a_model_without_a_verified_onnx_model_natively(
    docker: Any, image: str, unverified_model: Path
) -> None:
    expected = predicted(load_artifact(unverified_model).model, [EXAMPLE])
    volumes = bind(unverified_model, MODEL_MOUNT, "ro")
    with serving(docker, image, volumes=volumes) as server:
        predictions = httpx.post(server.url + "/predict", json=EXAMPLE).json()["predictions"]
        assert same_answers(predictions, expected), predictions
        runtime = httpx.get(server.url + "/metadata").json()["runtime"]
        assert runtime["name"] == "native"
        assert "probabilities differ by up to 0.2, more than 1e-05" in runtime["reason"]
        assert 'runtime="native"' in httpx.get(server.url + "/metrics").text
        assert '"runtime_reason": "no verified ONNX model: probabilities differ' in server.logs()


@pytest.mark.serving_image
def test_the_serving_image_refuses_a_model_without_a_verified_onnx_model(
    docker: Any, image: str, unverified_model: Path
) -> None:
    """It can only run ONNX models: start-up stops, and says why."""
    code, logs = run_job(
        docker, image, ["serve"], volumes=bind(unverified_model, MODEL_MOUNT, "ro")
    )
    assert code == 2, logs
    assert "configuration error: MODEL_RUNTIME: MODEL_RUNTIME=onnx, but this model" in logs
    assert "probabilities differ by up to 0.2, more than 1e-05" in logs


def test_forcing_onnx_for_a_model_without_one_stops_start_up(
    docker: Any, image: str, unverified_model: Path
) -> None:
    code, logs = run_job(
        docker,
        image,
        ["serve"],
        environment={"MODEL_RUNTIME": "onnx"},
        volumes=bind(unverified_model, MODEL_MOUNT, "ro"),
    )
    assert code == 2, logs
    assert "configuration error: MODEL_RUNTIME" in logs


def test_batch_predict_from_onnx_matches_the_native_model(
    docker: Any, image: str, training_image: str, tmp_path: Path
) -> None:
    """The image under test scores from ONNX; the full image, forced onto the native model,
    scores the same file: the same labels, or a regressor's values within the ONNX check's
    tolerance."""
    data = shared_dir(tmp_path / "data")
    features, _ = training_table()
    features.to_csv(data / "in.csv", index=False)
    command = ["predict", "--input", "/data/in.csv", "--output"]
    code, logs = run_job(docker, image, [*command, "/data/onnx.csv"], volumes=bind(data, "/data"))
    assert code == 0, logs
    assert "runtime onnx" in logs
    code, logs = run_job(
        docker,
        training_image,
        [*command, "/data/native.csv"],
        environment={"MODEL_RUNTIME": "native"},
        volumes=bind(data, "/data"),
    )
    assert code == 0, logs
    assert "runtime native" in logs
    onnx, native = pd.read_csv(data / "onnx.csv"), pd.read_csv(data / "native.csv")
    assert len(onnx) == len(native) == len(features)
    if not REGRESSION:
        assert onnx["prediction"].tolist() == native["prediction"].tolist()
        pd.testing.assert_frame_equal(onnx, native, check_exact=False, rtol=0, atol=TOLERANCE)
    else:
        assert same_answers(onnx["prediction"].tolist(), native["prediction"].tolist())


# --- the slim serving image only ----------------------------------------------------------------


@pytest.mark.serving_image
def test_the_serving_image_holds_no_training_library(docker: Any, image: str) -> None:
    container = docker.containers.run(image, ["sleep", "30"], entrypoint="", detach=True)
    try:
        found = package_dirs(container, [*sorted(training_libraries()), "pandas", "dask"])
    finally:
        container.remove(force=True)
    assert found == dict.fromkeys(found), f"found in the serving image: {found}"


@pytest.mark.serving_image
def test_the_serving_image_says_train_and_dask_are_not_in_it(docker: Any, image: str) -> None:
    code, logs = run_job(docker, image, ["train"])
    assert code == 2, logs
    assert "train: not in this image" in logs
    command = ["predict", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:8786"]
    code, logs = run_job(docker, image, [*command, "--input", "/tmp", "--output", "/tmp/o"])
    assert code == 2, logs
    assert "the dask engine is not in this image" in logs
