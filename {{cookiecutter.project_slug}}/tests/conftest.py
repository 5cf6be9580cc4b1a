"""Fixtures shared by the unit tests: a model trained once, settings, an app client, a live
server, and checks that every prediction body must pass.

Nothing here or in the tests names a column, a class or a value of the bundled data: rows come
from the project's training data (data/train/), names and examples from the schema, and the
label a row should get from the trained model itself. Replace the data and its schema, and the
tests follow.
"""

import csv
import functools
import io
import json
import os
import shutil
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import deserialize_bytes_tensor

from {{ cookiecutter.package_name }}.core.artifact import METADATA_FILE, load_artifact
from {{ cookiecutter.package_name }}.core.encoding import encode_json
from {{ cookiecutter.package_name }}.core.model import build_model, library_versions
from {{ cookiecutter.package_name }}.core.schema import (
    FEATURE_NAMES,
    FEATURES,
    SCHEMA,
    TASK,
    Feature,
)
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME, Settings
from {{ cookiecutter.package_name }}.serve.app import create_app
from {{ cookiecutter.package_name }}.training.data import load_training_data
from {{ cookiecutter.package_name }}.training.onnx_check import TOLERANCE
from {{ cookiecutter.package_name }}.training.train import (
    DEFAULT_HYPERPARAMETERS,
    train,
)

from .docker_support import (
    MODEL_MOUNT,
    bind,
    build_image,
    docker_client,
    free_port,
    run_job,
    shared_dir,
)

# The project's training data, which the image holds where `train` looks by default.
TRAINING_DATA = Path(__file__).resolve().parents[1] / "data" / "train"
# One request record: each feature's example value from the schema.
EXAMPLE: dict[str, Any] = {f.name: f.example for f in FEATURES}
CLASSES: list[str] = list(SCHEMA.classes)  # none for a regression
# The V2 outputs: a classifier's labels (BYTES) and class probabilities (FP64, [N, classes]);
# a regressor's values (FP64) only.
REGRESSION = TASK == "regression"
V2_OUTPUTS: list[str] = ["predict"] if REGRESSION else ["predict", "predict_proba"]
PREDICT_DATATYPE = "FP64" if REGRESSION else "BYTES"
# The plots of the training report (report/).
REPORT_PLOTS = (
    ("predicted_vs_actual.png", "residuals.png") if REGRESSION else ("confusion_matrix.png",)
)

# Settings come from environment variables. The machine's own (a developer's PORT, a CI
# job's API_TOKEN or BATCHING) must not change what the tests see: tests that want one set
# it themselves with monkeypatch.
for _name in list(os.environ):
    if _name.lower() in Settings.model_fields:
        del os.environ[_name]


def training_libraries() -> set[str]:
    """Import names of the libraries that train: the framework's (core/model.py) and
    scikit-learn's (the held-out split and the metrics)."""
    distributions = {*library_versions(), "scikit-learn"}
    return {name for name, owners in packages_distributions().items() if distributions & {*owners}}


