"""The tabular file formats the project reads and writes, known by their file extension:
CSV, Parquet and JSON Lines. Training reads them with pandas, batch scoring with Arrow."""

from pathlib import Path

from .schema import InputError

FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise InputError(
            [str(path)], f"{path}: unknown file type {path.suffix!r}; use one of {known}"
        ) from None
