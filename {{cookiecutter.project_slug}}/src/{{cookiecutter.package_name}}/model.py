"""The model and its artifact: build, save atomically, load safely.

An artifact is a folder holding `model.skops` (skops format: loading it runs no code, unlike
pickle) and `metadata.json`, plus a `report/` folder. To use your own model, change
`build_model()`; if skops then reports types it does not trust by default, review them and
add them to TRUSTED_TYPES.
"""

import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
REPORT_DIR = "report"

# Types, beyond the scikit-learn and NumPy ones skops trusts by default, that this project's
# model may contain. Loading refuses a file holding any type not on this list.
TRUSTED_TYPES: list[str] = []

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


class ArtifactError(RuntimeError):
    """The artifact is missing, incomplete or not safe to load."""


def build_model(hyperparameters: Mapping[str, Any]) -> Any:
    """A fresh, unfitted model. Hyperparameters arrive as strings from SageMaker."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "classify",
                LogisticRegression(
                    C=float(hyperparameters.get("C", 1.0)),
                    max_iter=int(hyperparameters.get("max_iter", 1000)),
                    random_state=int(hyperparameters.get("seed", 42)),
                ),
            ),
        ]
    )


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
    import skops.io

    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=model_dir))
    try:
        skops.io.dump(model, staging / MODEL_FILE)
        make_reproducible(staging / MODEL_FILE)
        digest = sha256_file(staging / MODEL_FILE)
        metadata = {
            **metadata,
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


def make_reproducible(path: Path) -> None:
    """Rewrite a skops file so that the same model always gives the same bytes.

    skops names each object by its memory address (`id()`), in `schema.json` and in the names
    of the array files, and the zip archive records when each file was written. Renumbering
    the ids in order of appearance and giving every entry one fixed time removes both.
    Loading is unchanged: the ids only have to be equal where the objects are the same.
    """
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    numbers: dict[str, str] = {}

    def number(old: object) -> str:
        return numbers.setdefault(str(old), str(len(numbers) + 1))

    def renumber(node: Any) -> Any:
        if isinstance(node, list):
            return [renumber(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: renumber(value) for key, value in node.items()}
        if "__id__" in node:
            node["__id__"] = int(number(node["__id__"]))
        if isinstance(node.get("file"), str) and node["file"].endswith(".npy"):
            node["file"] = number(node["file"].removesuffix(".npy")) + ".npy"
        return node

    schema = renumber(json.loads(dict((i.filename, d) for i, d in entries)["schema.json"]))
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            name = info.filename
            if name == "schema.json":
                data = json.dumps(schema, indent=2).encode()
            elif name.endswith(".npy"):
                name = number(name.removesuffix(".npy")) + ".npy"
            fixed = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            fixed.compress_type, fixed.external_attr = info.compress_type, 0o644 << 16
            archive.writestr(fixed, data)


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
    import skops.io

    model_path, metadata_path = model_dir / MODEL_FILE, model_dir / METADATA_FILE
    if not metadata_path.is_file() or not model_path.is_file():
        raise ArtifactError(
            f"no model in {model_dir}: expected {MODEL_FILE} and {METADATA_FILE}. "
            "Train one (the `train` command) or mount a model folder there."
        )
    try:
        metadata = json.loads(metadata_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ArtifactError(f"cannot read {metadata_path}: {error}") from error
    if metadata.get("model_sha256") != sha256_file(model_path):
        raise ArtifactError(
            f"{model_path} does not match the hash in {metadata_path}: the artifact is "
            "incomplete. Train again or restore the folder."
        )
    untrusted = [t for t in skops.io.get_untrusted_types(file=model_path) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ArtifactError(
            f"{model_path} holds types that are not trusted: {', '.join(untrusted)}. "
            "If you know where they come from, add them to TRUSTED_TYPES in model.py."
        )
    try:
        model = skops.io.load(model_path, trusted=TRUSTED_TYPES)
    except Exception as error:  # a corrupt file can fail in many ways inside skops
        raise ArtifactError(f"cannot load {model_path}: {error}") from error
    return Artifact(model=model, metadata=metadata)
