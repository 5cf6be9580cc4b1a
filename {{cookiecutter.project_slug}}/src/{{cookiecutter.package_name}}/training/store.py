"""`train --output s3://bucket/prefix`: the saved artifact copied to object storage, through
the same S3 filesystem (and AWS_* variables) that MODEL_URI reads with
(core/model_source.py), so that MODEL_URI=s3://bucket/prefix serves it.

metadata.json is the marker: the prefix's old one is removed first and the new one written
last, once every other file is in place. It names the SHA-256 of the model files, so a
server that fetches the prefix meanwhile finds no model, never a half-written one; each
object appears whole or not at all (an interrupted upload leaves none). Objects under the
prefix that the new artifact lacks are removed once it is complete.
"""

import shutil
from pathlib import Path

from ..core.artifact import METADATA_FILE
from ..core.model_source import s3_filesystem
from ..core.uris import redacted
from .publish import PublishError, artifact_files


def check_output(uri: str) -> None:
    """ValueError, before any training, for an output this cannot write."""
    if not uri.startswith("s3://") or not uri.removeprefix("s3://").strip("/"):
        raise ValueError(
            f"--output {redacted(uri)}: give s3://bucket/prefix (the model is saved in "
            "MODEL_DIR in any case)"
        )


def upload_artifact(model_dir: Path, uri: str) -> int:
    """Copy the artifact in `model_dir` under `uri`; returns how many files. PublishError
    when the store refuses or cannot be reached."""
    import pyarrow.fs as pafs

    prefix = uri.removeprefix("s3://").strip("/")
    files = sorted(artifact_files(model_dir), key=lambda p: p.name == METADATA_FILE)
    keys = {path: f"{prefix}/{path.relative_to(model_dir).as_posix()}" for path in files}
    try:
        filesystem = s3_filesystem()
        marker = filesystem.get_file_info(f"{prefix}/{METADATA_FILE}")
        if marker.type == pafs.FileType.File:
            filesystem.delete_file(marker.path)
        for path, key in keys.items():
            with path.open("rb") as source, filesystem.open_output_stream(key) as out:
                shutil.copyfileobj(source, out, 1 << 20)
        found = filesystem.get_file_info(pafs.FileSelector(prefix, recursive=True))
        for info in found:
            if info.type == pafs.FileType.File and info.path not in keys.values():
                filesystem.delete_file(info.path)
    except OSError as error:
        message = (str(error).strip().splitlines() or [""])[0]
        raise PublishError(f"{redacted(uri)}: {message}") from None
    return len(files)
