"""Training: data in, a checked and reproducible model artifact out, with its ONNX model."""

import io
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..core.artifact import OnnxExport, save_artifact
from ..core.model import HYPERPARAMETERS, build_model, library_versions
from ..core.schema import FEATURES, TARGET, load_sample
from ..core.settings import PROJECT_NAME, PROJECT_VERSION, Settings
from .data import data_sha256, load_training_data
from .onnx_check import convert_and_check

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


def confusion_matrix_png(matrix: np.ndarray, labels: list[str]) -> bytes:
    """The confusion matrix as a small PNG heat map, drawn with Pillow (fast to import)."""
    from PIL import Image, ImageDraw, ImageFont

    font, small = ImageFont.load_default(size=14), ImageFont.load_default(size=12)
    cell, left, top, n = 70, 130, 50, len(labels)
    width, height = left + n * cell + 20, top + n * cell + 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text(
        (width / 2, 20), "Confusion matrix (held-out split)", font=font, anchor="mm", fill="black"
    )
    peak = max(int(matrix.max()), 1)
    for i in range(n):
        for j in range(n):
            shade = float(matrix[i, j]) / peak
            colour = tuple(int(255 - shade * (255 - c)) for c in (8, 81, 156))
            x, y = left + j * cell, top + i * cell
            draw.rectangle((x, y, x + cell, y + cell), fill=colour, outline="white")
            text_colour = "white" if shade > 0.5 else "black"
            draw.text(
                (x + cell / 2, y + cell / 2),
                str(int(matrix[i, j])),
                font=font,
                anchor="mm",
                fill=text_colour,
            )
        draw.text(
            (left - 8, top + i * cell + cell / 2), labels[i], font=small, anchor="rm", fill="black"
        )
        draw.text(
            (left + i * cell + cell / 2, top + n * cell + 8),
            labels[i],
            font=small,
            anchor="mt",
            fill="black",
        )
    draw.text(
        (left + n * cell / 2, top + n * cell + 45),
        "predicted",
        font=font,
        anchor="mm",
        fill="black",
    )
    draw.text((8, top + n * cell / 2), "true", font=font, anchor="lm", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def train(settings: Settings) -> dict[str, Any]:
    """Train, evaluate on a held-out split and save the artifact; returns its metadata."""
    import sklearn
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    from sklearn.model_selection import train_test_split

    hyperparameters = read_hyperparameters(settings.hyperparameters_file)
    say(f"reading the training data ({settings.training_data_dir}, else the bundled sample)")
    features, target, source = load_training_data(settings.training_data_dir)
    say(f"loaded {len(features)} rows from {source}")
    seed = int(hyperparameters["seed"])
    x_train, x_test, y_train, y_test = train_test_split(
        features.to_numpy(),
        target.to_numpy(),
        test_size=float(hyperparameters["test_size"]),
        random_state=seed,
        stratify=target.to_numpy(),
    )
    say(f"fitting on {len(x_train)} rows, holding out {len(x_test)} (seed {seed})")
    model = build_model(hyperparameters)
    model.fit(x_train, y_train)

    predicted = model.predict(x_test)
    classes = [str(c) for c in model.classes_]
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 6),
        "f1_macro": round(float(f1_score(y_test, predicted, average="macro")), 6),
        "test_rows": len(x_test),
        "train_rows": len(x_train),
    }
    say(f"held-out accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['f1_macro']:.4f}")
    matrix = confusion_matrix(y_test, predicted, labels=classes)
    onnx = export_and_check(model, x_test)

    created = datetime.now(UTC)
    metadata = {
        "model_name": PROJECT_NAME,
        # Unless one is given, save_artifact names the version after the model's content.
        "model_version": str(hyperparameters.get("model_version") or ""),
        "project_version": PROJECT_VERSION,
        "created": created.isoformat(timespec="seconds"),
        "features": [
            {"name": f.name, "type": f.type, "description": f.description} for f in FEATURES
        ],
        "target": TARGET,
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
    report = {
        "metrics.json": (
            json.dumps(
                {**metrics, "confusion_matrix": matrix.tolist(), "labels": classes}, indent=2
            )
            + "\n"
        ).encode(),
        "confusion_matrix.png": confusion_matrix_png(matrix, classes),
    }
    saved = save_artifact(settings.model_dir, model, metadata, report, onnx)
    say(f"saved model version {saved.metadata['model_version']} to {settings.model_dir}")
    if saved.late_signals:
        names = ", ".join(saved.late_signals)
        say(f"{names} arrived while the new model was being put in place: it is complete")
    return saved.metadata


def export_and_check(model: Any, held_out: np.ndarray) -> OnnxExport:
    """The model in ONNX, checked against itself on the held-out rows and the bundled sample
    (onnx_check.py); when that fails, the reason, and the native model will serve."""
    say("converting the model to ONNX and checking it against the model")
    checks = {
        "held-out": np.array(held_out, dtype=np.float64),
        "sample": np.array(load_sample()[0].to_numpy(), dtype=np.float64),
    }
    onnx = convert_and_check(model, checks)
    report = onnx.report
    if onnx.content is None:
        say(f"no ONNX model: {report['reason']}. The native model will serve.")
    else:
        say(
            f"ONNX model verified ({report['converter']} {report['converter_version']}, "
            f"{', '.join(f'{d} opset {v}' for d, v in report['opset'].items())}): the same "
            f"labels, probabilities within {report['tolerance']:g} (largest difference "
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
