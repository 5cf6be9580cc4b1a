"""The shard and run protocol of batch scoring, by property (Hypothesis): shards of random
counts run in random orders under one run id, duplicated, some killed between their steps.
Whatever happens, `_SUCCESS` exists only when the parts it lists make up a single run's output
row for row; and once every shard of the run's plan runs to its end, it exists."""

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.batch.dataset import Piece, Shard
from {{ cookiecutter.package_name }}.batch.engines.local import score_in_process
from {{ cookiecutter.package_name }}.batch.files import PARTIAL_SUFFIX
from {{ cookiecutter.package_name }}.batch.job import BatchJob, run_job
from {{ cookiecutter.package_name }}.batch.output import (
    PLAN_FILE,
    SHARDS_DIR,
    SUCCESS_FILE,
    PartResult,
)
from {{ cookiecutter.package_name }}.batch.parts import Scoring
from {{ cookiecutter.package_name }}.batch.progress import Progress
from {{ cookiecutter.package_name }}.core.artifact import sha256_file
from {{ cookiecutter.package_name }}.core.schema import InputError
from {{ cookiecutter.package_name }}.core.settings import Settings

from .test_batch_datasets import keyed_rows, read_parts

ROWS = 400
RUN = "property-run"


class Killed(BaseException):
    """A shard's process killed between two of its steps."""


def killed_after(pieces_scored: int, leave_partial: bool) -> Any:
    """An engine that scores `pieces_scored` of its pieces and is then killed, before the shard
    records itself; with `leave_partial`, in the middle of its next piece's file."""

    def engine(
        pieces: list[Piece], target: Any, scoring: Scoring, progress: Progress
    ) -> list[PartResult]:
        score_in_process(pieces[:pieces_scored], target, scoring, progress)
        if leave_partial and pieces[pieces_scored:]:
            part = target(pieces[pieces_scored])  # its writer died: no lock holds the file
            part.with_name(f".{part.name}.0123456789ab{PARTIAL_SUFFIX}").write_text("half")
        raise Killed()

    return engine


# One step: a shard of a count, run to its end or killed after some of its pieces.
step = st.integers(1, 4).flatmap(
    lambda count: st.tuples(
        st.just(count),
        st.integers(0, count - 1),
        st.one_of(st.none(), st.tuples(st.integers(0, 2), st.booleans())),
    )
)


@pytest.fixture(scope="module")
def reference(trained: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The input, and the parts of one unsharded run over it."""
    folder = tmp_path_factory.mktemp("protocol")
    keyed_rows(ROWS).to_csv(folder / "in.csv", index=False)
    run_job(trained, BatchJob(folder / "in.csv", folder / "alone"), score_in_process)
    return folder / "in.csv", read_parts(folder / "alone")


def check_success(out: Path, alone: pd.DataFrame) -> None:
    """If `_SUCCESS` is there, the parts it lists are there with its hashes, and make up the
    single run's output row for row."""
    if not (out / SUCCESS_FILE).exists():
        return
    success = json.loads((out / SUCCESS_FILE).read_text())
    for part in success["parts"]:
        assert sha256_file(out / part["name"]) == part["sha256"], part
    assert sorted(p.name for p in out.glob("part-*")) == [p["name"] for p in success["parts"]]
    assert success["rows"] == ROWS
    pd.testing.assert_frame_equal(read_parts(out), alone)


def run_step(settings: Settings, source: Path, out: Path, shard: Shard, kill: Any) -> None:
    engine = score_in_process if kill is None else killed_after(*kill)
    try:
        run_job(settings, BatchJob(source, out, shard=shard, split_mb=0.001), engine)
    except InputError as error:  # another plan than the run's: refused, by design
        assert "differs from the run's plan" in error.message, error.message
    except Killed:
        pass


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_success_vouches_only_for_a_whole_run_and_a_run_can_always_complete(
    trained: Settings, reference: tuple[Path, Any], steps: list[tuple[int, int, Any]]
) -> None:
    source, alone = reference
    settings_ = trained.model_copy(update={"batch_run_id": RUN})
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        for count, index, kill in steps:
            run_step(settings_, source, out, Shard(index, count), kill)
            check_success(out, alone)
        # The run's plan is the first shard's: every shard of it, run to its end, completes it.
        plan = json.loads((out / SHARDS_DIR / RUN / PLAN_FILE).read_text())
        for index in range(plan["shards"]):
            run_step(settings_, source, out, Shard(index, plan["shards"]), None)
        assert (out / SUCCESS_FILE).exists()
        check_success(out, alone)
        assert not list(out.glob(".*partial*"))