def make_settings(root: Path, **overrides: object) -> Settings:
    """Settings whose every path but the training data lies under `root`, so tests never touch
    /opt/ml. Training reads the project's data/train/; a test that writes training files gives
    a folder of its own (`channel(root)`)."""
    values: dict[str, object] = {
        "model_dir": root / "model",
        "training_data_dir": TRAINING_DATA,
        "hyperparameters_file": root / "input" / "config" / "hyperparameters.json",
        "failure_file": root / "output" / "failure",
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def channel(root: Path) -> Path:
    """The training folder of SageMaker's layout under `root`, where make_settings' other
    paths are (/opt/ml/input/data/train in the image)."""
    return root / "input" / "data" / "train"


# --- the data: rows, records and values from the training data and the schema ----------


@functools.cache
def _training_data() -> tuple[pd.DataFrame, pd.Series]:
    features, target, _source = load_training_data(TRAINING_DATA)
    return features, target


def training_data() -> tuple[pd.DataFrame, pd.Series]:
    """The project's training data as the model takes it: the features encoded (one column of
    numbers per feature, in the schema's order; as_table and as_records turn them back into
    values) and the target. Copies: change them freely."""
    features, target = _training_data()
    return features.copy(), target.copy()


def training_table() -> tuple[pd.DataFrame, pd.Series]:
    """The project's training data as a data file holds it: the features' values (category
    names, booleans, whole numbers, empty cells) and the target."""
    features, target = training_data()
    return as_table(features), target


def plain(feature: Feature, code: float) -> Any:
    """One number of the model's matrix as the value a request or a data file carries (the
    inverse of core/encoding.py): a category's name, true or false, a whole number, or None
    for a missing value."""
    if np.isnan(code):
        return None
    if feature.type == "category":
        return feature.categories[int(code)]
    if feature.type == "boolean":
        return bool(code)
    if feature.type == "integer":
        return int(code)
    return float(code)


def as_records(features: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of the model's matrix (training_data()'s features) as request records."""
    columns = [[plain(f, code) for code in features[f.name].tolist()] for f in FEATURES]
    return [dict(zip(FEATURE_NAMES, values, strict=True)) for values in zip(*columns, strict=True)]


def as_table(features: pd.DataFrame) -> pd.DataFrame:
    """The model's matrix (training_data()'s features) as a data file holds it, to write as
    CSV, Parquet or JSON Lines."""
    columns: dict[str, Any] = {}
    for f in FEATURES:
        codes = features[f.name].to_numpy()
        columns[f.name] = codes if f.type == "number" else [plain(f, c) for c in codes]
    return pd.DataFrame(columns)


def as_matrix(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Request records as the matrix the model takes, encoded as every protocol encodes."""
    return np.array(
        [[encode_json(f, record[f.name]) for f in FEATURES] for record in records],
        dtype=np.float64,
    ).reshape(-1, len(FEATURES))


def csv_line(record: Mapping[str, Any]) -> str:
    """A record as a line of headerless CSV, the values in the schema's order; a missing
    value is an empty cell."""
    line = io.StringIO()
    values = ["" if record[n] is None else record[n] for n in FEATURE_NAMES]
    csv.writer(line, lineterminator="").writerow(values)
    return line.getvalue()


def in_turn(target: pd.Series) -> np.ndarray:
    """The positions of the rows, the classes taking turns (the first row of each class, then
    the second of each, ...), so that any leading slice holds rows of every class it can."""
    turn = target.groupby(target).cumcount().to_numpy()
    rank = target.map({label: i for i, label in enumerate(CLASSES)}).fillna(-1).to_numpy()
    return np.lexsort((rank, turn))


def varied_rows(count: int = 24, complete: bool = False) -> list[dict[str, Any]]:
    """`count` rows of the training data (all of them, if it has fewer), from every class,
    as request records; only rows without a missing value if `complete`."""
    features, target = training_data()
    if complete:
        whole = features.notna().all(axis=1)
        features, target = features[whole], target[whole]
    return as_records(features.iloc[in_turn(target)[:count]])


def refusing(feature: Feature) -> bool:
    """Whether the feature refuses a value of the wrong kind: a category whose unknown values
    become missing takes any text."""
    return feature.type != "category" or feature.unknown == "error"


def wrong_value(feature: Feature) -> Any:
    """A value of the wrong kind for the feature: text where a number or a boolean belongs, or
    a category it does not know."""
    if feature.type == "category":
        return "-".join(["not", *feature.categories])
    return "wide"


def first(*kinds: Any) -> Feature:
    """The first feature that passes the first of these tests any feature passes; the first
    feature if none does."""
    for kind in kinds:
        for feature in FEATURES:
            if kind(feature):
                return feature
    return FEATURES[0]


# The features the tests give a wrong, a missing or an out-of-range value.
REFUSING = [f for f in FEATURES if refusing(f)] or list(FEATURES)
REQUIRED = first(lambda f: not f.nullable)
NUMERIC = first(lambda f: f.type == "number", lambda f: f.type == "integer")


def unused(name: str) -> str:
    """`name`, or `name` with underscores after it: a column that is not in the schema."""
    while name in FEATURE_NAMES or name == SCHEMA.target:
        name += "_"
    return name


# Columns of the tests' own, beside the features: an id and a note that pass through batch
# scoring, and a field no record may carry.
ID, NOTE, UNKNOWN = unused("id"), unused("note"), unused("colour")


# --- the trained model, and what it answers --------------------------------------------


def fitted(**hyperparameters: object) -> Any:
    """A model fitted on all the training data, with the default hyperparameters but these."""
    features, target = training_data()
    model = build_model({**DEFAULT_HYPERPARAMETERS, **hyperparameters})
    model.fit(features.to_numpy(), target.to_numpy())
    return model


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at a model trained once on the project's training data."""
    settings = make_settings(tmp_path_factory.mktemp("trained"))
    train(settings)
    return settings


