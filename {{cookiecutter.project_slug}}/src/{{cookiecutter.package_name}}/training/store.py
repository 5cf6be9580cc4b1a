"""`train --output s3://bucket/prefix`: the saved artifact copied to object storage, through
the same S3 filesystem (and AWS_* variables) that MODEL_URI reads with
(core/storage.py), so that MODEL_URI=s3://bucket/prefix serves it.

metadata.json is the marker: the prefix's old one is removed first and the new one written
last, once every other file is in place, from memory in one call. It names the SHA-256 of the
model files, so a server that fetches the prefix meanwhile finds no model, and one that
fetches a file whose upload was cut short refuses it: never half of a model. The objects of
the previous artifact that the new one lacks (at the prefix's top and in its report/ folder)
are removed once it is complete; nothing else under the prefix, or beside it, is touched.
"""

import shutil
from pathlib import Path
from typing import Any

from ..core.artifact import METADATA_FILE, REPORT_DIR
from ..core.storage import s3_filesystem
from ..core.uris import redacted
from .publish import PublishError, artifact_files


def check_output(uri: str) -> None:
    """ValueError, before any training, for an output this cannot write."""
    bucket, _, prefix = uri.removeprefix("s3://").strip("/").partition("/")
    if not uri.startswith("s3://") or not bucket or not prefix.strip("/"):
        raise ValueError(
            f"--output {redacted(uri)}: give s3://bucket/prefix, a folder of its own for the "
            "model (the model is saved in MODEL_DIR in any case)"
        )


def upload_artifact(model_dir: Path, uri: str) -> int:
    """Copy the artifact in `model_dir` under `uri`; returns how many files. PublishError
    when the store refuses or cannot be reached."""
    import pyarrow.fs as pafs

    prefix = uri.removeprefix("s3://").strip("/")
    keys = {
        path: f"{prefix}/{path.relative_to(model_dir).as_posix()}"
        for path in artifact_files(model_dir)
        if path.name != METADATA_FILE
    }
    marker = f"{prefix}/{METADATA_FILE}"
    try:
        filesystem = s3_filesystem()
        if filesystem.get_file_info(marker).type == pafs.FileType.File:
            filesystem.delete_file(marker)
        for path, key in keys.items():
            with path.open("rb") as source, filesystem.open_output_stream(key) as out:
                shutil.copyfileobj(source, out, 1 << 20)
        content = (model_dir / METADATA_FILE).read_bytes()
        with filesystem.open_output_stream(marker) as out:
            out.write(content)
        for key in _previous_artifact(filesystem, prefix):
            if key not in keys.values() and key != marker:
                filesystem.delete_file(key)
    except OSError as error:
        message = (str(error).strip().splitlines() or [""])[0]
        raise PublishError(f"{redacted(uri)}: {message}") from None
    return len(keys) + 1


def _previous_artifact(filesystem: Any, prefix: str) -> list[str]:
    """The keys an artifact may hold under `prefix`: its top level and its report folder."""
    import pyarrow.fs as pafs

    found = []
    for folder in (prefix, f"{prefix}/{REPORT_DIR}"):
        selector = pafs.FileSelector(folder, recursive=False, allow_not_found=True)
        found += [
            info.path
            for info in filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
        ]
    return found
