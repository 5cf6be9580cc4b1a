"""Training: the artifact, its metadata, reproducibility and atomic replacement."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.features import FEATURE_NAMES, TARGET, load_sample
from {{ cookiecutter.package_name }}.model import METADATA_FILE, MODEL_FILE, load_artifact
from {{ cookiecutter.package_name }}.train import train

from .conftest import make_settings


def test_artifact_holds_model_metadata_and_report(trained: Settings) -> None:
    folder = trained.model_dir
    assert (folder / MODEL_FILE).is_file()
    metadata = json.loads((folder / METADATA_FILE).read_text())
    assert [f["name"] for f in metadata["features"]] == list(FEATURE_NAMES)
    assert metadata["classes"] == ["setosa", "versicolor", "virginica"]
    assert metadata["metrics"]["accuracy"] > 0.85
    assert len(metadata["training_data"]["sha256"]) == 64
    assert {"python", "scikit-learn", "numpy"} <= set(metadata["libraries"])
    assert metadata["created"] and metadata["model_version"]
    report = json.loads((folder / "report" / "metrics.json").read_text())
    assert report["accuracy"] == metadata["metrics"]["accuracy"]
    assert (folder / "report" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(folder.glob(".incoming-*")), "the staging folder was left behind"


def test_training_is_reproducible(tmp_path: Path, trained: Settings) -> None:
    again = make_settings(tmp_path)
    train(again)
    features, _ = load_sample()
    first = load_artifact(trained.model_dir).model.predict_proba(features.to_numpy())
    second = load_artifact(again.model_dir).model.predict_proba(features.to_numpy())
    np.testing.assert_array_equal(first, second)
    meta = [json.loads((s.model_dir / METADATA_FILE).read_text()) for s in (trained, again)]
    assert meta[0]["training_data"]["sha256"] == meta[1]["training_data"]["sha256"]
    assert meta[0]["metrics"] == meta[1]["metrics"]


def test_trains_on_files_in_the_training_folder(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.training_data_dir.mkdir(parents=True)
    features, target = load_sample()
    features.assign(**{TARGET: target}).to_parquet(settings.training_data_dir / "iris.parquet")
    metadata = train(settings)
    assert metadata["training_data"]["rows"] == 150
    assert "1 file(s)" in metadata["training_data"]["source"]


def test_hyperparameters_file_is_applied(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.hyperparameters_file.parent.mkdir(parents=True)
    settings.hyperparameters_file.write_text('{"C": "0.5", "model_version": "7"}')
    metadata = train(settings)
    assert metadata["model_version"] == "7"
    assert metadata["hyperparameters"]["C"] == "0.5"


def test_failed_training_keeps_the_previous_model(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    train(settings)
    before = {p.name: p.read_bytes() for p in settings.model_dir.iterdir() if p.is_file()}
    settings.training_data_dir.mkdir(parents=True)
    pd.DataFrame({"sepal_length": [1.0]}).to_csv(
        settings.training_data_dir / "bad.csv", index=False
    )
    with pytest.raises(ValueError, match="species"):
        train(settings)
    after = {p.name: p.read_bytes() for p in settings.model_dir.iterdir() if p.is_file()}
    assert after == before
    assert not list(settings.model_dir.glob(".incoming-*"))


def test_interrupted_save_keeps_the_previous_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    train(settings)
    before = (settings.model_dir / METADATA_FILE).read_text()

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("{{ cookiecutter.package_name }}.model._commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(settings)
    assert (settings.model_dir / METADATA_FILE).read_text() == before
    load_artifact(settings.model_dir)  # still consistent
    assert not list(settings.model_dir.glob(".incoming-*"))


def test_unknown_hyperparameter_is_rejected(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.hyperparameters_file.parent.mkdir(parents=True)
    settings.hyperparameters_file.write_text('{"learning_rate": 1}')
    with pytest.raises(ValueError, match="learning_rate"):
        train(settings)


def test_single_sagemaker_channel_of_another_name_is_used(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    channel = settings.training_data_dir.parent / "training"
    channel.mkdir(parents=True)
    features, target = load_sample()
    features.assign(**{TARGET: target}).to_csv(channel / "iris.csv", index=False)
    assert "in " + str(channel) in train(settings)["training_data"]["source"]


def test_platform_hyperparameters_are_ignored(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.hyperparameters_file.parent.mkdir(parents=True)
    settings.hyperparameters_file.write_text(
        '{"_tuning_objective_metric": "accuracy", "sagemaker_region": "x", "C": "2"}'
    )
    assert train(settings)["hyperparameters"]["C"] == "2"
