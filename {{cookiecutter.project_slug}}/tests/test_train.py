"""Training: the artifact, its metadata, reproducibility and atomic replacement."""

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.core.artifact import METADATA_FILE, load_artifact
from {{ cookiecutter.package_name }}.core.model import MODEL_FILE, library_versions
from {{ cookiecutter.package_name }}.core.schema import (
    FEATURE_NAMES,
    TARGET,
    TASK,
    InputError,
)
from {{ cookiecutter.package_name }}.core.settings import (
    FRAMEWORK,
    Settings,
    get_settings,
)
from {{ cookiecutter.package_name }}.training.train import train

from .conftest import (
    CLASSES,
    REGRESSION,
    REPORT_PLOTS,
    channel,
    comparable,
    held_out_split,
    make_settings,
    training_data,
    training_table,
)


def test_artifact_holds_model_metadata_and_report(trained: Settings) -> None:
    folder = trained.model_dir
    assert (folder / MODEL_FILE).is_file()
    metadata = json.loads((folder / METADATA_FILE).read_text())
    assert [f["name"] for f in metadata["features"]] == list(FEATURE_NAMES)
    assert metadata["classes"] == CLASSES
    assert len(metadata["training_data"]["sha256"]) == 64
    assert {"python", "numpy", *library_versions()} <= set(metadata["libraries"])
    assert metadata["framework"] == FRAMEWORK
    assert metadata["created"] and metadata["model_version"]
    assert metadata["task"] == TASK and metadata["target"] == TARGET
    assert not list(folder.glob(".incoming-*")), "the staging folder was left behind"
    report = json.loads((folder / "report" / "metrics.json").read_text())
    if REGRESSION:
        check_regression_report(folder, metadata, report)
        return
    assert report["accuracy"] == metadata["metrics"]["accuracy"]
    assert report["labels"] == CLASSES
    # The confusion matrix of the held-out rows, true classes down, predicted across.
    confusion = np.array(report["confusion_matrix"])
    right, rows = int(np.trace(confusion)), int(confusion.sum())
    assert rows == metadata["metrics"]["test_rows"]
    assert report["accuracy"] == pytest.approx(right / rows, abs=1e-6)
    # The model learned: it is right more often than always answering the commonest class.
    assert right > confusion.sum(axis=1).max(), confusion
    assert (folder / "report" / "confusion_matrix.png").read_bytes()[:8] == PNG


PNG = b"\x89PNG\r\n\x1a\n"


def check_regression_report(folder: Path, metadata: dict[str, Any], report: dict[str, Any]) -> None:
    """A regressor's report: the held-out RMSE, MAE and R², as the model gives them on the
    held-out rows, beside those of predicting the training mean, which the model beats."""
    assert report == metadata["metrics"]
    x_train, x_test, y_train, y_test = held_out_split()
    assert (report["train_rows"], report["test_rows"]) == (len(x_train), len(x_test))
    values = np.asarray(load_artifact(folder, "native").model.predict(x_test), dtype=np.float64)
    errors, spread = values - y_test, y_test - y_test.mean()
    mean_errors = np.mean(y_train) - y_test
    expected = {
        "rmse": np.sqrt(np.mean(errors**2)),
        "mae": np.mean(np.abs(errors)),
        "r2": 1 - np.sum(errors**2) / np.sum(spread**2),
        "baseline_rmse": np.sqrt(np.mean(mean_errors**2)),
        "baseline_mae": np.mean(np.abs(mean_errors)),
        "baseline_r2": 1 - np.sum(mean_errors**2) / np.sum(spread**2),
    }
    assert {name: report[name] for name in expected} == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # The model learned: its errors are smaller than those of always answering the mean.
    assert report["rmse"] < report["baseline_rmse"] and report["r2"] > 0, report
    for plot in REPORT_PLOTS:
        assert (folder / "report" / plot).read_bytes()[:8] == PNG, plot


