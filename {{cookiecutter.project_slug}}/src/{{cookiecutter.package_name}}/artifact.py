"""The model artifact: saved atomically, loaded only once its hash and framework check out.

An artifact is a folder holding the model file (its name and format are model.py's: a format
whose loading runs no code, never pickle), `metadata.json` and a `report/` folder.
`metadata.json` names the model file's SHA-256 and the framework that wrote it, so a loader
refuses a file that is incomplete, changed or from another framework before it parses it.
"""

import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .model import FRAMEWORK, MODEL_FILE, read_model, write_model

METADATA_FILE = "metadata.json"
REPORT_DIR = "report"

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ArtifactError(RuntimeError):
    """The artifact is missing, incomplete or not safe to load."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SavedArtifact(NamedTuple):
    metadata: dict[str, Any]  # as written, with the model file's hash and the version
    late_signals: list[str]  # stop signals that arrived while the new model was put in place


def save_artifact(
    model_dir: Path, model: Any, metadata: dict[str, Any], report: Mapping[str, bytes]
) -> SavedArtifact:
    """Write the artifact into `model_dir`, replacing the previous one only once all is written.

    Everything goes to a temporary folder inside `model_dir` first (same file system, so the
    final renames are atomic). Until those renames, an interruption or a failure leaves the
    previous artifact as it was; the renames themselves run with SIGINT/SIGTERM held back.
    `metadata.json` goes last and names the model file's hash, so a loader can never pair a
    new model with old metadata unnoticed. Without a `model_version`, the model gets the start
    of that hash as its version: the same model, the same version.

    A stop signal that arrives during the renames does not undo them: the new model is in
    place all the same, and the caller reports that.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=model_dir))
    try:
        write_model(model, staging / MODEL_FILE)
        # Readable by all, like the files written beside it: some libraries write theirs
        # for the owner and the group only.
        (staging / MODEL_FILE).chmod(0o644)
        digest = sha256_file(staging / MODEL_FILE)
        metadata = {
            **metadata,
            "framework": FRAMEWORK,
            "model_version": metadata.get("model_version") or digest[:12],
            "model_sha256": digest,
        }
        (staging / REPORT_DIR).mkdir()
        for name, content in report.items():
            (staging / REPORT_DIR / name).write_bytes(content)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        for path in staging.rglob("*"):
            if path.is_file():
                with path.open("rb") as handle:
                    os.fsync(handle.fileno())
        with stop_signals_held() as arrived:
            _commit(staging, model_dir)
        return SavedArtifact(metadata, arrived)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def stop_signals_held() -> Iterator[list[str]]:
    """Record SIGINT and SIGTERM instead of acting on them while the body runs; yields the
    names of those that arrived. Python runs signal handlers in the main thread only, so
    swapping the handlers there holds back a signal whichever thread the kernel gave it to."""
    arrived: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield arrived
        return

    def record(signum: int, _frame: object) -> None:
        arrived.append(signal.Signals(signum).name)

    previous = {number: signal.signal(number, record) for number in STOP_SIGNALS}
    try:
        yield arrived
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _commit(staging: Path, model_dir: Path) -> None:
    (model_dir / REPORT_DIR).mkdir(exist_ok=True)
    for path in sorted((staging / REPORT_DIR).iterdir()):
        os.replace(path, model_dir / REPORT_DIR / path.name)
    os.replace(staging / MODEL_FILE, model_dir / MODEL_FILE)
    os.replace(staging / METADATA_FILE, model_dir / METADATA_FILE)


@dataclass(frozen=True)
class Artifact:
    model: Any
    metadata: dict[str, Any]


def load_artifact(model_dir: Path) -> Artifact:
    """Load and check an artifact; ArtifactError says what is wrong and how to fix it."""
    model_path, metadata_path = model_dir / MODEL_FILE, model_dir / METADATA_FILE
    if not metadata_path.is_file() or not model_path.is_file():
        saved_by = _framework_of(metadata_path)
        if saved_by not in (None, FRAMEWORK):
            raise _foreign(model_dir, saved_by)
        raise ArtifactError(
            f"no model in {model_dir}: expected {MODEL_FILE} and {METADATA_FILE}. "
            "Train one (the `train` command) or mount a model folder there."
        )
    try:
        metadata = json.loads(metadata_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ArtifactError(f"cannot read {metadata_path}: {error}") from error
    if metadata.get("framework") != FRAMEWORK:
        raise _foreign(model_dir, metadata.get("framework"))
    if metadata.get("model_sha256") != sha256_file(model_path):
        raise ArtifactError(
            f"{model_path} does not match the hash in {metadata_path}: the artifact is "
            "incomplete. Train again or restore the folder."
        )
    try:
        model = read_model(model_path, metadata)
    except Exception as error:  # a corrupt file can fail in many ways inside the library
        raise ArtifactError(f"cannot load {model_path}: {error}") from error
    return Artifact(model=model, metadata=metadata)


def _framework_of(metadata_path: Path) -> Any:
    """The framework a metadata file names, or None when there is none to read."""
    try:
        return json.loads(metadata_path.read_text()).get("framework")
    except (OSError, ValueError, AttributeError):
        return None


def _foreign(model_dir: Path, saved_by: Any) -> ArtifactError:
    return ArtifactError(
        f"the model in {model_dir} was saved by {saved_by or 'an unknown framework'} "
        f"({METADATA_FILE} says so), and this project loads {FRAMEWORK} models only. "
        "Train one with this project (the `train` command)."
    )
