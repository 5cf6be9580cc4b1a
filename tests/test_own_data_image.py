"""A user's own table in the images, in every framework, as the README's "Use your own data"
says: render, `make data` (schema inferred in the image), `make build`; then batch `predict`
with an `id` column passed through, and the server answering `/predict`, V2 REST, gRPC and
`/invocations` with the same predictions; then the project's own container tests, unchanged.

The table is palmerpenguins' penguins: categories (island, sex), missing values, `species` to
classify and `body_mass_g` to regress. The framework's iris image, built for the other image tests, runs `make data`; the
penguins image reuses its dependency layers, so only the code, data and model layers build."""

import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from .conftest import (
    FROM_WHEELHOUSE,
    PYTHON,
    UNIT_TESTS,
    Build,
    docker_support,
    on_worker,
    render,
    run_in,
)
from .test_image import make, run_container_tests

FRAMEWORKS = ["sklearn", "xgboost", "lightgbm", "pytorch"]
GRPC_PORT = "8081/tcp"
DATATYPES = {"number": "FP64", "integer": "FP64", "boolean": "BOOL", "category": "BYTES"}


def penguins(folder: Path) -> pd.DataFrame:
    """The table with an `id` column, written to folder/penguins.csv."""
    import palmerpenguins

    frame = palmerpenguins.load_penguins()
    frame.insert(0, "id", [f"penguin-{i}" for i in range(len(frame))])
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "penguins.csv", index=False)
    return frame


def schema_features(project: Path) -> list[dict[str, Any]]:
    """The features of the schema `make data` wrote (read as YAML: the package of another
    render may already be imported in this process)."""
    import yaml

    [schema] = project.glob("src/*/schema.yaml")
    return list(yaml.safe_load(schema.read_text())["features"])


@contextmanager
def server_with_grpc(docker: Any, tag: str) -> Iterator[tuple[str, int]]:
    """The image's server with HTTP and gRPC published on free ports: (its URL, gRPC port)."""
    http, rpc = docker_support.free_port(), docker_support.free_port()
    container = docker.containers.run(
        tag, detach=True, ports={"8080/tcp": ("127.0.0.1", http), GRPC_PORT: ("127.0.0.1", rpc)}
    )
    url = f"http://127.0.0.1:{http}"
    try:
        docker_support.wait_for(url + "/readyz", timeout=60)
        yield url, rpc
    except BaseException:
        print(container.logs().decode(errors="replace"))
        raise
    finally:
        container.remove(force=True)


def batch_predict(
    docker: Any, tag: str, table: pd.DataFrame, target: str, folder: Path
) -> pd.DataFrame:
    """`predict` in the image on the table without its target; the scores."""
    data = docker_support.shared_dir(folder / "batch")
    table.drop(columns=[target]).to_csv(data / "unlabelled.csv", index=False)
    code, logs = docker_support.run_job(
        docker,
        tag,
        ["predict", "--input", "/data/unlabelled.csv", "--output", "/data/scores.csv"],
        volumes=docker_support.bind(data, "/data"),
    )
    assert code == 0, logs
    return pd.read_csv(data / "scores.csv")


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON records: a missing value as null, whole numbers as integers."""
    out = []
    for row in rows.to_dict(orient="records"):
        record = {}
        for name, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                record[name] = None
            elif isinstance(value, float) and value.is_integer():
                record[name] = int(value)
            else:
                record[name] = value
        out.append(record)
    return out


def v2_body(rows: pd.DataFrame, features: list[dict[str, Any]]) -> dict[str, Any]:
    """One tensor per feature: numbers as FP64 (NaN or null when missing), categories as
    BYTES (an empty element when missing)."""
    inputs = []
    for feature in features:
        column = rows[feature["name"]]
        if feature["type"] == "category":
            data: list[Any] = ["" if v != v else str(v) for v in column]
        else:
            data = [None if v != v else float(v) for v in column]
        inputs.append(
            {
                "name": feature["name"],
                "datatype": DATATYPES[feature["type"]],
                "shape": [len(rows)],
                "data": data,
            }
        )
    return {"inputs": inputs}


def grpc_predictions(port: int, model: str, body: dict[str, Any]) -> list[Any]:
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    inputs = []
    for tensor in body["inputs"]:
        item = triton.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        values = tensor["data"]
        if tensor["datatype"] == "BYTES":
            item.set_data_from_numpy(np.array([v.encode() for v in values], dtype=object))
        else:
            numbers = [math.nan if v is None else v for v in values]
            item.set_data_from_numpy(np.array(numbers, dtype=np.float64))
        inputs.append(item)
    result = client.infer(model, inputs)
    return [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict").tolist()]


def same_predictions(answer: list[Any], expected: list[Any]) -> bool:
    """Labels equal, or a regressor's values equal to the last bits that text keeps."""
    if all(isinstance(v, str) for v in expected):
        return answer == expected
    return bool(np.allclose(np.asarray(answer, np.float64), expected, rtol=1e-9, atol=0))


