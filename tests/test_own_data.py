"""A user's own table, in-process: a render takes it through `schema infer`, `train` and
`predict` (ids passed through), and the project's own unit tests pass on it unchanged, in every
framework. The tables are scikit-learn's wine (multiclass), breast cancer (binary) and diabetes
(regression); palmerpenguins' penguins, with categories and missing values, take the same path
in the images (test_own_data_image.py)."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from .conftest import PYTHON, UNIT_TESTS, render, run_in

FRAMEWORKS = ["sklearn", "xgboost", "lightgbm", "pytorch"]
ON_SRC = {"PYTHONPATH": "src"}


def scikit_learn(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import sklearn.datasets

        frame = getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame
        # Column names become feature names: plain names only ("od280/od315_of_...").
        return frame.rename(columns=lambda c: str(c).replace("/", "_").replace(" ", "_"))

    return load


# name: (the table, its target, the task `schema infer` must find)
TABLES: dict[str, tuple[Callable[[], pd.DataFrame], str, str]] = {
    "wine": (scikit_learn("wine"), "target", "multiclass"),
    "breast-cancer": (scikit_learn("breast_cancer"), "target", "binary"),
    "diabetes": (scikit_learn("diabetes"), "target", "regression"),
}


def package(project: Path) -> str:
    [name] = [p.name for p in (project / "src").iterdir() if (p / "__init__.py").is_file()]
    return name


def use_table(project: Path, table: str, folder: Path) -> pd.DataFrame:
    """What `make data` does, without the image: infer the schema of the table (with an `id`
    column that is not a feature) and keep it as the only training file. Returns the table."""
    load, target, task = TABLES[table]
    frame = load()
    frame.insert(0, "id", [f"{table}-{i}" for i in range(len(frame))])
    path = folder / f"{table}.csv"
    frame.to_csv(path, index=False)
    result = run_in(
        project,
        PYTHON,
        *("-m", package(project), "schema", "infer", str(path), "--target", target),
        *("--ignore", "id", "--sample", "data/sample.csv"),
        env=ON_SRC,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"/schema.yaml: {task}" in result.stdout, result.stdout
    shutil.rmtree(project / "data" / "train")
    (project / "data" / "train").mkdir()
    shutil.copy(path, project / "data" / "train")
    return frame


def train_and_score(project: Path, frame: pd.DataFrame, target: str, folder: Path) -> pd.DataFrame:
    """`train` on data/train, then `predict` the table without its target; the scores."""
    environment = {**ON_SRC, "MODEL_DIR": str(folder / "model"), "TRAINING_DATA_DIR": "data/train"}
    trained = run_in(project, PYTHON, "-m", package(project), "train", env=environment)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "ONNX model verified" in trained.stdout, trained.stdout
    unlabelled = folder / "unlabelled.csv"
    frame.drop(columns=[target]).to_csv(unlabelled, index=False)
    output = folder / "scores.csv"
    scored = run_in(
        project,
        PYTHON,
        *("-m", package(project), "predict", "--input", str(unlabelled), "--output", str(output)),
        env=environment,
    )
    assert scored.returncode == 0, scored.stdout + scored.stderr
    return pd.read_csv(output)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("table", list(TABLES))
def test_a_table_trains_scores_and_passes_the_projects_own_tests(
    tmp_path: Path, framework: str, table: str
) -> None:
    project = render(tmp_path / "render", framework=framework)
    frame = use_table(project, table, tmp_path)
    _, target, task = TABLES[table]
    scores = train_and_score(project, frame, target, tmp_path)
    assert scores["id"].tolist() == frame["id"].tolist()
    if task == "regression":
        assert scores["prediction"].dtype == "float64"
        assert scores["prediction"].corr(frame[target]) > 0.5
    else:
        assert set(scores["prediction"].astype(str)) <= set(frame[target].dropna().astype(str))
        agreement = (scores["prediction"].astype(str) == frame[target].astype(str)).mean()
        assert agreement > 0.8, agreement
    result = run_in(project, PYTHON, *UNIT_TESTS, env=ON_SRC)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