@pytest.fixture(scope="session")
def served_model(trained: Settings) -> Any:
    """The trained model as the server loads it (from ONNX, when verified)."""
    return load_artifact(trained.model_dir).model


def predicted(model: Any, records: Sequence[Mapping[str, Any]]) -> list[Any]:
    """What the model itself gives the records, as the protocols answer it: a classifier's
    labels (text), a regressor's values (float64)."""
    answers = model.predict(as_matrix(records))
    if REGRESSION:
        return [float(v) for v in np.asarray(answers, dtype=np.float64).ravel()]
    return [str(label) for label in answers]


@pytest.fixture(scope="session")
def example_label(served_model: Any) -> Any:
    """What the trained model gives EXAMPLE (a classifier's label, a regressor's value): what
    every protocol must answer for it, and the image's baked model too (trained on the same
    data/train/ with the same seed)."""
    return predicted(served_model, [EXAMPLE])[0]


@pytest.fixture(scope="session")
def other_record(served_model: Any, example_label: Any) -> dict[str, Any]:
    """A row of the training data that the trained model labels otherwise than EXAMPLE."""
    rows = varied_rows(1_000)
    for row, label in zip(rows, predicted(served_model, rows), strict=True):
        if label != example_label:
            return row
    raise AssertionError(f"the model labels every row {example_label!r}")


@pytest.fixture
def copied(trained: Settings, tmp_path: Path) -> Path:
    """A copy of the trained artifact, free to damage."""
    return Path(shutil.copytree(trained.model_dir, tmp_path / "model"))


def edit_metadata(model_dir: Path, **changes: object) -> None:
    path = model_dir / METADATA_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.fixture
def client(trained: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(trained)) as test_client:
        wait_until_ready(test_client)
        yield test_client


# --- container tests: one Docker client and one image per session ----------------------


@pytest.fixture(scope="session")
def docker() -> Any:
    return docker_client()


@pytest.fixture(scope="session")
def training_image(docker: Any) -> str:
    """The full image, which trains: $TRAINING_IMAGE, else $IMAGE when that is not the serving
    image, else built from this project once."""
    tag = os.environ.get("TRAINING_IMAGE") or (
        None if os.environ.get("IMAGE_TARGET") == "serve" else os.environ.get("IMAGE")
    )
    if tag:
        docker.images.get(tag)
        return tag
    tag = f"{PROJECT_NAME}:test"
    build_image(docker, tag)
    return tag


@pytest.fixture(scope="session")
def image(docker: Any, training_image: str) -> str:
    """The image under test: $IMAGE if set, else built from this project once: the full
    image, or the slim serving image when IMAGE_TARGET=serve. The full image runs the tests
    `-m "container and not serving_image"`, the serving image `-m "container and not
    full_image"` (`make test-container`, `make test-container-serve`)."""
    tag = os.environ.get("IMAGE")
    if tag:
        docker.images.get(tag)
        return tag
    if os.environ.get("IMAGE_TARGET") != "serve":
        return training_image
    tag = f"{PROJECT_NAME}:test-serve"
    build_image(docker, tag, target="serve")
    return tag


