"""Training: data in, a checked and reproducible model artifact out, with its ONNX model."""

import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..core.artifact import OnnxExport, save_artifact
from ..core.model import HYPERPARAMETERS, build_model, library_versions
from ..core.schema import SCHEMA, TARGET, InputError
from ..core.settings import PROJECT_NAME, PROJECT_VERSION, Settings
from ..core.uris import redacted, scrubbed
from .data import data_sha256, load_training_data
from .evaluation import evaluate_classifier, evaluate_regressor
from .onnx_check import convert_and_check
from .publish import PublishError

# The model's own (core/model.py), then those of training: the seed and the held-out share.
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {**HYPERPARAMETERS, "seed": 42, "test_size": 0.25}


def say(message: str) -> None:
    print(f"train: {message}", flush=True)


def read_hyperparameters(path: Path) -> dict[str, Any]:
    """Defaults, overridden by the JSON file when it exists (SageMaker passes strings)."""
    given: dict[str, Any] = {}
    if path.is_file():
        given = json.loads(path.read_text())
        if not isinstance(given, dict):
            raise ValueError(f"{path} must hold a JSON object of hyperparameters")
    # SageMaker adds its own keys (tuning jobs: "_tuning_objective_metric", "sagemaker_*").
    given = {k: v for k, v in given.items() if not k.startswith(("_", "sagemaker_"))}
    unknown = sorted(set(given) - set(DEFAULT_HYPERPARAMETERS) - {"model_version"})
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) in {path}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(DEFAULT_HYPERPARAMETERS))}, model_version"
        )
    return {**DEFAULT_HYPERPARAMETERS, **given}


def train(settings: Settings, output: str | None = None) -> dict[str, Any]:
    """Train, evaluate on a held-out split and save the artifact; then copy it to `output`
    (s3://bucket/prefix) and publish it to MLflow, when asked; returns its metadata."""
    import sklearn
    from sklearn.model_selection import train_test_split

    hyperparameters = read_hyperparameters(settings.hyperparameters_file)
    say(f"reading the training data in {settings.training_data_dir}")
    features, target, source = load_training_data(settings.training_data_dir)
    say(f"loaded {len(features)} rows from {source}")
    if SCHEMA.is_classification:
        check_classes(target)
    seed = int(hyperparameters["seed"])
    x_train, x_test, y_train, y_test = train_test_split(
        features.to_numpy(),
        target.to_numpy(),
        test_size=float(hyperparameters["test_size"]),
        random_state=seed,
        stratify=target.to_numpy() if SCHEMA.is_classification else None,
    )
    say(f"fitting on {len(x_train)} rows, holding out {len(x_test)} (seed {seed})")
    model = build_model(hyperparameters)
    model.fit(x_train, y_train)

    predicted = model.predict(x_test)
    if SCHEMA.is_classification:
        classes = [str(c) for c in model.classes_]
        evaluation = evaluate_classifier(y_test, predicted, classes, len(x_train))
    else:
        classes = []
        evaluation = evaluate_regressor(y_test, np.asarray(predicted, np.float64), y_train)
    metrics = evaluation.metrics
    say(evaluation.summary)
    onnx = export_and_check(model, x_test, x_train, y_train)

    created = datetime.now(UTC)
    metadata = {
        "model_name": PROJECT_NAME,
        # Unless one is given, save_artifact names the version after the model's content.
        "model_version": str(hyperparameters.get("model_version") or ""),
        "project_version": PROJECT_VERSION,
        "created": created.isoformat(timespec="seconds"),
        "features": [f.model_dump(mode="json") for f in SCHEMA.features],
        "target": TARGET,
        "task": SCHEMA.task,
        "classes": classes,
        "metrics": metrics,
        "hyperparameters": hyperparameters,
        "training_data": {
            "source": source,
            "rows": len(features),
            "sha256": data_sha256(features, target),
        },
        "libraries": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            # The held-out split and the metrics are scikit-learn's.
            "scikit-learn": sklearn.__version__,
            **library_versions(),
        },
    }
    report = evaluation.report
    saved = save_artifact(settings.model_dir, model, metadata, report, onnx)
    say(f"saved model version {saved.metadata['model_version']} to {settings.model_dir}")
    if saved.late_signals:
        names = ", ".join(saved.late_signals)
        say(f"{names} arrived while the new model was being put in place: it is complete")
    try:
        share(settings, output, saved.metadata)
    except PublishError:
        raise
    except Exception as error:  # whatever fails now, the new model is saved
        message = f"{type(error).__name__}: {error}"
        for uri in (output, settings.mlflow_tracking_uri):
            message = scrubbed(message, uri) if uri else message
        raise PublishError(message) from error
    return saved.metadata


def share(settings: Settings, output: str | None, metadata: dict[str, Any]) -> None:
    """The saved model copied to `output` and published to MLflow, when asked."""
    if output:
        from .store import upload_artifact

        count = upload_artifact(settings.model_dir, output)
        say(f"copied the model's {count} files to {redacted(output)}, metadata.json last")
    if settings.mlflow_tracking_uri:
        from .publish import publish

        say(f"publishing to MLflow at {redacted(settings.mlflow_tracking_uri)}")
        say(publish(settings, settings.model_dir, metadata).message)


def check_classes(target: Any) -> None:
    """Every class of the schema has rows, and enough of them to hold one out."""
    counts = target.value_counts()
    absent = [c for c in SCHEMA.classes if c not in counts.index]
    if absent:
        raise InputError(
            [TARGET],
            f"the schema's class(es) {', '.join(map(repr, absent))} have no row in the training "
            "data: add rows, or remove the class from the schema's classes",
        )
    lonely = [str(c) for c, n in counts.items() if n < 2]
    if lonely:
        raise InputError(
            [TARGET],
            f"{len(lonely)} of the {len(counts)} classes of {TARGET!r} have a single row "
            f"({', '.join(lonely[:5])}{', ...' if len(lonely) > 5 else ''}): each class needs "
            "two rows or more. If the target is a measured quantity, it is a regression: "
            f"`schema infer PATH --target {TARGET} --task regression`",
        )


def export_and_check(
    model: Any, held_out: np.ndarray, trained_on: np.ndarray, target: np.ndarray
) -> OnnxExport:
    """The model in ONNX, checked against itself on the held-out and the training rows
    (onnx_check.py; a regressor's tolerance follows from the training `target`); when that
    fails, the reason, and the native model will serve."""
    say("converting the model to ONNX and checking it against the model")
    checks = {
        "held-out": np.array(held_out, dtype=np.float64),
        "training": np.array(trained_on, dtype=np.float64),
    }
    onnx = convert_and_check(model, checks, target)
    report = onnx.report
    if onnx.content is None:
        say(f"no ONNX model: {report['reason']}. The native model will serve.")
    else:
        agreement = "the same labels, probabilities" if SCHEMA.is_classification else "values"
        say(
            f"ONNX model verified ({report['converter']} {report['converter_version']}, "
            f"{', '.join(f'{d} opset {v}' for d, v in report['opset'].items())}): "
            f"{agreement} within {report['tolerance']:.2g} (largest difference "
            f"{report['max_abs_difference']:.2g})"
        )
    return onnx


def write_failure(settings: Settings, reason: str) -> None:
    """SageMaker shows the content of /opt/ml/output/failure as the job's failure reason."""
    folder = settings.failure_file.parent
    if folder.is_dir():
        try:
            settings.failure_file.write_text(reason + "\n")
        except OSError as error:
            print(f"train: could not write {settings.failure_file}: {error}", file=sys.stderr)
