"""The output folder's protocol, the same for every engine and shard.

- The output of one input file is one file. Otherwise (a folder, a glob, shards or Dask) it is
  a folder of parts `part-00000.csv`, ... in input order.
- Every part is written under a temporary name of its own and renamed when complete.
- Each shard records its parts under `_shards/<run>/` when it is done; the shard that finds
  every shard of the run done checks that they all scored the same plan and writes `_SUCCESS`.
- `_SUCCESS` appears only when every part of the job is there. It holds the rows, the inputs,
  the model version and each part's rows and SHA-256.
- A retried shard rewrites only its own parts.
"""

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.formats import FORMATS
from ..core.schema import InputError
from .dataset import Dataset, Shard

SUCCESS_FILE = "_SUCCESS"
SHARDS_DIR = "_shards"


@dataclass(frozen=True)
class PartResult:
    piece: int
    name: str | None  # None: the piece held no rows
    rows: int
    sha256: str | None


def temporary_name(target: Path) -> Path:
    """A name of its own beside `target` (hidden, `.partial`), so that two attempts at one
    part, a retried pod beside the one it replaces, never share a file."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(handle)
    return Path(name)


def is_file_target(path: Path) -> bool:
    return path.suffix.lower() in FORMATS


def completed_by(target: Path, run_id: str | None) -> bool:
    """Whether `target` holds the complete result of this very run (a shard retried after its
    run completed has nothing left to do)."""
    success = target / SUCCESS_FILE
    if run_id is None or not success.is_file():
        return False
    return bool(json.loads(success.read_text()).get("run") == run_id)


def marker(target: Path, run: str, shard: Shard) -> Path:
    return target / SHARDS_DIR / run / f"{shard.index:05d}-of-{shard.count:05d}.json"


def start_folder(target: Path, overwrite: bool, shard: Shard, run: str) -> None:
    """Make the output folder; refuse one that holds a complete result unless overwriting.

    Overwriting with a single shard empties the folder. With several shards each removes the
    `_SUCCESS` marker only; parts no longer in the plan are removed when the run completes.
    """
    if (target / SUCCESS_FILE).exists():
        if not overwrite:
            raise InputError(
                ["--output"],
                f"{target} already holds a complete result ({SUCCESS_FILE} is there); "
                "use --overwrite to replace it",
            )
        (target / SUCCESS_FILE).unlink(missing_ok=True)
        if shard.count == 1:  # empty it, but keep it: it may be a volume's mount point
            for child in target.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    if target.exists() and not target.is_dir():
        raise InputError(["--output"], f"{target} exists and is not a folder")
    marker(target, run, shard).parent.mkdir(parents=True, exist_ok=True)
    marker(target, run, shard).unlink(missing_ok=True)  # this shard counts once it is done


def write_atomically(path: Path, text: str) -> None:
    partial = temporary_name(path)
    partial.write_text(text)
    os.replace(partial, path)


def finish_shard(
    target: Path,
    shard: Shard,
    run: str,
    fingerprint: str,
    dataset: Dataset,
    model_version: str,
    results: list[PartResult],
) -> None:
    """Record the shard as done; the shard that finds every shard of the run done checks that
    they all scored the same plan and writes `_SUCCESS`."""
    record = {
        "plan": fingerprint,
        "shard": asdict(shard),
        "parts": [asdict(r) for r in results],
    }
    write_atomically(marker(target, run, shard), json.dumps(record, indent=1))
    found = [marker(target, run, Shard(i, shard.count)) for i in range(shard.count)]
    if not all(path.exists() for path in found):
        return
    done = [json.loads(path.read_text()) for path in found]
    if any(entry["plan"] != fingerprint for entry in done):
        raise InputError(
            [str(target)],
            f"the shards of run {run} in {target} scored different plans: the input, the "
            "model or the options changed while the job ran. Run the job again.",
        )
    parts = sorted((p for entry in done for p in entry["parts"]), key=lambda p: p["piece"])
    kept = {p["name"] for p in parts if p["name"]}
    for stale in [*target.glob("part-*"), *target.glob(".part-*.partial")]:
        if stale.name not in kept:  # from an earlier plan, or a killed process
            stale.unlink(missing_ok=True)
    for other in (target / SHARDS_DIR).iterdir():
        if other.name != run:
            shutil.rmtree(other, ignore_errors=True)
    success = {
        "rows": sum(p["rows"] for p in parts),
        "inputs": [str(path) for path in dataset.parts],
        "format": dataset.kind,
        "model_version": model_version,
        "shards": shard.count,
        "run": run,
        "plan": fingerprint,
        "parts": [
            {"name": p["name"], "rows": p["rows"], "sha256": p["sha256"]}
            for p in parts
            if p["name"]
        ],
    }
    if success["rows"] == 0:
        raise InputError([str(dataset.parts[0])], "the dataset has no rows to score")
    write_atomically(target / SUCCESS_FILE, json.dumps(success, indent=1) + "\n")