@pytest.fixture(scope="session")
def mounted_model(
    docker: Any, training_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A model trained by the full image's `train` job into a mounted folder."""
    model_dir = shared_dir(tmp_path_factory.mktemp("mounted") / "model")
    config = shared_dir(tmp_path_factory.mktemp("config"))
    (config / "hyperparameters.json").write_text(
        json.dumps({"model_version": "mounted-1", "test_size": "0.3"})
    )
    code, logs = run_job(
        docker,
        training_image,
        ["train"],
        volumes={**bind(model_dir, MODEL_MOUNT), **bind(config, "/opt/ml/input/config", "ro")},
    )
    assert code == 0, logs
    assert ("held-out RMSE" if REGRESSION else "held-out accuracy") in logs, logs
    return model_dir


# --- waiting, metrics and V2 bodies ----------------------------------------------------


def wait_until_ready(test_client: TestClient) -> None:
    for _ in range(200):
        if test_client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError(f"not ready: {test_client.get('/readyz').json()}")


@contextmanager
def live_server(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    """The app under a real uvicorn on a free 127.0.0.1 port, in a thread; yields its URL
    and the app, once it is ready."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started or httpx.get(url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        yield url, app
    finally:
        server.should_exit = True
        thread.join(30)


def metric(text: str, name: str, /, absent: float | None = None, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition: `absent` if there is none,
    and if that is None, the test fails."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    if absent is None:
        raise AssertionError(f"no sample {name}{labels} in the metrics")
    return absent


def assert_consistent(labels: Sequence[str], probabilities: Sequence[Mapping[str, float]]) -> None:
    """Each row's label is its most probable class, and its probabilities sum to 1."""
    assert len(labels) == len(probabilities) > 0
    for label, row in zip(labels, probabilities, strict=True):
        assert label == max(row, key=row.__getitem__), (label, row)
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-9)
        assert all(0.0 <= p <= 1.0 for p in row.values())


def v2_values(output: Mapping[str, Any], data: bytes | None = None) -> list[Any]:
    """A V2 output's elements, flat, from its JSON `data` or, when given, its binary data: a
    `predict` of labels as text, numbers as floats."""
    if data is None:
        return list(np.asarray(output["data"], dtype=object).ravel().tolist())
    if output["datatype"] == "BYTES":
        return [text.decode() for text in deserialize_bytes_tensor(data).tolist()]
    return list(np.frombuffer(data, dtype=NUMPY[output["datatype"]]).astype(np.float64).tolist())


def as_answers(values: Any) -> list[Any]:
    """A client's array of `predict` elements as text (labels, which binary data carries as
    bytes) or floats (a regressor's values)."""
    return [v.decode() if isinstance(v, bytes) else v for v in np.asarray(values).ravel().tolist()]


def v2_probabilities(output: Mapping[str, Any], classes: Sequence[str]) -> list[dict[str, float]]:
    """A V2 `predict_proba` output as one {class: probability} mapping per row."""
    matrix = np.asarray(output["data"], dtype=np.float64).reshape(output["shape"])
    return [dict(zip(classes, row, strict=True)) for row in matrix.tolist()]


# The V2 datatype of a tensor of each feature type, as JSON carries it.
V2_DATATYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "category": "BYTES"}
# Whether the rows fit one [N, features] tensor of numbers: not when a feature is a category,
# whose values are text. The server then refuses that form with this advice, and the tests of
# that form check the refusal instead.
ONE_MATRIX = all(f.type != "category" for f in FEATURES)
MATRIX_REFUSAL = "send one tensor per feature, categories as BYTES"


def json_value(value: Any) -> Any:
    """A value as JSON carries it: NaN (a missing value) as null."""
    return None if isinstance(value, float) and np.isnan(value) else value


def v2_tensors(records: Sequence[Mapping[str, Any]], numbers: str = "FP64") -> list[Any]:
    """One V2 input tensor per feature, of shape [N], holding the records' values: a number
    feature's in the datatype `numbers`, the others' in their own."""
    return [
        {
            "name": f.name,
            "shape": [len(records)],
            "datatype": numbers if f.type == "number" else V2_DATATYPES[f.type],
            "data": [json_value(record[f.name]) for record in records],
        }
        for f in FEATURES
    ]


