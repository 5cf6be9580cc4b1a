"""The tabular file formats the project reads and writes, known by their file extension:
CSV, Parquet and JSON Lines. Training reads them with pandas, batch scoring with Arrow."""

from pathlib import PurePath

from .schema import InputError
from .storage import ObjectPath

FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def file_format(path: PurePath | ObjectPath) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise InputError(
            [str(path)], f"{path}: unknown file type {path.suffix!r}; use one of {known}"
        ) from None
