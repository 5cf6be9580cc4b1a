"""Loading refuses what it must not trust: a changed file, another framework's model, a file
of another format. Each refusal says why."""

import json
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.core.artifact import (
    METADATA_FILE,
    ArtifactError,
    load_artifact,
    sha256_file,
)
from {{ cookiecutter.package_name }}.core.model import (
    MODEL_FILE,
    build_model,
    read_model,
    write_model,
)
from {{ cookiecutter.package_name }}.core.schema import FEATURES
from {{ cookiecutter.package_name }}.core.settings import FRAMEWORK, Settings
from {{ cookiecutter.package_name }}.training.train import DEFAULT_HYPERPARAMETERS

from .conftest import CLASSES, REGRESSION, edit_metadata, training_data


def test_a_written_model_reads_back_answering_the_same(tmp_path: Path) -> None:
    """What read_model needs besides the file, metadata.json holds: hyperparameters,
    feature names and classes (none for a regressor)."""
    features, target = training_data()
    rows = features.to_numpy()
    model = build_model(DEFAULT_HYPERPARAMETERS)
    model.fit(rows, target.to_numpy())
    write_model(model, tmp_path / MODEL_FILE)
    metadata = {
        "hyperparameters": DEFAULT_HYPERPARAMETERS,
        "features": [{"name": f.name} for f in FEATURES],
        "classes": [] if REGRESSION else [str(c) for c in model.classes_],
    }
    again = read_model(tmp_path / MODEL_FILE, metadata)
    if not REGRESSION:
        assert list(again.classes_) == CLASSES
        np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))
    np.testing.assert_array_equal(again.predict(rows), model.predict(rows))


def test_the_trained_artifact_loads_and_names_its_framework(copied: Path) -> None:
    artifact = load_artifact(copied)
    assert artifact.metadata["framework"] == FRAMEWORK
    assert artifact.metadata["model_sha256"] == sha256_file(copied / MODEL_FILE)


def test_a_changed_model_file_is_refused(copied: Path) -> None:
    model = copied / MODEL_FILE
    content = bytearray(model.read_bytes())
    content[len(content) // 2] ^= 0xFF
    model.write_bytes(bytes(content))
    with pytest.raises(ArtifactError, match="does not match the hash"):
        load_artifact(copied)


def test_a_model_of_another_framework_is_refused_with_its_name(copied: Path) -> None:
    edit_metadata(copied, framework="another-framework")
    with pytest.raises(ArtifactError, match="saved by another-framework") as refused:
        load_artifact(copied)
    assert f"loads {FRAMEWORK} models only" in str(refused.value)


def test_another_frameworks_folder_is_refused_before_its_file_is_looked_for(
    copied: Path,
) -> None:
    (copied / MODEL_FILE).rename(copied / "model.other")
    edit_metadata(copied, framework="another-framework")
    with pytest.raises(ArtifactError, match="saved by another-framework"):
        load_artifact(copied)


def test_metadata_without_a_framework_is_refused(copied: Path) -> None:
    path = copied / METADATA_FILE
    metadata = json.loads(path.read_text())
    del metadata["framework"]
    path.write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match="saved by an unknown framework"):
        load_artifact(copied)


def zip_bytes() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", "{}")
    return buffer.getvalue()


FOREIGN_FILES = {
    "json": b'{"learner": {"attributes": {}}, "version": [1, 0, 0]}',
    "text": b"tree\nversion=v4\nnum_class=3\n",
    "zip": zip_bytes(),
    "binary": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("content", FOREIGN_FILES.values(), ids=FOREIGN_FILES.keys())
def test_a_file_of_another_format_is_refused_even_with_its_hash(
    copied: Path, content: bytes
) -> None:
    """Its hash is recorded as if it had been trained here: the format itself is refused by
    the native runtime, the one that reads it."""
    (copied / MODEL_FILE).write_bytes(content)
    edit_metadata(copied, model_sha256=sha256_file(copied / MODEL_FILE))
    with pytest.raises(ArtifactError, match=f"cannot load {copied / MODEL_FILE}"):
        load_artifact(copied, "native")


def test_the_model_file_is_readable_by_any_user(trained: Settings) -> None:
    """The image runs under any UID (OpenShift gives one in group 0, others their own
    group): the baked model must be readable by them all."""
    assert (trained.model_dir / MODEL_FILE).stat().st_mode & 0o044 == 0o044
