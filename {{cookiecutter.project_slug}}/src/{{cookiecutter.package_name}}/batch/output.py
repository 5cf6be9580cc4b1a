"""The output folder's protocol, the same for every engine and shard.

- The output of one input file is one file. Otherwise (a folder, a glob, shards or Dask) it is
  a folder of parts `part-00000.csv`, ... in input order: on disk, or under a prefix of an
  object store (folders.py says how the two differ).
- Every part is written under a temporary name of its own, locked, and renamed when complete
  (files.py), or uploaded whole once complete: duplicate copies of a shard never remove each
  other's files, and the last to finish wins with the same bytes.
- A run has one plan: its first shard records it in `_shards/<run>/plan.json`, and a shard
  whose plan differs (the shard count, the input, the model, the options) stops before it
  writes a part. Each shard records its plan and parts under `_shards/<run>/` when it is done;
  the shard that finds every shard of the run done, all with the same plan, writes `_SUCCESS`.
- `_SUCCESS` appears only when every part of the job is there. It holds the rows, the inputs,
  the model version, the plan and each part's rows and SHA-256.
- A retried shard rewrites only its own parts.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..core.formats import FORMATS
from ..core.schema import InputError
from ..core.storage import Location, ObjectPath
from .dataset import Dataset, Shard
from .files import make_folder, remove_abandoned_beside
from .folders import folder_at

SUCCESS_FILE = "_SUCCESS"
SHARDS_DIR = "_shards"
PLAN_FILE = "plan.json"  # in _shards/<run>/: the plan the run's first shard scored


PREDICTION = "prediction"  # the column of labels (or a regressor's values) scoring adds


def probability_column(class_name: object) -> str:
    return f"probability_{class_name}"


def output_columns(classes: Sequence[object]) -> list[str]:
    """The columns scoring adds to each row: the prediction, and a classifier's
    probabilities."""
    return [PREDICTION, *(probability_column(name) for name in classes)]


@dataclass(frozen=True)
class PartResult:
    piece: int
    name: str | None  # None: the piece held no rows
    rows: int
    sha256: str | None
    size: int | None = None  # bytes
    stored_ns: int | None = None  # in an object store: the time it lists for the part


def is_file_target(path: Location) -> bool:
    return path.suffix.lower() in FORMATS


def completed_by(target: Location, run_id: str | None) -> bool:
    """Whether `target` holds the complete result of this very run (a shard retried after its
    run completed has nothing left to do)."""
    if run_id is None:
        return False
    success = folder_at(target).read(SUCCESS_FILE)
    return success is not None and json.loads(success).get("run") == run_id


def marker(run: str, shard: Shard) -> str:
    """The name of a shard's record in the output folder."""
    return f"{SHARDS_DIR}/{run}/{shard.index:05d}-of-{shard.count:05d}.json"


def differences(claimed: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """How the plan `mine` differs from the plan `claimed` (plan_identity's fields)."""
    if not isinstance(claimed, dict):
        return ["another plan"]
    found = []
    if claimed.get("shards") != mine["shards"]:
        found.append(f"{mine['shards']} shards, not {claimed.get('shards')}")
    if claimed.get("input") != mine["input"]:
        found.append("another input (its files, or their sizes or times)")
    if claimed.get("model_version") != mine["model_version"]:
        found.append(f"model version {mine['model_version']}, not {claimed.get('model_version')}")
    if claimed.get("options") != mine["options"]:
        found.append("other options (the split, the columns kept, or the input's columns)")
    return found


def disagreement(target: Location, run: str, shard: Shard | str, found: list[str]) -> InputError:
    return InputError(
        [str(target)],
        f"run {run} in {target}: shard {shard} differs from the run's plan: it has "
        f"{'; '.join(found)}. The run will not be marked complete ({SUCCESS_FILE}); score the "
        "whole job again under a new BATCH_RUN_ID",
    )


def claim_run(target: Location, run: str, shard: Shard, identity: dict[str, Any]) -> None:
    """The run's plan is the first shard's; a shard with another plan stops here, before it
    writes a part."""
    claimed = folder_at(target).claim(f"{SHARDS_DIR}/{run}/{PLAN_FILE}", encoded(identity))
    if found := differences(json.loads(claimed), identity):
        raise disagreement(target, run, shard, found)


def encoded(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=1) + "\n").encode()


