"""Training data that cannot work as it is: each case stops `train` with one line that says
what is wrong and what to do, and keeps the previous model; rows without a target are left
out and counted. Every table here is the project's own training data, changed."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.core.schema import FEATURES, TARGET, InputError
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.training.train import train

from .conftest import CLASSES, REGRESSION, channel, make_settings, training_table


def settings_with(tmp_path: Path, table: pd.DataFrame) -> Settings:
    """Settings that train on `table`, written as the only CSV file of the training folder."""
    settings = make_settings(tmp_path, training_data_dir=channel(tmp_path))
    settings.training_data_dir.mkdir(parents=True)
    table.to_csv(settings.training_data_dir / "data.csv", index=False)
    return settings


def labelled_table() -> pd.DataFrame:
    features, target = training_table()
    return features.assign(**{TARGET: target})


def test_rows_without_a_target_are_left_out_and_counted(tmp_path: Path) -> None:
    """Their features are not checked either: `schema infer` saw only the labelled rows."""
    table = labelled_table().astype(object)
    table.loc[[0, 3, 5], TARGET] = None
    table.loc[[0, 3], [f.name for f in FEATURES]] = None
    data = train(settings_with(tmp_path, table))["training_data"]
    assert data["rows"] == len(table) - 3
    assert f"3 row(s) left out, their {TARGET!r} is missing" in data["source"]


def test_a_target_that_cannot_be_learned_says_why(tmp_path: Path) -> None:
    """A classifier's class with a single row looks like a measured quantity: the message says
    how to train a regression. A regressor's target must hold numbers."""
    table = labelled_table()
    if REGRESSION:
        table[TARGET] = table[TARGET].astype(object)
        table.loc[4, TARGET] = "heavy"
        expected = "a regression's target must be numbers"
    else:
        rare = table[TARGET] == CLASSES[-1]
        table = table[~rare | ~rare.duplicated()]  # a single row of the last class
        expected = "--task regression"
    with pytest.raises(InputError, match=re.escape(expected)):
        train(settings_with(tmp_path, table))


def test_training_data_without_the_target_column_names_it(tmp_path: Path) -> None:
    table = labelled_table().drop(columns=[TARGET])
    with pytest.raises(InputError, match=re.escape(f"needs a {TARGET!r} column")):
        train(settings_with(tmp_path, table))


def test_an_empty_target_column_is_refused(tmp_path: Path) -> None:
    table = labelled_table().assign(**{TARGET: np.nan})
    with pytest.raises(InputError, match=re.escape(f"the target column {TARGET!r} is empty")):
        train(settings_with(tmp_path, table))


def test_an_empty_column_names_the_file_column_and_row(tmp_path: Path) -> None:
    """A feature whose column holds no value at all: a feature that may not be missing names
    its first empty row; one that may is imputed, and training goes on."""
    feature = FEATURES[0]
    table = labelled_table().assign(**{feature.name: None})
    settings = settings_with(tmp_path, table)
    if feature.nullable:
        assert train(settings)["training_data"]["rows"] == len(table)
        return
    with pytest.raises(InputError) as refused:
        train(settings)
    message = str(refused.value)
    assert "data.csv" in message and repr(feature.name) in message, message
    assert "row 1 is empty" in message, message
