"""`schema infer`: a schema written from a data file, for the user to read and refine.

Each column becomes a feature of the type its values have: booleans, whole numbers, numbers, or
categories when a text column has few distinct values. A column that cannot be a feature (all
empty, text with too many distinct values, dates) is left out, and the reason is reported. The
task follows from the target: text or few whole numbers make a classification, other numbers a
regression; `--task` overrides it.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..core.schema import (
    NAME_PATTERN,
    Feature,
    InputError,
    Schema,
    Task,
    parse_schema,
    write_schema,
)
from .data import label_text, read_chunks

# A text column becomes a category when it has at most this many distinct values, and they
# repeat (at most half as many distinct values as rows); otherwise it is left out.
MAX_CATEGORIES = 50
# A whole-number target with at most this many distinct values is a classification target.
MAX_CLASSES = 20
BOOLEAN_TEXT = {"true": True, "false": False}
# The rows of the example input file that `make predict` scores.
SAMPLE_ROWS = 10


@dataclass(frozen=True)
class Inferred:
    schema: Schema
    rows: int  # with a target
    left_out: dict[str, str]  # column: why it is not a feature
    unlabelled: int = 0  # rows without a target, left out


def infer_files(
    path: Path,
    target: str,
    task: Literal["classification", "regression"] | None,
    ignore: Sequence[str],
    output: Path,
    sample: Path | None,
) -> Inferred:
    """Infer the schema of the file at `path` and write it to `output`; with `sample`, write
    the first rows without the target there, as a CSV file to score. Nothing is written when
    the data cannot make a schema."""
    frame = read_table(path)
    inferred = infer_schema(frame, target, task, ignore, str(path))
    header = (
        f"The data schema, inferred from {path.name} ({inferred.rows} rows) by `schema infer`.\n"
        "Edit it to refine the types, categories and descriptions: the README's \"Use your own\n"
        'data" describes each field. Every API, batch check and test follows from it.'
    )
    write_schema(inferred.schema, output, header)
    if sample is not None:
        frame.drop(columns=[target]).head(SAMPLE_ROWS).to_csv(sample, index=False)
    return inferred


def read_table(path: Path) -> pd.DataFrame:
    """The whole file (CSV, Parquet or JSON Lines), or InputError naming it."""
    frames = list(read_chunks(path, 100_000))
    if not frames:
        raise InputError([str(path)], f"{path}: no rows")
    return pd.concat(frames, ignore_index=True)


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    task: Literal["classification", "regression"] | None = None,
    ignore: Sequence[str] = (),
    source: str = "the data",
) -> Inferred:
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    unknown = [name for name in [target, *ignore] if name not in columns]
    if unknown:
        raise InputError(
            ["columns"],
            f"{source} has no column {', '.join(map(repr, unknown))}; "
            f"its columns: {', '.join(columns)}",
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise InputError(["columns"], f"{source} names column(s) twice: {', '.join(duplicated)}")
    values = frame[target]
    labelled = values.notna()
    if not labelled.any():
        raise InputError([target], f"the target column {target!r} is empty in {source}")
    features, left_out = [], {}
    for name in columns:
        if name == target or name in ignore:
            continue
        # From every row, those without a target too: they are the rows to score, so a
        # feature missing in one of them is nullable (training leaves them out).
        feature = infer_feature(name, frame[name])
        if isinstance(feature, str):
            left_out[name] = feature
        else:
            features.append(feature)
    if not features:
        reasons = "; ".join(f"{name}: {why}" for name, why in left_out.items())
        raise InputError(["columns"], f"no column of {source} can be a feature ({reasons})")
    chosen = infer_task(values[labelled], task)
    classes = (
        sorted(label_text(values[labelled]).unique(), key=natural_order)
        if chosen != "regression"
        else []
    )
    schema = parse_schema(
        {
            "task": chosen,
            "target": target,
            "classes": classes,
            "features": [f.model_dump() for f in features],
        },
        source,
    )
    return Inferred(schema, int(labelled.sum()), left_out, int((~labelled).sum()))


def infer_task(target: pd.Series, task: str | None) -> Task:
    """regression, or binary or multiclass classification by the number of classes."""
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if task is None:
        whole = numeric and bool((target % 1 == 0).all())
        few = target.nunique() <= MAX_CLASSES
        task = "regression" if numeric and not (whole and few) else "classification"
    if task == "regression":
        if not numeric:
            first = target[pd.to_numeric(target, errors="coerce").isna()].iloc[0]
            raise InputError(
                [str(target.name)],
                f"a regression needs a numeric target; {target.name!r} holds {first!r}",
            )
        return "regression"
    count = target.nunique()
    if count < 2:
        raise InputError(
            [str(target.name)], f"the target {target.name!r} has a single value: nothing to learn"
        )
    return "binary" if count == 2 else "multiclass"


def infer_feature(name: str, column: pd.Series) -> Feature | str:
    """The feature a column makes, or the reason it makes none."""
    if not re.match(NAME_PATTERN, name):
        return (
            "its name is not a plain name (letters, digits, _ . -, starting with a letter "
            "or _); rename the column"
        )
    present = column.dropna()
    if present.empty:
        return "it is empty"
    nullable = bool(column.isna().any())
    common = {"name": name, "nullable": nullable}
    if pd.api.types.is_bool_dtype(present) or set(present.astype(str).str.lower().unique()) <= set(
        BOOLEAN_TEXT
    ):
        first = present.iloc[0]
        truth = first if isinstance(first, bool | np.bool_) else BOOLEAN_TEXT[str(first).lower()]
        return Feature(type="boolean", example=bool(truth), **common)
    if pd.api.types.is_datetime64_any_dtype(present):
        return "it holds dates or times, which are not a supported type; derive numbers from it"
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().all():
        whole = bool((numbers % 1 == 0).all())
        example: Any = int(numbers.iloc[0]) if whole else float(numbers.iloc[0])
        return Feature(type="integer" if whole else "number", example=example, **common)
    text = present.astype(str)
    distinct = text.nunique()
    if distinct > MAX_CATEGORIES or distinct > max(len(text) // 2, 2):
        return (
            f"text with {distinct} distinct values in {len(text)} rows is not a category; "
            "encode it as numbers yourself, or list it with --ignore"
        )
    categories = sorted(text.unique(), key=natural_order)
    return Feature(type="category", categories=tuple(categories), example=text.iloc[0], **common)


def natural_order(text: str) -> tuple[Any, ...]:
    """Numbers in numeric order ("2" before "10"), text alphabetically."""
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)