def test_training_is_reproducible_to_the_byte(tmp_path: Path, trained: Settings) -> None:
    """The same data and seed give the same files; metadata differs in its creation time only."""
    again = make_settings(tmp_path)
    train(again)
    files = sorted(p.relative_to(trained.model_dir) for p in trained.model_dir.rglob("*"))
    assert files == sorted(p.relative_to(again.model_dir) for p in again.model_dir.rglob("*"))
    for name in files:
        first, second = trained.model_dir / name, again.model_dir / name
        if first.is_file() and name.name != METADATA_FILE:
            assert first.read_bytes() == second.read_bytes(), f"{name} differs"
    meta = [json.loads((s.model_dir / METADATA_FILE).read_text()) for s in (trained, again)]
    assert {k: v for k, v in meta[0].items() if k != "created"} == {
        k: v for k, v in meta[1].items() if k != "created"
    }
    assert meta[0]["model_version"] == meta[0]["model_sha256"][:12]
    features, _ = training_data()
    answers = comparable(load_artifact(trained.model_dir).model, features.to_numpy())
    answers_again = comparable(load_artifact(again.model_dir).model, features.to_numpy())
    np.testing.assert_array_equal(answers, answers_again)


def test_trains_on_files_in_the_training_folder(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, training_data_dir=channel(tmp_path))
    settings.training_data_dir.mkdir(parents=True)
    features, target = training_table()
    features.assign(**{TARGET: target}).to_parquet(settings.training_data_dir / "data.parquet")
    metadata = train(settings)
    assert metadata["training_data"]["rows"] == len(features)
    assert "1 file(s)" in metadata["training_data"]["source"]


def answers_after_training(root: Path, hyperparameters: str) -> np.ndarray:
    """What the model trained with these hyperparameters gives the training rows (a
    classifier's probabilities, a regressor's values in standard deviations of the target)."""
    settings = make_settings(root)
    settings.hyperparameters_file.parent.mkdir(parents=True)
    settings.hyperparameters_file.write_text(hyperparameters)
    train(settings)
    model = load_artifact(settings.model_dir).model
    return comparable(model, training_data()[0].to_numpy())


def test_hyperparameters_file_reaches_the_model(tmp_path: Path, trained: Settings) -> None:
    """The fitted model changes with the file's values, and only with them."""
    rows = training_data()[0].to_numpy()
    default = comparable(load_artifact(trained.model_dir).model, rows)
    other = answers_after_training(tmp_path / "a", '{"test_size": "0.4"}')
    same = answers_after_training(tmp_path / "b", '{"test_size": "0.25", "model_version": "7"}')
    assert np.abs(other - default).max() > 1e-4, "test_size did not reach the training"
    np.testing.assert_array_equal(same, default)
    assert load_artifact(tmp_path / "b" / "model").metadata["model_version"] == "7"


