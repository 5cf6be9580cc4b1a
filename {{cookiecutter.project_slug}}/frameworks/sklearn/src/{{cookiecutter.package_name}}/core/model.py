"""The model: scikit-learn, saved with skops. Build it, write it, read it back.

A linear model after the features are prepared: a logistic regression for a classification
task, a ridge regression for a regression task (the schema's `task`). The model file is in
skops format: loading it runs no code, unlike pickle. To use your own model, change
`build_model()` and HYPERPARAMETERS; if skops then reports types it does not trust by
default, review them and add them to TRUSTED_TYPES.
"""

import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .schema import FEATURES, TASK, Feature

MODEL_FILE = "model.skops"

# The model's hyperparameters and their defaults; a hyperparameters file overrides them.
# Both tasks take the same: C, the inverse of the regularisation's strength (the logistic
# regression's C; the ridge regression's alpha is 1 / (2 C), as scikit-learn relates them),
# and max_iter, the most iterations of an iterative solver.
HYPERPARAMETERS: dict[str, Any] = {"C": 1.0, "max_iter": 1000}

# Types, beyond the scikit-learn and NumPy ones skops trusts by default, that this project's
# model may contain. Loading refuses a file holding any type not on this list. SimpleImputer
# records the dtype it was fitted on; skops reads a dtype back from an empty array file,
# without pickle.
TRUSTED_TYPES: list[str] = ["numpy.dtype"]

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def build_model(hyperparameters: Mapping[str, Any]) -> Any:
    """A fresh, unfitted model: the features prepared (`prepare_features`), then a logistic
    regression, or a ridge regression when the task is a regression. Hyperparameters arrive
    as strings from SageMaker."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    strength = float(hyperparameters["C"])
    iterations, seed = int(hyperparameters["max_iter"]), int(hyperparameters["seed"])
    if TASK == "regression":
        step = ("regress", Ridge(alpha=1 / (2 * strength), max_iter=iterations, random_state=seed))
    else:
        step = (
            "classify",
            LogisticRegression(C=strength, max_iter=iterations, random_state=seed),
        )
    return Pipeline([("prepare", prepare_features(FEATURES)), step])


def prepare_features(features: Sequence[Feature]) -> Any:
    """The columns as a linear model needs them, in the schema's encoding (category codes,
    NaN for a missing value): numbers and booleans standardised, each category one-hot
    encoded (a 0/1 column per category), and missing values imputed first: a number with
    its median, a boolean or a category with its most frequent value.

    Numbers with none missing need the scaler alone: one step, as fast as it can be.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not any(f.nullable or f.type == "category" for f in features):
        return StandardScaler()
    # The columns of each type, by position.
    numbers = [j for j, f in enumerate(features) if f.type in ("number", "integer")]
    booleans = [j for j, f in enumerate(features) if f.type == "boolean"]
    categories = [j for j, f in enumerate(features) if f.type == "category"]
    one_hot = OneHotEncoder(
        categories=[
            [float(code) for code in range(len(features[j].categories))] for j in categories
        ],
        sparse_output=False,
    )
    groups = [
        ("numbers", numbers, "median", StandardScaler()),
        ("booleans", booleans, "most_frequent", StandardScaler()),
        ("categories", categories, "most_frequent", one_hot),
    ]
    return ColumnTransformer(
        [
            (name, imputed(encoder, strategy, [features[j] for j in columns]), columns)
            for name, columns, strategy, encoder in groups
            if columns
        ]
    )


def imputed(encoder: Any, strategy: str, features: Sequence[Feature]) -> Any:
    """`encoder`, after an imputer with `strategy` when one of `features` may be missing."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    if not any(f.nullable for f in features):
        return encoder
    # keep_empty_features: a column missing in every training row still gets a value (0).
    impute = SimpleImputer(strategy=strategy, keep_empty_features=True)
    return Pipeline([("impute", impute), ("encode", encoder)])


def library_versions() -> dict[str, str]:
    """The versions that wrote the model, for metadata.json."""
    import sklearn
    import skops

    return {"scikit-learn": sklearn.__version__, "skops": skops.__version__}


def prepare_model_thread() -> None:
    """Inputs are checked before they reach the model thread (no infinity, and NaN only where
    the schema lets a value be missing, which the model imputes), so scikit-learn need not
    check again (its setting is per thread)."""
    import sklearn

    sklearn.set_config(assume_finite=True)


def write_model(model: Any, path: Path) -> None:
    import skops.io

    skops.io.dump(model, path)
    make_reproducible(path)


def read_model(path: Path, metadata: Mapping[str, Any]) -> Any:
    """The fitted model in `path`, refused if it holds a type that is not trusted."""
    import skops.io

    untrusted = [t for t in skops.io.get_untrusted_types(file=path) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ValueError(
            f"it holds types that are not trusted: {', '.join(untrusted)}. "
            "If you know where they come from, add them to TRUSTED_TYPES in model.py."
        )
    return skops.io.load(path, trusted=TRUSTED_TYPES)


def make_reproducible(path: Path) -> None:
    """Rewrite a skops file so that the same model always gives the same bytes.

    skops names each object by its memory address (`id()`), in `schema.json` and in the names
    of the array files, and the zip archive records when each file was written. Renumbering
    the ids in order of appearance and giving every entry one fixed time removes both.
    Loading is unchanged: the ids only have to be equal where the objects are the same.
    """
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    numbers: dict[str, str] = {}

    def number(old: object) -> str:
        return numbers.setdefault(str(old), str(len(numbers) + 1))

    def renumber(node: Any) -> Any:
        if isinstance(node, list):
            return [renumber(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: renumber(value) for key, value in node.items()}
        if "__id__" in node:
            node["__id__"] = int(number(node["__id__"]))
        if isinstance(node.get("file"), str) and node["file"].endswith(".npy"):
            node["file"] = number(node["file"].removesuffix(".npy")) + ".npy"
        return node

    schema = renumber(json.loads(dict((i.filename, d) for i, d in entries)["schema.json"]))
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            name = info.filename
            if name == "schema.json":
                data = json.dumps(schema, indent=2).encode()
            elif name.endswith(".npy"):
                name = number(name.removesuffix(".npy")) + ".npy"
            fixed = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            fixed.compress_type, fixed.external_attr = info.compress_type, 0o644 << 16
            archive.writestr(fixed, data)
