"""The model artifact: saved atomically, loaded only once its hash and framework check out.

An artifact is a folder holding the model file (its name and format are model.py's: a format
whose loading runs no code, never pickle), the ONNX model when training verified one,
`metadata.json` and a `report/` folder. `metadata.json` names the SHA-256 of each model file
and the framework that wrote them, so a loader refuses a file that is incomplete, changed or
from another framework before it parses it. Which of the two models serves is runtime.py's
choice; loading the ONNX model never imports the training framework.
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

from .runtime import (
    ONNX_FILE,
    Choice,
    OnnxModel,
    OnnxRegressor,
    RuntimeSetting,
    RuntimeSettingError,
    choose,
    onnx_model,
)
from .schema import FEATURE_NAMES, FEATURES, SCHEMA
from .settings import FRAMEWORK

METADATA_FILE = "metadata.json"
REPORT_DIR = "report"

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class OnnxExport:
    """What training's ONNX step gives the artifact: the model it verified, and its record."""

    content: bytes | None  # the ONNX model, only when it passed the check
    report: dict[str, Any]  # metadata.json's "onnx": the converter, the check and its result


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
    model_dir: Path,
    model: Any,
    metadata: dict[str, Any],
    report: Mapping[str, bytes],
    onnx: OnnxExport | None = None,
) -> SavedArtifact:
    """Write the artifact into `model_dir`, replacing the previous one only once all is written.

    Everything goes to a temporary folder inside `model_dir` first (same file system, so the
    final renames are atomic). Until those renames, an interruption or a failure leaves the
    previous artifact as it was; the renames themselves run with SIGINT/SIGTERM held back.
    `metadata.json` goes last and names the model file's hash, so a loader can never pair a
    new model with old metadata unnoticed. Without a `model_version`, the model gets the start
    of that hash as its version: the same model, the same version. A verified ONNX model
    (`onnx`) is written beside the model file, its hash in `metadata.json` too; its report is
    recorded whether it passed or not.

    A stop signal that arrives during the renames does not undo them: the new model is in
    place all the same, and the caller reports that.
    """
    from .model import MODEL_FILE, write_model

    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=model_dir))
    try:
        write_model(model, staging / MODEL_FILE)
        # Readable by all, like the files written beside it: some libraries write theirs
        # for the owner and the group only.
        (staging / MODEL_FILE).chmod(0o644)
        digest = sha256_file(staging / MODEL_FILE)
        onnx_report = None
        if onnx is not None:
            onnx_report = dict(onnx.report)
            if onnx.content is not None:
                (staging / ONNX_FILE).write_bytes(onnx.content)
                onnx_report["sha256"] = sha256_file(staging / ONNX_FILE)
        metadata = {
            **metadata,
            "framework": FRAMEWORK,
            "model_file": MODEL_FILE,
            "model_version": metadata.get("model_version") or digest[:12],
            "model_sha256": digest,
            "onnx": onnx_report,
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
            _commit(staging, model_dir, MODEL_FILE)
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


def _commit(staging: Path, model_dir: Path, model_file: str) -> None:
    (model_dir / REPORT_DIR).mkdir(exist_ok=True)
    for path in sorted((staging / REPORT_DIR).iterdir()):
        os.replace(path, model_dir / REPORT_DIR / path.name)
    os.replace(staging / model_file, model_dir / model_file)
    if (staging / ONNX_FILE).exists():
        os.replace(staging / ONNX_FILE, model_dir / ONNX_FILE)
    else:  # the previous model's: not this one's, so it must not lie beside it
        (model_dir / ONNX_FILE).unlink(missing_ok=True)
    os.replace(staging / METADATA_FILE, model_dir / METADATA_FILE)


@dataclass(frozen=True)
class Artifact:
    model: Any  # either runtime's, with the interface of the schema's task (runtime.py)
    metadata: dict[str, Any]
    runtime: Choice


def load_artifact(model_dir: Path, setting: RuntimeSetting = "auto") -> Artifact:
    """Load and check an artifact, in the runtime that `setting` and its metadata choose;
    ArtifactError says what is wrong and how to fix it."""
    metadata_path = model_dir / METADATA_FILE
    if not metadata_path.is_file():
        raise ArtifactError(
            f"no model in {model_dir}: expected {METADATA_FILE} and the model file. "
            "Train one (the `train` command) or mount a model folder there."
        )
    try:
        metadata = json.loads(metadata_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ArtifactError(f"cannot read {metadata_path}: {error}") from error
    if not isinstance(metadata, dict):
        raise ArtifactError(f"cannot read {metadata_path}: it holds no JSON object")
    if metadata.get("framework") != FRAMEWORK:
        raise _foreign(model_dir, metadata.get("framework"))
    if mismatch := schema_mismatch(metadata):
        raise ArtifactError(
            f"the model in {model_dir} was trained on another data schema than this project's "
            f"schema.yaml ({mismatch}). Train it again with this schema, or serve it with the "
            "project that trained it."
        )
    choice = choose(metadata, setting)  # RuntimeSettingError when the setting cannot be met
    # The artifact is one unit: every file metadata.json names must match, whichever serves.
    model_file = metadata.get("model_file")
    if not isinstance(model_file, str):
        raise ArtifactError(
            f"{metadata_path} names no model file: an older version of this project wrote "
            "it. Train again (the `train` command)."
        )
    _check_hash(model_dir / model_file, metadata.get("model_sha256"))
    if choice.name == "onnx":
        model = _load_onnx(model_dir, metadata)
    else:
        model = _load_native(model_dir, metadata)
    return Artifact(model=model, metadata=metadata, runtime=choice)


# What a model's input and output depend on; descriptions and examples may differ.
ENCODING_FIELDS = ("name", "type", "nullable", "categories", "unknown")


def schema_mismatch(metadata: dict[str, Any]) -> str | None:
    """How the schema the model was trained on differs from this project's, or None."""
    saved = metadata.get("features")
    if not isinstance(saved, list) or not all(isinstance(f, dict) for f in saved):
        return "its metadata names no features"
    ours = [
        {k: v for k, v in f.model_dump(mode="json").items() if k in ENCODING_FIELDS}
        for f in FEATURES
    ]
    theirs = [{k: f.get(k) for k in ENCODING_FIELDS} for f in saved]
    if [f["name"] for f in theirs] != [f["name"] for f in ours]:
        return (
            f"features {', '.join(str(f['name']) for f in theirs)}, not {', '.join(FEATURE_NAMES)}"
        )
    for mine, its in zip(ours, theirs, strict=True):
        if mine != its:
            field = next(k for k in ENCODING_FIELDS if mine[k] != its[k])
            return f"feature {mine['name']!r} has {field} {its[field]!r}, not {mine[field]!r}"
    if metadata.get("task") != SCHEMA.task:
        return f"task {metadata.get('task')!r}, not {SCHEMA.task!r}"
    if sorted(map(str, metadata.get("classes", []))) != sorted(SCHEMA.classes):
        return f"classes {', '.join(map(str, metadata.get('classes', [])))}, not {', '.join(SCHEMA.classes)}"
    return None


def check_runtime_setting(model_dir: Path, setting: RuntimeSetting) -> None:
    """RuntimeSettingError now, before a server starts, when MODEL_RUNTIME cannot be met by
    this image or by the model in `model_dir`. A missing or unreadable model is not checked
    here: loading it reports that, as usual."""
    if setting == "native":
        try:
            from . import model  # noqa: F401
        except ModuleNotFoundError as error:
            raise RuntimeSettingError(
                f"MODEL_RUNTIME=native, but this image does not have {error.name}: it serves "
                "verified ONNX models only. Unset MODEL_RUNTIME, or use the full image."
            ) from error
    try:
        metadata = json.loads((model_dir / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return
    if isinstance(metadata, dict):
        choose(metadata, setting)


def _check_hash(path: Path, expected: Any) -> None:
    if not path.is_file():
        raise ArtifactError(
            f"{path} is missing, and {METADATA_FILE} names it: the artifact is incomplete. "
            "Train again or restore the folder."
        )
    if expected != sha256_file(path):
        raise ArtifactError(
            f"{path} does not match the hash in {METADATA_FILE}: the artifact is "
            "incomplete. Train again or restore the folder."
        )


def _load_onnx(model_dir: Path, metadata: dict[str, Any]) -> OnnxModel | OnnxRegressor:
    path = model_dir / ONNX_FILE
    _check_hash(path, metadata["onnx"].get("sha256"))
    features, classes = len(metadata["features"]), [str(c) for c in metadata["classes"]]
    try:
        return onnx_model(path, features, classes, metadata["task"])
    except Exception as error:  # a corrupt file can fail in many ways inside ONNX Runtime
        raise ArtifactError(f"cannot load {path}: {error}") from error


def _load_native(model_dir: Path, metadata: dict[str, Any]) -> Any:
    try:
        from .model import MODEL_FILE, read_model
    except ModuleNotFoundError as error:
        raise ArtifactError(
            f"the native model needs {error.name}, which this image does not have: it "
            "serves verified ONNX models only. Train with the full image (ONNX export on), "
            "or serve this model with the full image."
        ) from error
    model_path = model_dir / MODEL_FILE
    if metadata.get("model_file") != MODEL_FILE:
        raise ArtifactError(
            f"{METADATA_FILE} in {model_dir} names the model file {metadata.get('model_file')!r}, "
            f"and this project's is {MODEL_FILE}. Train one with this project."
        )
    try:
        return read_model(model_path, metadata)
    except Exception as error:  # a corrupt file can fail in many ways inside the library
        raise ArtifactError(f"cannot load {model_path}: {error}") from error


def _foreign(model_dir: Path, saved_by: Any) -> ArtifactError:
    return ArtifactError(
        f"the model in {model_dir} was saved by {saved_by or 'an unknown framework'} "
        f"({METADATA_FILE} says so), and this project loads {FRAMEWORK} models only. "
        "Train one with this project (the `train` command)."
    )