# target: what `make data` reports of it
TARGETS = {
    "species": "multiclass (3 classes), target 'species'",
    "body_mass_g": "regression, target 'body_mass_g'",
}
UNKNOWN = {"island": "Atlantis"}  # a category the penguins never came from


# Classification in every framework's image, regression in two: test_own_data.py already
# trains, converts to ONNX and scores every framework on each task with the code the image
# runs, so the images add what only they hold (`make data`, the build, the servers).
MATRIX = [(f, "species") for f in FRAMEWORKS] + [
    ("sklearn", "body_mass_g"),
    ("pytorch", "body_mass_g"),
]


@pytest.mark.parametrize(
    ("framework", "target"),
    [
        pytest.param(f, t, marks=on_worker("3.11" if f == "sklearn" else f"3.11-{f}"))
        for f, t in MATRIX
    ],
)
def test_penguins_go_from_make_data_to_every_protocol(
    docker: Any, build: Build, framework: str, target: str, tmp_path: Path
) -> None:
    iris_project, iris_image = build("3.11", framework=framework)
    project = render(tmp_path / "render", framework=framework)
    table = penguins(tmp_path / "table")
    result = make(
        project,
        "data",
        f"DATA={tmp_path / 'table' / 'penguins.csv'}",
        f"TARGET={target}",
        "IGNORE=id",
        f"IMAGE={iris_image}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert TARGETS[target] in result.stdout, result.stdout
    assert [p.name for p in (project / "data" / "train").iterdir()] == ["penguins.csv"]
    if framework in FROM_WHEELHOUSE:
        shutil.copytree(iris_project / "wheels", project / "wheels", dirs_exist_ok=True)
    tag = f"{iris_image}-penguins-{target.replace('_', '-')}"
    docker.images.build(path=str(project), tag=tag, rm=True, forcerm=True)
    model = project.name  # the project's name, which the V2 and gRPC routes serve under
    try:
        scored = batch_predict(docker, tag, table, target, tmp_path)
        assert scored["id"].tolist() == table["id"].tolist()
        if target == "species":
            agreement = (scored["prediction"] == table[target]).mean()
            assert agreement > 0.9, agreement
        else:
            assert scored["prediction"].dtype == np.float64
            assert scored["prediction"].corr(table[target]) > 0.8
        rows = table.drop(columns=["id", target]).iloc[:12]
        assert rows.isna().any(axis=None), "the rows must hold missing values"
        expected = scored["prediction"].iloc[:12].tolist()
        with server_with_grpc(docker, tag) as (url, rpc):
            answer = httpx.post(url + "/predict", json=records(rows))
            assert answer.status_code == 200, answer.text
            assert same_predictions(answer.json()["predictions"], expected), answer.text
            body = v2_body(rows, schema_features(project))
            v2 = httpx.post(url + f"/v2/models/{model}/infer", json=body)
            assert v2.status_code == 200, v2.text
            assert same_predictions(v2.json()["outputs"][0]["data"], expected), v2.text
            assert same_predictions(grpc_predictions(rpc, model, body), expected)
            invocations = httpx.post(
                url + "/invocations",
                content=rows.to_csv(index=False, header=False),
                headers={"content-type": "text/csv"},
            )
            assert invocations.status_code == 200, invocations.text
            first = [line.split(",")[0] for line in invocations.text.splitlines()]
            as_sent = first if target == "species" else [float(v) for v in first]
            assert same_predictions(as_sent, expected), invocations.text
            refused = httpx.post(url + "/predict", json={**records(rows)[0], **UNKNOWN})
            assert refused.status_code == 422, refused.text
            assert refused.json()["detail"][0]["loc"] == ["body", *UNKNOWN]
        if target == "species" or framework == "sklearn":  # one regression is enough here
            print(run_container_tests(project, tag))
        unit = run_in(project, PYTHON, *UNIT_TESTS)
        assert unit.returncode == 0, unit.stdout[-6000:] + unit.stderr[-3000:]
    finally:
        docker.images.remove(tag, force=True)