def test_failed_training_keeps_the_previous_model(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    train(settings)
    before = {p.name: p.read_bytes() for p in settings.model_dir.iterdir() if p.is_file()}
    settings = settings.model_copy(update={"training_data_dir": channel(tmp_path)})
    settings.training_data_dir.mkdir(parents=True)
    pd.DataFrame({FEATURE_NAMES[0]: [1.0]}).to_csv(  # no target column
        settings.training_data_dir / "bad.csv", index=False
    )
    with pytest.raises(ValueError, match=re.escape(TARGET)):
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

    monkeypatch.setattr(
        "{{ cookiecutter.package_name }}.core.artifact._commit",
        interrupted,
    )
    with pytest.raises(KeyboardInterrupt):
        train(settings)
    assert (settings.model_dir / METADATA_FILE).read_text() == before
    load_artifact(settings.model_dir)  # still consistent
    assert not list(settings.model_dir.glob(".incoming-*"))


def test_unknown_hyperparameter_is_rejected(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.hyperparameters_file.parent.mkdir(parents=True)
    settings.hyperparameters_file.write_text('{"not_a_hyperparameter": 1}')
    with pytest.raises(ValueError, match="not_a_hyperparameter"):
        train(settings)


def test_single_sagemaker_channel_of_another_name_is_used(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, training_data_dir=channel(tmp_path))
    training = settings.training_data_dir.parent / "training"
    training.mkdir(parents=True)
    features, target = training_table()
    features.assign(**{TARGET: target}).to_csv(training / "data.csv", index=False)
    assert "in " + str(training) in train(settings)["training_data"]["source"]


def test_platform_hyperparameters_are_ignored(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.hyperparameters_file.parent.mkdir(parents=True)
    settings.hyperparameters_file.write_text(
        '{"_tuning_objective_metric": "accuracy", "sagemaker_region": "x", "seed": "2"}'
    )
    assert train(settings)["hyperparameters"]["seed"] == "2"


def test_several_sagemaker_channels_and_no_train_channel_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, training_data_dir=channel(tmp_path))
    for name in ("training", "validation"):
        (settings.training_data_dir.parent / name).mkdir(parents=True)
    with pytest.raises(InputError, match=r"several channels \(training, validation\)") as error:
        train(settings)
    assert "TRAINING_DATA_DIR" in error.value.message
    assert not settings.model_dir.exists()


@pytest.fixture
def train_by_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings that `main(["train"])` reads from the environment, with a previous model in
    place; the process's signal handlers are put back afterwards."""
    settings = make_settings(tmp_path)
    for name in ("model_dir", "training_data_dir", "hyperparameters_file", "failure_file"):
        monkeypatch.setenv(name.upper(), str(getattr(settings, name)))
    settings.failure_file.parent.mkdir(parents=True)
    train(settings)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    get_settings.cache_clear()
    try:
        yield settings
    finally:
        get_settings.cache_clear()
        for number, handler in handlers.items():
            signal.signal(number, handler)


def model_version_in(settings: Settings) -> str:
    return str(json.loads((settings.model_dir / METADATA_FILE).read_text())["model_version"])


def test_stop_during_the_commit_ends_as_a_success(
    train_by_cli: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM while the new model is being put in place: the commit completes, and that
    is reported as what it is, a success, not as "the previous model was kept"."""
    before = model_version_in(train_by_cli)
    replace = os.replace

    def replace_then_stop(source: object, target: object) -> None:
        replace(source, target)  # type: ignore[arg-type]
        if Path(str(target)).name == MODEL_FILE:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setenv("HYPERPARAMETERS_FILE", str(write_model_version(train_by_cli, "new")))
    monkeypatch.setattr(os, "replace", replace_then_stop)
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    assert "SIGTERM arrived while the new model was being put in place" in out
    assert model_version_in(train_by_cli) == "new" != before
    assert not train_by_cli.failure_file.exists()
    load_artifact(train_by_cli.model_dir)


def test_stop_before_the_commit_exits_143_and_keeps_the_previous_model(
    train_by_cli: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (train_by_cli.model_dir / METADATA_FILE).read_bytes()
    fsync = os.fsync

    def fsync_then_stop(handle: int) -> None:
        fsync(handle)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setenv("HYPERPARAMETERS_FILE", str(write_model_version(train_by_cli, "new")))
    monkeypatch.setattr(os, "fsync", fsync_then_stop)
    assert main(["train"]) == 128 + signal.SIGTERM
    assert "train: stopped by SIGTERM" in capsys.readouterr().err
    assert (train_by_cli.model_dir / METADATA_FILE).read_bytes() == before
    assert "interrupted" in train_by_cli.failure_file.read_text()
    assert not list(train_by_cli.model_dir.glob(".incoming-*"))


def write_model_version(settings: Settings, version: str) -> Path:
    path = settings.failure_file.parent / "hyperparameters.json"
    path.write_text(json.dumps({"model_version": version}))
    return path
