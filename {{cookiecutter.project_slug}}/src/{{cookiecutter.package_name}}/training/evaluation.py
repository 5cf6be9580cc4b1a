"""The held-out evaluation of a trained model, per task: its metrics, the line training logs,
and the report saved beside the model (metrics.json and a plot)."""

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float | int]
    summary: str  # one line for the training log
    report: dict[str, bytes]  # file name: content, saved in the artifact's report folder


def evaluate_classifier(
    y_test: np.ndarray, predicted: np.ndarray, classes: list[str], train_rows: int
) -> Evaluation:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    metrics: dict[str, float | int] = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 6),
        "f1_macro": round(float(f1_score(y_test, predicted, average="macro")), 6),
        "test_rows": len(y_test),
        "train_rows": train_rows,
    }
    matrix = confusion_matrix(y_test, predicted, labels=classes)
    report = {**metrics, "confusion_matrix": matrix.tolist(), "labels": classes}
    return Evaluation(
        metrics,
        f"held-out accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['f1_macro']:.4f}",
        {
            "metrics.json": (json.dumps(report, indent=2) + "\n").encode(),
            "confusion_matrix.png": confusion_matrix_png(matrix, classes),
        },
    )


def evaluate_regressor(
    y_test: np.ndarray, predicted: np.ndarray, y_train: np.ndarray
) -> Evaluation:
    """RMSE, MAE and R² on the held-out rows, beside the same figures of a baseline that
    predicts the training mean for every row: a model should beat it."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    baseline = np.full(len(y_test), float(np.mean(y_train)))

    def figures(values: np.ndarray) -> dict[str, float]:
        return {
            "rmse": round(float(np.sqrt(mean_squared_error(y_test, values))), 6),
            "mae": round(float(mean_absolute_error(y_test, values)), 6),
            "r2": round(float(r2_score(y_test, values)), 6),
        }

    model, mean = figures(predicted), figures(baseline)
    metrics: dict[str, float | int] = {
        **model,
        **{f"baseline_{name}": value for name, value in mean.items()},
        "test_rows": len(y_test),
        "train_rows": len(y_train),
    }
    return Evaluation(
        metrics,
        f"held-out RMSE {model['rmse']:.4g} (predicting the mean: {mean['rmse']:.4g}), "
        f"MAE {model['mae']:.4g}, R² {model['r2']:.4f}",
        {
            "metrics.json": (json.dumps(metrics, indent=2) + "\n").encode(),
            "predicted_vs_actual.png": scatter_png(
                y_test,
                predicted,
                "Predicted against actual (held-out split)",
                "actual",
                "predicted",
                diagonal=True,
            ),
            "residuals.png": scatter_png(
                predicted,
                y_test - predicted,
                "Residuals (held-out split)",
                "predicted",
                "actual - predicted",
                diagonal=False,
            ),
        },
    )


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def scatter_png(
    x: np.ndarray, y: np.ndarray, title: str, x_label: str, y_label: str, diagonal: bool
) -> bytes:
    """A scatter plot drawn with Pillow (fast to import); with `diagonal`, the line y = x,
    else the line y = 0."""
    from PIL import Image, ImageDraw, ImageFont

    font, small = ImageFont.load_default(size=14), ImageFont.load_default(size=12)
    size, left, top = 360, 70, 40
    image = Image.new("RGB", (left + size + 20, top + size + 50), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left + size / 2, 20), title, font=font, anchor="mm", fill="black")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    low_x, high_x = float(x.min()), float(x.max())
    low_y, high_y = float(y.min()), float(y.max())
    if diagonal:
        low_x = low_y = min(low_x, low_y)
        high_x = high_y = max(high_x, high_y)
    if not diagonal:
        low_y, high_y = min(low_y, 0.0), max(high_y, 0.0)

    def at(a: float, b: float) -> tuple[float, float]:
        u = (a - low_x) / ((high_x - low_x) or 1.0)
        v = (b - low_y) / ((high_y - low_y) or 1.0)
        return left + u * size, top + size - v * size

    draw.rectangle((left, top, left + size, top + size), outline="grey")
    reference = (
        (at(low_x, low_y), at(high_x, high_y)) if diagonal else (at(low_x, 0), at(high_x, 0))
    )
    draw.line(reference, fill="grey", width=1)
    for a, b in zip(x.tolist(), y.tolist(), strict=True):
        px, py = at(a, b)
        draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=(8, 81, 156))
    draw.text((left + size / 2, top + size + 30), x_label, font=font, anchor="mm", fill="black")
    draw.text((8, top + size / 2), y_label, font=small, anchor="lm", fill="black")
    for value, anchor, where in (
        (low_x, "lt", at(low_x, low_y)),
        (high_x, "rt", at(high_x, low_y)),
    ):
        draw.text(
            (where[0], top + size + 6), f"{value:.3g}", font=small, anchor=anchor, fill="black"
        )
    for value, where in ((low_y, at(low_x, low_y)), (high_y, at(low_x, high_y))):
        draw.text((left - 6, where[1]), f"{value:.3g}", font=small, anchor="rm", fill="black")
    return _png(image)


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
    return _png(image)
