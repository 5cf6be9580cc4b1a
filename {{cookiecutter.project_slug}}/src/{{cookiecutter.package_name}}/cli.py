"""The command line: `{{ cookiecutter.package_name }} train | predict | serve | schema infer`.

Exit codes: 0 success, 1 failure (bad input, no model, training error), 2 bad usage or
configuration (a setting the model or the image cannot meet), 130/143 interrupted by
SIGINT/SIGTERM.
"""

import argparse
import importlib.util
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from .core.settings import PROJECT_VERSION, get_settings
from .core.storage import location


class Interrupted(BaseException):
    """SIGTERM or SIGINT. Not an Exception, like KeyboardInterrupt: no `except Exception`
    on the way up may swallow it, so the command still exits 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def stop_on_signals() -> None:
    """Turn SIGTERM/SIGINT into an exception. As PID 1 in a container, Python would
    otherwise ignore SIGTERM and `docker stop` would wait for its timeout."""
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)


def run_train(args: argparse.Namespace) -> int:
    try:
        from .training.store import check_output
        from .training.train import train, write_failure
    except ModuleNotFoundError as error:
        print(
            f"train: not in this image: it has no {error.name}. This is the serving image, "
            "which serves and scores verified ONNX models only; train with the full image "
            "(the Dockerfile's default target).",
            file=sys.stderr,
        )
        return 2
    from .training.publish import PublishError

    if args.output is not None:
        try:
            check_output(args.output)
        except ValueError as error:
            print(f"train: {error}", file=sys.stderr)
            return 2
    settings = get_settings()
    try:
        train(settings, args.output)
    except PublishError as error:
        write_failure(settings, f"publishing failed: {error}")
        print(
            f"train: the model is saved in {settings.model_dir}; publishing failed: {error}",
            file=sys.stderr,
        )
        return 1
    except Interrupted:
        write_failure(settings, "training was interrupted; the previous model was kept")
        raise
    except Exception as error:
        write_failure(settings, f"{type(error).__name__}: {error}")
        print(f"train: failed: {error}", file=sys.stderr)
        if get_settings().log_level == "debug":
            traceback.print_exc()
        print("train: the previous model, if any, was kept.", file=sys.stderr)
        return 1
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from .batch.dataset import resolve_shard
    from .batch.engines import ClusterError
    from .batch.engines.local import predict
    from .batch.job import BatchJob
    from .core.artifact import ArtifactError
    from .core.runtime import RuntimeSettingError
    from .core.schema import InputError

    settings = get_settings()
    try:
        shard = resolve_shard(args.shard_index, args.shard_count, settings)
        keep = (
            None if args.keep_columns is None else tuple(filter(None, args.keep_columns.split(",")))
        )
        job = BatchJob(
            source=args.input,
            target=args.output,
            shard=shard,
            chunk_rows=args.chunk_rows,
            keep_columns=keep,
            split_mb=args.split_mb,
            overwrite=args.overwrite,
        )
        if args.engine == "dask":
            from .batch.engines.dask import predict_on_dask

            if importlib.util.find_spec("distributed") is None:
                print(
                    "predict: the dask engine is not in this image: it has no Dask. Use the "
                    "full image (the Dockerfile's default target), or --engine local.",
                    file=sys.stderr,
                )
                return 2
            predict_on_dask(settings, job, args.scheduler or settings.dask_scheduler_address)
        else:
            predict(settings, job)
    except InputError as error:
        print(f"predict: failed: {error.message}", file=sys.stderr)
        return 1
    except RuntimeSettingError as error:
        print(f"configuration error: MODEL_RUNTIME: {error}", file=sys.stderr)
        return 2
    except (ArtifactError, ClusterError, OSError) as error:
        print(f"predict: failed: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # unforeseen: one line, the traceback at LOG_LEVEL=debug
        print(f"predict: failed: {type(error).__name__}: {error}", file=sys.stderr)
        if settings.log_level == "debug":
            traceback.print_exc()
        return 1
    return 0


def run_schema_infer(args: argparse.Namespace) -> int:
    try:
        from .training.schema_inference import SAMPLE_ROWS, infer_files
    except ModuleNotFoundError as error:
        print(
            f"schema infer: not in this image: it has no {error.name}. Use the full image "
            "(the Dockerfile's default target).",
            file=sys.stderr,
        )
        return 2
    from .core.schema import SCHEMA_FILE, InputError

    output = args.output or SCHEMA_FILE
    try:
        inferred = infer_files(args.path, args.target, args.task, args.ignore, output, args.sample)
    except (InputError, OSError) as error:
        print(f"schema infer: failed: {getattr(error, 'message', error)}", file=sys.stderr)
        return 1
    schema = inferred.schema
    kinds = ", ".join(
        f"{sum(f.type == kind for f in schema.features)} {kind}"
        for kind in ("number", "integer", "boolean", "category")
        if any(f.type == kind for f in schema.features)
    )
    nullable = sum(f.nullable for f in schema.features)
    task = schema.task + (f" ({len(schema.classes)} classes)" if schema.classes else "")
    print(f"schema infer: wrote {output}: {task}, target {schema.target!r}, {inferred.rows} rows")
    print(f"schema infer: {len(schema.features)} features ({kinds}), {nullable} may be missing")
    if inferred.unlabelled:
        print(f"schema infer: left out {inferred.unlabelled} row(s) whose target is missing")
    for name, why in inferred.left_out.items():
        print(f"schema infer: left out {name!r}: {why}")
    if args.sample:
        print(
            f"schema infer: wrote the first {SAMPLE_ROWS} rows without the target to {args.sample}"
        )
    return 0


def run_serve(_args: argparse.Namespace) -> int:
    from .serve.run import run

    return run(get_settings())


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="{{ cookiecutter.package_name }}",
        description="{{ cookiecutter.description }}",
        epilog="Settings come from environment variables (MODEL_DIR, PORT, ...): see the README.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {PROJECT_VERSION}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model and save it to MODEL_DIR",
        description="Train on the files in TRAINING_DATA_DIR (CSV, Parquet or JSON Lines with "
        "the schema's feature and target columns) and save the model, its metadata and a "
        "report to MODEL_DIR. The previous model is kept if training fails.",
    )
    train.add_argument(
        "--output",
        metavar="URI",
        help="also copy the saved model to s3://bucket/prefix (metadata.json last), where "
        "MODEL_URI can fetch it",
    )
    train.set_defaults(run=run_train)

    predict = commands.add_parser(
        "predict",
        help="score a file or a dataset with the model in MODEL_DIR",
        description="Add predictions to every row of a CSV, Parquet or JSON Lines file, folder "
        "or glob, reading in chunks so any size fits in memory. One input file gives one output "
        "file; a dataset, shards or Dask give a folder of parts and a _SUCCESS marker.",
    )
    predict.add_argument(
        "--input",
        type=location,
        required=True,
        help="file, folder or quoted glob to score; s3://bucket/prefix/ for objects",
    )
    predict.add_argument(
        "--output",
        type=location,
        required=True,
        help="output file (same format) or folder; s3://bucket/prefix/ for objects",
    )
    predict.add_argument(
        "--keep-columns",
        metavar="A,B",
        help="extra (non-feature) columns to pass through, comma-separated; '' for none "
        "(default: all)",
    )
    predict.add_argument(
        "--shard-index",
        type=int,
        help="this shard, from 0 (default: JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX)",
    )
    predict.add_argument(
        "--shard-count",
        type=int,
        help="how many shards (default: SHARD_COUNT or AWS_BATCH_JOB_ARRAY_SIZE, else 1)",
    )
    predict.add_argument(
        "--engine", choices=["local", "dask"], default="local", help="where to score"
    )
    predict.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler, e.g. tcp://host:8786 (default: DASK_SCHEDULER_ADDRESS)",
    )
    predict.add_argument(
        "--overwrite", action="store_true", help="replace an output folder's complete result"
    )
    predict.add_argument(
        "--chunk-rows", type=int, default=50_000, help="rows read at a time (default: 50000)"
    )
    predict.add_argument(
        "--split-mb",
        type=float,
        default=64,
        help="split CSV and JSON Lines files into pieces of about this size; 0: never "
        "(needs one record per line; default: 64)",
    )
    predict.set_defaults(run=run_predict)

    serve = commands.add_parser(
        "serve",
        help="serve the model over HTTP (the image's default)",
        description="Serve predictions over HTTP on HOST:PORT (default 0.0.0.0:8080): /predict, "
        "the Open Inference Protocol under /v2, SageMaker's /invocations and /ping, "
        "probes and /metrics.",
    )
    serve.set_defaults(run=run_serve)

    schema = commands.add_parser(
        "schema",
        help="write the data schema from a data file",
        description="The data schema (schema.yaml in the package) says what the model takes "
        "and predicts; every API and check follows from it.",
    )
    schema_commands = schema.add_subparsers(dest="schema_command", metavar="COMMAND", required=True)
    infer = schema_commands.add_parser(
        "infer",
        help="infer the schema from a CSV, Parquet or JSON Lines file",
        description="Read the file and write its schema: each column's type, whether it has "
        "missing values, a category's values, and the task (classification or regression) "
        "from the target. Columns that cannot be features are left out, with the reason.",
    )
    infer.add_argument("path", type=Path, help="the data file, with the target column")
    infer.add_argument("--target", required=True, metavar="COLUMN", help="the column to predict")
    infer.add_argument(
        "--task",
        choices=["classification", "regression"],
        help="override the task inferred from the target",
    )
    infer.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="COLUMN",
        help="a column that is not a feature (an id, a date); repeat for more",
    )
    infer.add_argument(
        "--output", type=Path, help="where to write the schema (default: the package's schema.yaml)"
    )
    infer.add_argument(
        "--sample",
        type=Path,
        metavar="CSV",
        help="also write the data's first rows without the target here, as a file to score",
    )
    infer.set_defaults(run=run_schema_infer)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command is None:
        parser().print_help()
        return 2
    try:
        get_settings()
    except ValidationError as error:
        for problem in error.errors(include_url=False):
            name = str(problem["loc"][0]).upper() if problem["loc"] else "settings"
            print(f"configuration error: {name}: {problem['msg']}", file=sys.stderr)
        return 2
    if args.command != "serve":  # the server handles its own signals
        stop_on_signals()
    try:
        return int(args.run(args))
    except Interrupted as interrupted:
        print(f"{args.command}: stopped by {interrupted}", file=sys.stderr)
        return interrupted.exit_code