def v2_body(rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A V2 inference request for the rows (values in the schema's order): one [N, features]
    tensor, or one tensor per feature when a category's text cannot be in one tensor of
    numbers."""
    if not ONE_MATRIX:
        return {"inputs": v2_tensors([dict(zip(FEATURE_NAMES, row, strict=True)) for row in rows])}
    tensor = {"name": "input-0", "shape": [len(rows), len(FEATURES)], "datatype": "FP64"}
    return {"inputs": [{**tensor, "data": [[json_value(v) for v in row] for row in rows]}]}


# --- tensors as binary data and gRPC carry them: one per feature ------------------------


# The little-endian NumPy type of each fixed-size datatype the tests send.
NUMPY: dict[str, np.dtype[Any]] = {
    "FP64": np.dtype("<f8"),
    "FP32": np.dtype("<f4"),
    "BOOL": np.dtype("?"),
}


class Tensor(NamedTuple):
    """One input tensor: its name, its V2 datatype and its elements (shape [N])."""

    name: str
    datatype: str
    array: np.ndarray


def feature_tensors(records: Sequence[Mapping[str, Any]], numbers: str = "FP64") -> list[Tensor]:
    """One tensor per feature holding the records' values, in the schema's order: a number
    feature's in `numbers` (FP64 or FP32) and an integer's in FP64, NaN where a value is
    missing; a boolean's in BOOL, or in FP64 (1, 0, NaN) when a value is missing, which BOOL
    cannot carry; a category's in BYTES, UTF-8 text, empty where a value is missing."""
    tensors = []
    for f in FEATURES:
        values = [record[f.name] for record in records]
        if f.type == "category":
            text = [b"" if v is None else str(v).encode() for v in values]
            tensors.append(Tensor(f.name, "BYTES", np.array(text, dtype=object)))
        elif f.type == "boolean" and None not in values:
            tensors.append(Tensor(f.name, "BOOL", np.array(values, dtype=np.bool_)))
        else:
            datatype = numbers if f.type == "number" else "FP64"
            numeric = [np.nan if v is None else float(v) for v in values]
            tensors.append(Tensor(f.name, datatype, np.array(numeric, dtype=NUMPY[datatype])))
    return tensors


def raw_bytes(tensor: Tensor) -> bytes:
    """The tensor's elements as the protocol's binary form: fixed-size elements little-endian;
    each BYTES element a 4-byte little-endian length, then the bytes."""
    if tensor.datatype == "BYTES":
        return b"".join(struct.pack("<I", len(e)) + e for e in tensor.array.ravel().tolist())
    return bytes(np.ascontiguousarray(tensor.array, dtype=NUMPY[tensor.datatype]).tobytes())


def binary_inputs(tensors: Sequence[Tensor]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The tensors as V2 inputs sent as binary data: the JSON part of each, and its bytes."""
    inputs, buffers = [], []
    for tensor in tensors:
        raw = raw_bytes(tensor)
        inputs.append(
            {
                "name": tensor.name,
                "shape": list(tensor.array.shape),
                "datatype": tensor.datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        buffers.append(raw)
    return inputs, buffers


# Which field of a gRPC tensor's typed `contents` holds each datatype the tests send.
GRPC_CONTENTS = {
    "FP64": "fp64_contents",
    "FP32": "fp32_contents",
    "BOOL": "bool_contents",
    "BYTES": "bytes_contents",
}


def grpc_request(message: Any, tensors: Sequence[Tensor], raw: bool = True, **fields: Any) -> Any:
    """A gRPC ModelInferRequest of the tensors, `message` being the generated class (the
    project's own or tritonclient's): their values in `raw_input_contents`, or in each
    tensor's typed `contents`."""
    request = message(**{"model_name": PROJECT_NAME, **fields})
    for tensor in tensors:
        shape = list(tensor.array.shape)
        added = request.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=shape)
        if raw:
            request.raw_input_contents.append(raw_bytes(tensor))
        else:
            values = tensor.array.ravel().tolist()
            getattr(added.contents, GRPC_CONTENTS[tensor.datatype]).extend(values)
    return request


def as_float32(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records with each number feature's value as float32 holds it: what the server sees
    of values sent in FP32 binary data."""
    numbers = {f.name for f in FEATURES if f.type == "number"}
    return [
        {k: float(np.float32(v)) if k in numbers and v is not None else v for k, v in r.items()}
        for r in records
    ]


def unfit_tensor(feature: Feature) -> tuple[Tensor, str]:
    """A one-element tensor of the feature that the server must refuse, and what the refusal
    says after the tensor's name: a number or integer that is NaN (infinite, if the feature
    is nullable); a boolean that is 2; a category's unknown text (if it refuses unknown
    values) or a number where its text belongs."""
    if feature.type in ("number", "integer"):
        value = np.inf if feature.nullable else np.nan
        return Tensor(feature.name, "FP64", np.array([value])), "data must be finite numbers"
    if feature.type == "boolean":
        two = Tensor(feature.name, "FP64", np.array([2.0]))
        return two, "element 0 has 2.0, which is not true or false"
    if refusing(feature):
        text = wrong_value(feature)
        unknown = Tensor(feature.name, "BYTES", np.array([text.encode()], dtype=object))
        return unknown, f"element 0 has {text!r}, which is not one of its categories"
    code = Tensor(feature.name, "FP64", np.array([0.0]))
    return code, f"{feature.name!r} is a category: send its values as BYTES"


def with_unfit(feature: Feature) -> tuple[list[Tensor], str]:
    """EXAMPLE as one tensor per feature, the feature's holding a value the server must
    refuse (unfit_tensor), and what the refusal says."""
    unfit, message = unfit_tensor(feature)
    tensors = [unfit if t.name == feature.name else t for t in feature_tensors([EXAMPLE])]
    return tensors, message


# --- regression: test doubles and expectations that follow the schema's task ------------
# A classifier answers labels and class probabilities, a regressor values and no
# probabilities: the helpers below let one test check either, as the schema says.

# The columns batch scoring adds to each row: the prediction, then a classifier's
# probability of each class.
SCORE_COLUMNS: list[str] = ["prediction", *(f"probability_{c}" for c in CLASSES)]


class ModelDouble:
    """The trained model behind the prediction core's interface, whatever the task (a
    classifier's `classes_` and `predict_proba`, a regressor's `predict`); every call goes
    through `called(matrix)` first, which a test double overrides."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def classes_(self) -> Any:
        return self.model.classes_

    def called(self, matrix: np.ndarray) -> None:
        """Runs before each model call; nothing here."""

    def predict_proba(self, matrix: np.ndarray) -> Any:
        self.called(matrix)
        return self.model.predict_proba(matrix)

    def predict(self, matrix: np.ndarray) -> Any:
        self.called(matrix)
        return self.model.predict(matrix)


