"""The data schema: reading schema.yaml, inferring a schema from a table, the encoding of
each type into the model's numbers, and the errors of data that cannot work.

The tables here are made up for the tests, with their own columns: none is the project's."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from {{ cookiecutter.package_name }}.core.encoding import (
    BadValue,
    encode_array,
    encode_json,
    encode_text,
)
from {{ cookiecutter.package_name }}.core.schema import (
    SCHEMA,
    SCHEMA_FILE,
    Feature,
    InputError,
    SchemaError,
    parse_schema,
    read_schema,
    write_schema,
)
from {{ cookiecutter.package_name }}.training.schema_inference import (
    MAX_CATEGORIES,
    infer_schema,
)

PACKAGE = "{{ cookiecutter.package_name }}"
SOURCE_DIR = Path(__file__).resolve().parents[1] / "src"
COLOUR = Feature(
    name="colour", type="category", categories=("red", "green"), nullable=True, example="red"
)
STRICT_COLOUR = Feature(name="colour", type="category", categories=("red", "green"), example="red")
LENIENT_COLOUR = COLOUR.model_copy(update={"unknown": "missing"})
FLAG = Feature(name="flag", type="boolean", example=True)
COUNT = Feature(name="count", type="integer", example=3)
SIZE = Feature(name="size", type="number", nullable=True, example=1.5)


def mixed_table(rows: int = 60) -> pd.DataFrame:
    generator = np.random.default_rng(0)
    size = generator.normal(10, 2, rows)
    size[::7] = np.nan
    return pd.DataFrame(
        {
            "size": size,
            "count": generator.integers(0, 9, rows),
            "flag": generator.integers(0, 2, rows).astype(bool),
            "colour": generator.choice(["red", "green", "blue"], rows),
            "note": [f"free text {i}" for i in range(rows)],
            "empty": [None] * rows,
            "when": pd.date_range("2026-01-01", periods=rows, freq="D"),
            "label": generator.choice(["yes", "no"], rows),
            "amount": generator.normal(100, 10, rows),
        }
    )


def test_the_projects_schema_file_is_valid_and_round_trips(tmp_path: Path) -> None:
    assert read_schema(SCHEMA_FILE) == SCHEMA
    copy = tmp_path / "schema.yaml"
    write_schema(SCHEMA, copy, "a header\nof two lines")
    assert copy.read_text().startswith("# a header\n# of two lines\n")
    assert read_schema(copy) == SCHEMA


def test_inference_finds_each_type_missingness_and_the_task() -> None:
    inferred = infer_schema(mixed_table(), "label", ignore=["amount"])
    features = {f.name: f for f in inferred.schema.features}
    assert inferred.schema.task == "binary" and inferred.schema.classes == ("no", "yes")
    assert features["size"].type == "number" and features["size"].nullable
    assert features["count"].type == "integer" and not features["count"].nullable
    assert features["flag"].type == "boolean"
    assert features["colour"].type == "category"
    assert features["colour"].categories == ("blue", "green", "red")
    assert set(features) == {"size", "count", "flag", "colour"}
    assert set(inferred.left_out) == {"note", "empty", "when"}
    assert "distinct values" in inferred.left_out["note"]
    assert "empty" in inferred.left_out["empty"]
    assert "dates" in inferred.left_out["when"]


def test_inference_leaves_out_and_counts_the_rows_without_a_target() -> None:
    table = mixed_table()
    table.loc[[1, 2, 7], "label"] = None
    inferred = infer_schema(table, "label", ignore=["amount"])
    assert (inferred.rows, inferred.unlabelled) == (len(table) - 3, 3)


def test_inference_chooses_regression_for_a_measured_target_and_obeys_the_override() -> None:
    table = mixed_table()
    assert infer_schema(table, "amount", ignore=["label"]).schema.task == "regression"
    assert infer_schema(table, "count", ignore=["label"]).schema.task == "multiclass"
    regression = infer_schema(table, "count", task="regression", ignore=["label"])
    assert regression.schema.task == "regression" and regression.schema.classes == ()


def test_a_text_column_with_many_values_is_left_out_with_the_reason() -> None:
    rows = 4 * MAX_CATEGORIES
    table = pd.DataFrame(
        {"code": [f"c{i % (MAX_CATEGORIES + 1)}" for i in range(rows)], "x": range(rows)}
    )
    table["label"] = ["a", "b"] * (rows // 2)
    inferred = infer_schema(table, "label")
    assert "code" in inferred.left_out
    assert f"{MAX_CATEGORIES + 1} distinct values" in inferred.left_out["code"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "nope"}, "has no column 'nope'"),
        (
            {"drop": ["size", "count", "flag", "colour", "note", "when", "amount"]},
            "can be a feature",
        ),
        ({"single_class": True}, "has a single value"),
        ({"regression_text": True}, "a regression needs a numeric target"),
        ({"empty_target": True}, "is empty"),
    ],
)
def test_inference_refuses_data_that_cannot_work(change: dict[str, object], message: str) -> None:
    table, target, task = mixed_table(), str(change.get("target", "label")), None
    if drop := change.get("drop"):
        table = table.drop(columns=list(drop))  # type: ignore[call-overload]  # a list of names
    if change.get("single_class"):
        table["label"] = "yes"
    if change.get("regression_text"):
        task = "regression"
    if change.get("empty_target"):
        table["label"] = None
    with pytest.raises(InputError, match=message):
        infer_schema(table, target, task)  # type: ignore[arg-type]  # None or "regression"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"task": "binary", "target": "t", "classes": ["a"], "features": []}, "features"),
        (
            {"task": "binary", "target": "t", "classes": ["a", "b"], "features": [{"name": "c"}]},
            "features.0.type",
        ),
        (
            {
                "task": "multiclass",
                "target": "t",
                "classes": ["a", "b"],
                "features": [{"name": "c", "type": "number", "example": 1}],
            },
            "2 classes: task binary",
        ),
        (
            {
                "task": "regression",
                "target": "t",
                "features": [{"name": "c", "type": "category", "example": "x"}],
            },
            "needs its categories",
        ),
        (
            {
                "task": "regression",
                "target": "c",
                "features": [{"name": "c", "type": "number", "example": 1}],
            },
            "is also a feature",
        ),
    ],
)
def test_a_wrong_schema_is_refused_naming_the_field(document: object, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as caught:
        parse_schema(document, "schema.yaml")
    assert str(caught.value).startswith("schema.yaml: ")


def test_a_schema_file_that_is_not_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text("task: [unclosed\n")
    with pytest.raises(SchemaError, match=f"{path}: not valid YAML"):
        read_schema(path)


def test_each_type_encodes_to_the_models_numbers() -> None:
    assert encode_json(COLOUR, "green") == 1.0
    assert math.isnan(encode_json(COLOUR, None))
    assert encode_json(FLAG, True) == 1.0 and encode_text(FLAG, "False") == 0.0
    assert encode_text(COUNT, " 4 ") == 4.0
    assert math.isnan(encode_text(SIZE, ""))
    assert math.isnan(encode_json(LENIENT_COLOUR, "purple"))
    column = pa.array(["red", None, "green", ""])
    np.testing.assert_array_equal(encode_array(COLOUR, column), [0.0, np.nan, 1.0, np.nan])
    np.testing.assert_array_equal(encode_array(FLAG, pa.array([True, False])), [1.0, 0.0])
    np.testing.assert_array_equal(encode_array(SIZE, pa.array([1.5, None])), [1.5, np.nan])


@pytest.mark.parametrize(
    ("feature", "value", "problem"),
    [
        (STRICT_COLOUR, "purple", "not one of its categories ('red', 'green')"),
        (STRICT_COLOUR, None, "is missing, and the feature is not nullable"),
        (FLAG, 1, "expected true or false"),
        (COUNT, 2.5, "expected a whole number"),
        (COUNT, "3", "expected a number"),
        (SIZE, math.inf, "finite number"),
    ],
)
def test_a_value_that_does_not_fit_its_feature_says_why(
    feature: Feature, value: object, problem: str
) -> None:
    with pytest.raises(BadValue, match=problem.replace("(", r"\(").replace(")", r"\)")):
        encode_json(feature, value)


@pytest.mark.parametrize(
    ("feature", "column", "row", "problem"),
    [
        (STRICT_COLOUR, pa.array(["red", "green", "purple"]), 2, "'purple'"),
        (COUNT, pa.array(["1", "x"]), 1, "'x', which is not a number"),
        (COUNT, pa.array([1.0, 2.5]), 1, "not a whole number"),
        (FLAG, pa.array(["true", "maybe"]), 1, "not true or false"),
        (STRICT_COLOUR, pa.array(["red", None]), 1, "is empty"),
        (SIZE, pa.array([True, False]), 0, "not numbers"),
    ],
)
def test_a_column_names_the_row_of_its_first_bad_value(
    feature: Feature, column: pa.Array, row: int, problem: str
) -> None:
    with pytest.raises(BadValue, match=problem) as caught:
        encode_array(feature, column)
    assert caught.value.index == row


def test_schema_infer_writes_nothing_when_the_data_cannot_work(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    mixed_table().assign(label="yes").to_csv(table, index=False)
    output, sample = tmp_path / "schema.yaml", tmp_path / "sample.csv"
    command = [sys.executable, "-m", PACKAGE, "schema", "infer", str(table)]
    result = subprocess.run(
        [*command, "--target", "label", "--output", str(output), "--sample", str(sample)],
        env={**os.environ, "PYTHONPATH": str(SOURCE_DIR)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "schema infer: failed: the target 'label' has a single value: nothing to learn"
    ]
    assert not output.exists() and not sample.exists()


def test_schema_infer_writes_the_schema_and_a_sample_to_score(tmp_path: Path) -> None:
    table = tmp_path / "table.parquet"
    mixed_table().to_parquet(table)
    output, sample = tmp_path / "schema.yaml", tmp_path / "sample.csv"
    command = [sys.executable, "-m", PACKAGE, "schema", "infer", str(table)]
    result = subprocess.run(
        [
            *command,
            "--target",
            "label",
            "--ignore",
            "amount",
            "--output",
            str(output),
            "--sample",
            str(sample),
        ],
        env={**os.environ, "PYTHONPATH": str(SOURCE_DIR)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "binary (2 classes), target 'label', 60 rows" in result.stdout
    assert "left out 'note'" in result.stdout
    schema = read_schema(output)
    assert [f.name for f in schema.features] == ["size", "count", "flag", "colour"]
    scored = pd.read_csv(sample)
    assert len(scored) == 10 and "label" not in scored.columns
