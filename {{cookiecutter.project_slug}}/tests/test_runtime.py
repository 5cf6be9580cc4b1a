"""The ONNX fast path: exported and checked at training, chosen from the artifact, refused
when it cannot be trusted, and replaced by the native model, with the reason, when it
cannot be used."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.core import model as model_module
from {{ cookiecutter.package_name }}.core.artifact import (
    METADATA_FILE,
    ArtifactError,
    load_artifact,
    sha256_file,
)
from {{ cookiecutter.package_name }}.core.model import build_model
from {{ cookiecutter.package_name }}.core.runtime import (
    ONNX_FILE,
    ONNX_VALUES,
    OnnxModel,
    OnnxRegressor,
    RuntimeSettingError,
)
from {{ cookiecutter.package_name }}.core.schema import FEATURES, Feature
from {{ cookiecutter.package_name }}.core.settings import (
    FRAMEWORK,
    PROJECT_NAME,
    Settings,
)
from {{ cookiecutter.package_name }}.serve.app import create_app
from {{ cookiecutter.package_name }}.training import onnx_convert
from {{ cookiecutter.package_name }}.training.onnx_check import TOLERANCE, opsets
from {{ cookiecutter.package_name }}.training.train import (
    DEFAULT_HYPERPARAMETERS,
    train,
)

from .conftest import (
    CLASSES,
    EXAMPLE,
    REGRESSION,
    as_matrix,
    edit_metadata,
    held_out_split,
    make_settings,
    metric,
    predicted,
    training_data,
    training_libraries,
    training_table,
    unused,
    varied_rows,
    wait_until_ready,
)

SOURCE_DIR = Path(__file__).resolve().parents[1] / "src"


def read_metadata(model_dir: Path) -> dict[str, object]:
    metadata: dict[str, object] = json.loads((model_dir / METADATA_FILE).read_text())
    return metadata


@pytest.fixture
def unconvertible(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at a model whose conversion to ONNX failed at training."""

    def refuse(_model: object, _features: int) -> bytes:
        raise NotImplementedError("no converter for this model")

    settings = make_settings(tmp_path_factory.mktemp("unconvertible"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_convert, "convert", refuse)
        train(settings)
    return settings


# --- training: export and check ---------------------------------------------------------


def test_training_records_a_verified_onnx_model_and_its_check(trained: Settings) -> None:
    metadata = read_metadata(trained.model_dir)
    report = metadata["onnx"]
    assert isinstance(report, dict) and isinstance(metadata["metrics"], dict)
    assert report["verified"] is True and report["reason"] is None
    assert report["converter"] == onnx_convert.CONVERTER
    assert report["converter_version"] == onnx_convert.converter_version()
    content = (trained.model_dir / ONNX_FILE).read_bytes()
    assert report["opset"] == opsets(content) != {}
    assert report["sha256"] == sha256_file(trained.model_dir / ONNX_FILE)
    assert report["tolerance"] == expected_tolerance()
    assert 0 <= report["max_abs_difference"] <= report["tolerance"]
    checked = report["rows_checked"]
    assert isinstance(checked, dict)
    assert checked["held-out"] == metadata["metrics"]["test_rows"]
    assert checked["training"] == metadata["metrics"]["train_rows"]
    assert all(rows > 0 for rows in checked.values()), checked


def expected_tolerance() -> float:
    """The difference the ONNX check allows: a classifier's probabilities differ by
    TOLERANCE at most, a regressor's values by TOLERANCE times the standard deviation of the
    target it was trained on."""
    if not REGRESSION:
        return TOLERANCE
    _, _, trained_on, _ = held_out_split()
    return TOLERANCE * float(np.std(trained_on.astype(np.float64)))


def test_the_onnx_model_answers_as_the_native_model(trained: Settings) -> None:
    onnx, native = load_artifact(trained.model_dir), load_artifact(trained.model_dir, "native")
    assert (onnx.runtime.name, native.runtime.name) == ("onnx", "native")
    kind = OnnxRegressor if REGRESSION else OnnxModel
    assert isinstance(onnx.model, kind) and not isinstance(native.model, kind)
    rows = as_matrix(varied_rows(50))
    if REGRESSION:  # values within the check's tolerance, which the metadata records
        tolerance = onnx.metadata["onnx"]["tolerance"]
        assert tolerance == expected_tolerance() > 0
        values, native_values = onnx.model.predict(rows), native.model.predict(rows)
        assert values.shape == (len(rows),) and values.dtype == np.float64
        np.testing.assert_allclose(values, native_values, rtol=0, atol=tolerance)
        return
    assert isinstance(onnx.model, OnnxModel)
    np.testing.assert_array_equal(onnx.model.predict(rows), native.model.predict(rows))
    np.testing.assert_allclose(
        onnx.model.predict_proba(rows), native.model.predict_proba(rows), rtol=0, atol=TOLERANCE
    )


def test_a_model_that_cannot_be_converted_still_trains_with_the_reason(
    unconvertible: Settings,
) -> None:
    report = read_metadata(unconvertible.model_dir)["onnx"]
    assert isinstance(report, dict)
    assert report["verified"] is False
    assert report["reason"] == (
        "the model cannot be converted to ONNX: NotImplementedError: no converter for this model"
    )
    assert not (unconvertible.model_dir / ONNX_FILE).exists()


def test_an_onnx_model_that_disagrees_with_the_model_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong conversion, here another model's (fitted on shuffled labels), fails the
    check: its labels differ, and the reason names a row; a regressor's values differ by more
    than the tolerance, and the reason says by how much."""
    convert = onnx_convert.convert
    features, target = training_data()
    shuffled = np.random.default_rng(0).permutation(target.to_numpy())
    other = build_model(DEFAULT_HYPERPARAMETERS).fit(features.to_numpy(), shuffled)
    monkeypatch.setattr(onnx_convert, "convert", lambda _model, width: convert(other, width))
    settings = make_settings(tmp_path)
    train(settings)
    report = read_metadata(settings.model_dir)["onnx"]
    assert isinstance(report, dict)
    assert report["verified"] is False
    if REGRESSION:
        largest, tolerance = report["max_abs_difference"], report["tolerance"]
        assert largest > tolerance > 0
        assert (
            report["reason"] == f"values differ by up to {largest:.3g}, more than {tolerance:.3g}"
        )
    else:
        assert str(report["reason"]).startswith("ONNX Runtime gives other labels on ")
    assert not (settings.model_dir / ONNX_FILE).exists()
    assert load_artifact(settings.model_dir).runtime.name == "native"


# --- the choice, and what it refuses -----------------------------------------------------


def test_without_a_verified_onnx_model_the_native_model_serves_and_says_why(
    unconvertible: Settings,
) -> None:
    artifact = load_artifact(unconvertible.model_dir)
    assert artifact.runtime.name == "native"
    assert artifact.runtime.reason == (
        "no verified ONNX model: the model cannot be converted to ONNX: "
        "NotImplementedError: no converter for this model"
    )
    with TestClient(create_app(unconvertible)) as client:
        wait_until_ready(client)
        expected = predicted(artifact.model, [EXAMPLE])
        assert client.post("/predict", json=EXAMPLE).json()["predictions"] == expected
        assert client.get("/metadata").json()["runtime"] == {
            "name": "native",
            "reason": artifact.runtime.reason,
        }
        assert client.get(f"/v2/models/{PROJECT_NAME}").json()["platform"] == FRAMEWORK
        text = client.get("/metrics").text
        info: dict[str, Any] = {
            "name": PROJECT_NAME,
            "runtime": "native",
            "runtime_reason": artifact.runtime.reason,
        }
        assert metric(text, "model_info", **info) == 1


def test_the_verified_onnx_model_serves_by_default(client: TestClient) -> None:
    assert client.get("/metadata").json()["runtime"] == {"name": "onnx", "reason": None}
    assert client.get(f"/v2/models/{PROJECT_NAME}").json()["platform"] == "onnxruntime_onnx"
    assert metric(client.get("/metrics").text, "model_info", runtime="onnx", runtime_reason="") == 1


def test_forcing_onnx_without_a_verified_model_is_a_configuration_error(
    unconvertible: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Imported here: the server module loads the gRPC code, which a container test run must
    # not (see test_container_grpc.py), and this module's helpers serve those tests too.
    from {{ cookiecutter.package_name }}.serve.run import run

    forced = unconvertible.model_copy(update={"model_runtime": "onnx"})
    with pytest.raises(RuntimeSettingError, match="MODEL_RUNTIME=onnx, but this model has no"):
        load_artifact(forced.model_dir, "onnx")
    assert run(forced) == 2  # before any server starts
    assert "configuration error: MODEL_RUNTIME: MODEL_RUNTIME=onnx" in capsys.readouterr().err


def test_predict_forced_onto_onnx_without_a_verified_model_exits_2(
    unconvertible: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from {{ cookiecutter.package_name }}.core.settings import get_settings

    monkeypatch.setenv("MODEL_DIR", str(unconvertible.model_dir))
    monkeypatch.setenv("MODEL_RUNTIME", "onnx")
    get_settings.cache_clear()
    source = tmp_path / "in.csv"
    training_table()[0].to_csv(source, index=False)
    try:
        code = main(["predict", "--input", str(source), "--output", str(tmp_path / "out.csv")])
    finally:
        get_settings.cache_clear()
    assert code == 2
    assert "configuration error: MODEL_RUNTIME" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_a_changed_onnx_file_is_refused(copied: Path) -> None:
    path = copied / ONNX_FILE
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(ArtifactError, match=f"{path} does not match the hash"):
        load_artifact(copied)


def test_a_missing_onnx_file_is_refused(copied: Path) -> None:
    (copied / ONNX_FILE).unlink()
    with pytest.raises(ArtifactError, match=f"{copied / ONNX_FILE} is missing"):
        load_artifact(copied)


def two_values_a_row(features: int) -> bytes:
    """An ONNX model of a regressor's input and output names that gives two values a row:
    the sum of the features, twice."""
    from onnx import TensorProto, helper

    weights = helper.make_tensor("weights", TensorProto.DOUBLE, [features, 2], [1.0] * features * 2)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "weights"], [ONNX_VALUES])],
        "two-values",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, features])],
        [helper.make_tensor_value_info(ONNX_VALUES, TensorProto.DOUBLE, [None, 2])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


@pytest.mark.parametrize("kind", ["features", "outputs"])
def test_an_onnx_model_that_disagrees_with_the_metadata_is_refused(
    copied: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another model's ONNX file in place, its hash recorded: one that takes a feature more
    (the model built for a schema with one more), or gives a class more (a regressor's: a
    value more a row), than metadata.json (and the schema) name."""
    features, target = training_data()
    rows, labels = features.to_numpy(), target.to_numpy().copy()
    path = copied / ONNX_FILE
    if kind == "features":
        one_more = Feature(name=unused("extra"), type="number", example=0.0)
        monkeypatch.setattr(model_module, "FEATURES", (*FEATURES, one_more))
        rows = np.column_stack([rows, np.zeros(len(rows))])
        reason = f"takes {len(FEATURES) + 1} features, and metadata.json names {len(FEATURES)}"
    elif REGRESSION:
        reason = "gives 2 values a row, and a regressor gives one"
    else:
        extra = "extra"
        while extra in CLASSES:
            extra += "_"
        labels[::5] = extra
        reason = f"gives {len(CLASSES) + 1} probabilities, and metadata.json names {len(CLASSES)}"
    if kind == "outputs" and REGRESSION:
        path.write_bytes(two_values_a_row(rows.shape[1]))
    else:
        other = build_model(DEFAULT_HYPERPARAMETERS).fit(rows, labels)
        path.write_bytes(onnx_convert.convert(other, rows.shape[1]))
    report = read_metadata(copied)["onnx"]
    assert isinstance(report, dict)
    edit_metadata(copied, onnx={**report, "sha256": sha256_file(path)})
    with pytest.raises(ArtifactError, match=f"cannot load {re.escape(str(path))}: .*{reason}"):
        load_artifact(copied)


# --- the training framework is never imported on the ONNX path ---------------------------

# Serves one request and scores one file in a fresh interpreter, then prints the top-level
# modules it imported.
SERVE_AND_SCORE = """
import json, sys
from fastapi.testclient import TestClient
from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.serve.app import create_app
with TestClient(create_app()) as client:
    while client.get("/readyz").status_code != 200:
        pass
    assert client.post("/predict", json=json.loads(sys.argv[1])).status_code == 200
assert main(["predict", "--input", sys.argv[2], "--output", sys.argv[3]]) == 0
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("runtime", ["auto", "native"])
def test_serving_and_scoring_from_onnx_never_import_the_training_framework(
    trained: Settings, tmp_path: Path, runtime: str
) -> None:
    """With MODEL_RUNTIME=native, the same check sees the framework imported: it can fail."""
    source = tmp_path / "in.csv"
    training_table()[0].to_csv(source, index=False)
    environment = {
        **os.environ,
        "PYTHONPATH": str(SOURCE_DIR),
        "MODEL_DIR": str(trained.model_dir),
        "MODEL_RUNTIME": runtime,
    }
    finished = subprocess.run(
        [sys.executable, "-c", SERVE_AND_SCORE, json.dumps(EXAMPLE), source, tmp_path / "out.csv"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    imported = set(json.loads(finished.stdout.splitlines()[-1]))
    libraries = training_libraries()
    assert libraries, "no training library found installed"
    if runtime == "auto":
        assert "onnxruntime" in imported
        assert not imported & libraries, f"imported: {sorted(imported & libraries)}"
    else:
        assert imported & libraries