def start_file(target: Location) -> None:
    """Make the output file's folder, and remove what killed writers of it left there."""
    if isinstance(target, ObjectPath):
        return  # an object needs no folder, and an upload cut short leaves nothing
    make_folder(target.parent)
    remove_abandoned_beside(target)


def start_folder(
    target: Location, overwrite: bool, shard: Shard, run: str, identity: dict[str, Any]
) -> None:
    """Make the output folder; refuse one that holds a complete result unless overwriting;
    claim the run's plan (claim_run).

    Overwriting with a single shard empties the folder. With several shards each removes the
    `_SUCCESS` marker only; parts no longer in the plan are removed when the run completes.
    """
    folder = folder_at(target)
    folder.check()
    if folder.read(SUCCESS_FILE) is not None:
        if not overwrite:
            raise InputError(
                ["--output"],
                f"{target} already holds a complete result ({SUCCESS_FILE} is there); "
                "use --overwrite to replace it",
            )
        folder.delete(SUCCESS_FILE)
        if shard.count == 1:
            folder.clear()
    if overwrite and shard.count == 1:  # a run of its own: an earlier plan of it is replaced
        folder.delete_tree(f"{SHARDS_DIR}/{run}")
    claim_run(target, run, shard, identity)
    folder.delete(marker(run, shard))  # this shard counts once it is done


def finish_shard(
    target: Location,
    shard: Shard,
    run: str,
    identity: dict[str, Any],
    dataset: Dataset,
    model_version: str,
    results: list[PartResult],
) -> None:
    """Record the shard as done; the shard that finds every shard of the run done, each with
    the same plan, writes `_SUCCESS`. A shard that finds another plan among them fails."""
    folder = folder_at(target)
    record = {"plan": identity, "shard": asdict(shard), "parts": [asdict(r) for r in results]}
    folder.write(marker(run, shard), encoded(record))
    records = f"{SHARDS_DIR}/{run}"
    done = {}
    for name in folder.names(records, "*-of-*.json"):
        content = folder.read(f"{records}/{name}")
        if content is not None:
            done[name] = json.loads(content)
    for entry in done.values():
        if found := differences(entry["plan"], identity):
            raise disagreement(target, run, Shard(**entry["shard"]), found)
    if len(done) < shard.count:
        return  # others are still at work
    parts = sorted((p for entry in done.values() for p in entry["parts"]), key=lambda p: p["piece"])
    for part in parts:  # what the records vouch for must be what is there now
        if part["name"] and not folder.holds(part):
            raise InputError(
                [str(target)],
                f"run {run} in {target}: {part['name']} is not the part its shard wrote (another "
                f"run wrote into the folder meanwhile), so the run will not be marked complete "
                f"({SUCCESS_FILE}); score the whole job again",
            )
    kept = {p["name"] for p in parts if p["name"]}
    for stale in folder.names("", "part-*"):
        if stale not in kept:  # from an earlier plan
            folder.delete(stale)
    folder.tidy()
    for other in folder.folders(SHARDS_DIR):
        if other != run:
            folder.delete_tree(f"{SHARDS_DIR}/{other}")
    success = {
        "rows": sum(p["rows"] for p in parts),
        "inputs": [str(path) for path in dataset.parts],
        "format": dataset.kind,
        "model_version": model_version,
        "shards": shard.count,
        "run": run,
        "plan": identity,
        "parts": [
            {"name": p["name"], "rows": p["rows"], "sha256": p["sha256"]}
            for p in parts
            if p["name"]
        ],
    }
    if success["rows"] == 0:
        raise InputError([str(dataset.parts[0])], "the dataset has no rows to score")
    folder.write(SUCCESS_FILE, encoded(success))
