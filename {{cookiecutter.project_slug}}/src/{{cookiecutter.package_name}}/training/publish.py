"""Publishing a trained model to an MLflow tracking server (MLFLOW_TRACKING_URI): a run with
the hyperparameters, the held-out metrics and the artifact's files (the same files as on disk,
under `model/`), a new version of the registered model MLFLOW_MODEL_NAME, and, with
MLFLOW_ALIAS set, that alias moved to the new version when its headline metric is no worse
than the alias's version's.

The headline metric is macro F1 for a classifier (higher is better) and RMSE for a regressor
(lower is better), on each model's own held-out split; an alias whose version has no run or
no such metric moves. Reading the alias's figure and moving it are two calls: two trainings
that finish at once may both move it, the later one winning.

The MLflow client reads its usual variables too: MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) for a server behind authentication,
MLFLOW_TRACKING_INSECURE_TLS. The server must serve its artifacts (`mlflow server`'s default,
`--serve-artifacts`): the image has no client for the cloud stores behind it. Unless set, the
client retries an unreachable server MLFLOW_HTTP_REQUEST_MAX_RETRIES=3 times (about half a
minute), and prints no links to the runs (they would show the URI as given).
"""

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.schema import SCHEMA
from ..core.settings import Settings
from ..core.uris import redacted, scrubbed

# The folder of the run's artifacts that holds the model: MODEL_URI=runs:/<run>/model.
ARTIFACT_PATH = "model"

# MLflow's client settings, unless given: few retries of an unreachable server (its default
# waits about four minutes), and no links to runs printed (they would show the URI as given).
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def mlflow_client_defaults() -> None:
    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)


class PublishError(Exception):
    """The model is saved on disk, but the tracking server did not take it."""


@dataclass(frozen=True)
class Headline:
    """The metric that decides whether a new version takes the alias."""

    name: str
    better: Callable[[float, float], bool]  # (new, old): is new no worse than old?

    def no_worse(self, new: float, old: float | None) -> bool:
        return old is None or math.isnan(old) or self.better(new, old)


def headline() -> Headline:
    if SCHEMA.is_classification:
        return Headline("f1_macro", lambda new, old: new >= old)
    return Headline("rmse", lambda new, old: new <= old)


@dataclass(frozen=True)
class Published:
    run_id: str
    version: str
    alias_moved: bool
    message: str  # one line for the training log


def publish(settings: Settings, model_dir: Path, metadata: dict[str, Any]) -> Published:
    """Log the run, register the version and move the alias; PublishError when the server
    refuses or cannot be reached."""
    mlflow_client_defaults()
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = str(settings.mlflow_tracking_uri)
    try:
        return _publish(mlflow, uri, settings, model_dir, metadata)
    except MlflowException as error:
        first_line = (str(error.message).strip().splitlines() or [""])[0]
        raise PublishError(f"MLflow at {redacted(uri)}: {scrubbed(first_line, uri)}") from None
    except OSError as error:  # connection refused, DNS, TLS
        raise PublishError(
            f"MLflow at {redacted(uri)}: unreachable: {scrubbed(str(error), uri)}"
        ) from None


def _publish(
    mlflow: Any, uri: str, settings: Settings, model_dir: Path, metadata: dict[str, Any]
) -> Published:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_name = settings.mlflow_experiment_name
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        _unless_exists(lambda: client.create_experiment(experiment_name))
        experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise PublishError(f"MLflow at {redacted(uri)}: no experiment {experiment_name!r}")
    experiment_id = experiment.experiment_id
    version = str(metadata["model_version"])
    run = client.create_run(
        experiment_id,
        run_name=f"{metadata['model_name']} {version}",
        tags={
            "model_version": version,
            "project_version": str(metadata["project_version"]),
            "task": str(metadata["task"]),
            "training_data_sha256": str(metadata["training_data"]["sha256"]),
        },
    )
    run_id = run.info.run_id
    try:
        for name, value in sorted(metadata["hyperparameters"].items()):
            client.log_param(run_id, name, value)
        for name, value in sorted(metadata["metrics"].items()):
            client.log_metric(run_id, name, float(value))
        for path in artifact_files(model_dir):
            folder = path.parent.relative_to(model_dir)
            client.log_artifact(run_id, str(path), str(Path(ARTIFACT_PATH) / folder))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")

    name = settings.mlflow_model_name
    _unless_exists(lambda: client.create_registered_model(name))
    registered = client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
        run_id=run_id,
        tags={"model_version": version},
    )
    message = f"published run {run_id} as {name} version {registered.version}"
    alias = settings.mlflow_alias
    if not alias:
        return Published(run_id, str(registered.version), False, message)

    rule = headline()
    new = float(metadata["metrics"][rule.name])
    current = _alias_version(client, name, alias)
    old = _figure(client, current.run_id, rule.name) if current is not None else None
    if rule.no_worse(new, old):
        client.set_registered_model_alias(name, alias, registered.version)
        was = "" if old is None else f" ({rule.name} {new:.4g}, was {old:.4g})"
        message += f"; alias {alias} moved to it{was}"
        return Published(run_id, str(registered.version), True, message)
    message += (
        f"; alias {alias} stays on version {current.version}: {rule.name} {new:.4g} is worse "
        f"than its {old:.4g}"
    )
    return Published(run_id, str(registered.version), False, message)


def _unless_exists(create: Callable[[], object]) -> None:
    """Create what another training may create at the same time."""
    from mlflow.exceptions import MlflowException

    try:
        create()
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _figure(client: Any, run_id: str | None, metric: str) -> float | None:
    """The metric of the alias's version's run; None when it has no run (a version
    registered by hand) or the run is gone."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        value = client.get_run(run_id).data.metrics.get(metric)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return None if value is None else float(value)


def _alias_version(client: Any, name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def artifact_files(model_dir: Path) -> list[Path]:
    """The artifact's files as on disk: every file under MODEL_DIR but hidden ones (a
    training's staging folder, a lock)."""
    return sorted(
        path
        for path in model_dir.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(model_dir).parts)
    )
