"""Batch scoring: a file in, the same rows with predictions out, in bounded memory."""

import os
import resource
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Settings
from .data import ChunkWriter, check_frame, file_format, read_chunks
from .features import InputError
from .model import load_artifact
from .scoring import predict_matrix


def say(message: str) -> None:
    print(f"predict: {message}", flush=True)


def with_predictions(
    chunk: pd.DataFrame, labels: Any, probabilities: Any, classes: list[str]
) -> pd.DataFrame:
    scored = chunk.copy()
    scored["prediction"] = labels
    if probabilities is not None:
        for k, name in enumerate(classes):
            scored[f"probability_{name}"] = probabilities[:, k]
    return scored


def predict_file(settings: Settings, source: Path, target: Path, chunk_rows: int) -> int:
    """Score `source` into `target`; returns the row count.

    The output is written to a temporary file beside `target` and renamed at the end, so a
    failed run never leaves a half-written output behind.
    """
    if file_format(source) != file_format(target):
        raise InputError(
            ["--output"], f"use the same format as the input ({file_format(source)}) for the output"
        )
    artifact = load_artifact(settings.model_dir)
    classes = [str(c) for c in artifact.metadata["classes"]]
    started = time.perf_counter()
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    writer = ChunkWriter(partial)
    rows = 0
    try:
        for chunk in read_chunks(source, chunk_rows):
            if chunk.empty:
                continue
            matrix = check_frame(chunk, first_row=rows + 1)
            labels, probabilities = predict_matrix(artifact.model, matrix)
            writer.write(with_predictions(chunk, labels, probabilities, classes))
            rows += len(chunk)
            say(f"{rows} rows scored")
        if rows == 0:
            raise InputError([str(source)], "the file has no rows to score")
        writer.close()
        os.replace(partial, target)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    say(
        f"wrote {rows} rows to {target} in {seconds:.1f} s "
        f"({rows / max(seconds, 1e-9):,.0f} rows/s, peak memory {peak_mb:.0f} MB)"
    )
    return rows