class Overflowing(ModelDouble):
    """The trained model, whose answers (a classifier's probabilities, a regressor's values)
    are NaN for rows holding a value beyond 1e300, as a linear model's arithmetic overflows
    on them. Whatever the framework and the task, the server must refuse such rows, not
    answer NaN."""

    def predict_proba(self, matrix: np.ndarray) -> Any:
        probabilities = np.array(super().predict_proba(matrix), dtype=np.float64)
        probabilities[(np.abs(matrix) > 1e300).any(axis=1)] = np.nan
        return probabilities

    def predict(self, matrix: np.ndarray) -> Any:
        if not REGRESSION:
            return super().predict(matrix)
        values = np.array(super().predict(matrix), dtype=np.float64)
        values[(np.abs(matrix) > 1e300).any(axis=1)] = np.nan
        return values


def predicted_rows(model: Any, matrix: np.ndarray) -> list[Any]:
    """What the model itself gives the rows of the matrix, as the protocols answer it: a
    classifier's labels (text), a regressor's values (float64)."""
    answers = model.predict(matrix)
    if REGRESSION:
        return [float(v) for v in np.asarray(answers, dtype=np.float64).ravel()]
    return [str(label) for label in answers]


def comparable(model: Any, matrix: np.ndarray) -> np.ndarray:
    """What the model gives the rows, on one scale whatever the task, to compare two models
    by: a classifier's class probabilities, a regressor's values in standard deviations of
    the training data's target."""
    if REGRESSION:
        values = np.asarray(model.predict(matrix), dtype=np.float64)
        return values / float(training_data()[1].std())
    return np.asarray(model.predict_proba(matrix), dtype=np.float64)


def held_out_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The training data split as `train` splits it with the default hyperparameters (a
    classification stratified by class): training rows, held-out rows, and their targets."""
    from sklearn.model_selection import train_test_split

    features, target = training_data()
    x_train, x_test, y_train, y_test = train_test_split(
        features.to_numpy(),
        target.to_numpy(),
        test_size=float(DEFAULT_HYPERPARAMETERS["test_size"]),
        random_state=int(DEFAULT_HYPERPARAMETERS["seed"]),
        stratify=None if REGRESSION else target.to_numpy(),
    )
    return x_train, x_test, y_train, y_test


def same_answers(answers: Sequence[Any], expected: Sequence[Any]) -> bool:
    """Whether `answers` are the `expected` ones: the same labels, or a regressor's values
    within the ONNX check's tolerance (onnx_check.py): the other runtime, or a model trained
    elsewhere on the same data with the same seed (the image's), may round its arithmetic
    otherwise."""
    if not REGRESSION:
        return list(answers) == list(expected)
    tolerance = TOLERANCE * float(np.std(training_data()[1]))
    return len(answers) == len(expected) and bool(
        np.allclose(
            np.asarray(answers, np.float64),
            np.asarray(expected, np.float64),
            rtol=0,
            atol=tolerance,
        )
    )
