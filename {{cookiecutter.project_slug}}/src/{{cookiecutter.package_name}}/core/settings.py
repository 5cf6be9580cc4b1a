"""Every setting of the project: one environment variable each, with its type and default.

Everything else imports `get_settings()`; nothing reads `os.environ` directly, but for the
variables of the clients of a store, which also read them themselves (AWS_* for S3,
MLFLOW_TRACKING_URI and MLFLOW_TRACKING_* for the registry in core/mlflow_registry.py, so that
every process of a job, a Dask worker's too, reaches the same store). The generated README lists these
variables, and `GET /metadata` shows their values (never the token).
"""

import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .uris import redacted

PROJECT_NAME = "{{ cookiecutter.project_slug }}"
PROJECT_VERSION = "{{ cookiecutter.version }}"
# The model framework, written into metadata.json: a model saved by another one is refused.
FRAMEWORK = "{{ cookiecutter._framework_names[cookiecutter.framework] }}"
# A name that becomes a folder of the output (BATCH_RUN_ID): plain, bounded, never a path.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# An MLflow model alias (MLFLOW_ALIAS).
MLFLOW_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,255}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Paths. The image sets MODEL_DIR=/opt/ml/model; the others follow the SageMaker layout.
    model_dir: Path = Field(Path("artifacts/model"), description="Where the model artifact lives.")
    training_data_dir: Path = Field(
        Path("/opt/ml/input/data/train"),
        description="Training data (CSV, Parquet or JSON Lines files). The full image holds "
        "the project's data/train/ there.",
    )
    hyperparameters_file: Path = Field(
        Path("/opt/ml/input/config/hyperparameters.json"),
        description="JSON object of training hyperparameters, read when it exists.",
    )
    failure_file: Path = Field(
        Path("/opt/ml/output/failure"),
        description="Where a failed training writes its reason, when that folder exists.",
    )

    model_uri: str | None = Field(
        None,
        description="Where to fetch the model from instead of MODEL_DIR: a path, "
        "s3://bucket/prefix (the AWS_* variables reach the store), an https:// .tar.gz or "
        ".zip of the model folder, or MLflow's models:/NAME/VERSION, "
        "models:/NAME@ALIAS or runs:/RUN/model. Fetched before the server is ready.",
    )
    model_cache_dir: Path = Field(
        Path(tempfile.gettempdir()) / "model-cache",
        description="Where a model fetched from MODEL_URI is kept, one folder per version.",
    )

    # Publishing a trained model (training/publish.py; the full image).
    mlflow_tracking_uri: str | None = Field(
        None,
        description="The MLflow tracking server that `train` publishes to, and that "
        "MODEL_URI's models:/ and runs:/ come from; unset: training publishes nothing.",
    )
    mlflow_experiment_name: str = Field(
        PROJECT_NAME, description="The MLflow experiment of training's runs."
    )
    mlflow_model_name: str = Field(
        PROJECT_NAME, description="The registered model that each training adds a version to."
    )
    mlflow_alias: str | None = Field(
        None,
        description="An alias (for example champion) that training moves to its new version "
        "when its held-out macro F1 (classifier) or RMSE (regressor) is no worse than the "
        "alias's version's; unset: no alias moves.",
    )

    # Which model serves and scores (runtime.py).
    model_runtime: Literal["auto", "onnx", "native"] = Field(
        "auto",
        description="auto: the ONNX model when training verified it, else the native one; "
        "onnx or native: that one only (onnx stops start-up when there is none).",
    )

    # HTTP and gRPC servers.
    host: str = Field("0.0.0.0", description="Address the server listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the server listens on.")
    grpc_port: int = Field(
        8081, ge=1, le=65535, description="Port of the gRPC server (Open Inference Protocol)."
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="Log level of the JSON logs on stdout."
    )
    # 8 s fits inside `docker stop`'s 10 s before SIGKILL. Raise it together with
    # `docker stop -t` or Kubernetes' terminationGracePeriodSeconds, never above them.
    graceful_timeout: int = Field(
        8, gt=0, description="Seconds in-flight requests get to finish after SIGTERM."
    )
    api_token: SecretStr | None = Field(
        None, description="When set, requests other than health and metrics need this bearer token."
    )
    api_token_file: Path | None = Field(
        None, description="File holding API_TOKEN (a secret mount)."
    )

    # Limits.
    max_request_bytes: int = Field(
        6 * 1024 * 1024, gt=0, description="Largest request body accepted (413 above)."
    )
    grpc_max_message_bytes: int = Field(
        6 * 1024 * 1024,
        gt=0,
        description="Largest gRPC message received or sent (RESOURCE_EXHAUSTED above).",
    )
    max_batch_rows: int = Field(10_000, gt=0, description="Most rows in one request (413 above).")

    # Adaptive micro-batching of concurrent prediction requests.
    batching: bool = Field(True, description="Gather concurrent requests into one model call.")
    batch_max_rows: int = Field(512, gt=0, description="Most rows in one gathered model call.")
    batch_max_latency_ms: float = Field(
        2.0, ge=0, description="Longest a request waits for others to join its batch."
    )

    # Payload logging (serve/payload_log.py).
    payload_log_url: str | None = Field(
        None,
        description="Where to send each prediction request and response as CloudEvents in "
        "KServe's logger format; unset: none are sent.",
    )
    payload_log_sample: float = Field(
        1.0, ge=0, le=1, description="The share of requests whose payloads are sent."
    )
    pod_namespace: str | None = Field(
        None, description="The Kubernetes namespace, named in payload events (the downward API)."
    )

    # Batch scoring. A Kubernetes Indexed Job sets JOB_COMPLETION_INDEX and its manifest sets
    # SHARD_COUNT; AWS Batch sets AWS_BATCH_JOB_ARRAY_INDEX. `predict` flags override them.
    shard_count: int | None = Field(
        None, description="How many shards the batch job has (a Kubernetes Job's completions)."
    )
    job_completion_index: int | None = Field(
        None, description="This shard's index, set by a Kubernetes Indexed Job."
    )
    aws_batch_job_array_index: int | None = Field(
        None, description="This shard's index, set by an AWS Batch array job."
    )
    aws_batch_job_array_size: int | None = Field(
        None, description="How many shards an AWS Batch array job has (or set SHARD_COUNT)."
    )
    batch_run_id: str | None = Field(
        None,
        description="One run of a sharded job, the same in all its shards (a Kubernetes Job's "
        "uid); a retried shard of a completed run then has nothing to do.",
    )
    dask_scheduler_address: str | None = Field(
        None, description="Dask scheduler of `predict --engine dask`, e.g. tcp://dask:8786."
    )
    progress_interval: float = Field(
        10.0, gt=0, description="Seconds between the progress lines of `predict`."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Format of `predict`'s progress lines: text, or one JSON object each."
    )

    @field_validator("log_level", "log_format", "model_runtime", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("mlflow_alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if not value:  # MLFLOW_ALIAS= : no alias
            return None
        reserved = value.lower() == "latest" or re.fullmatch(r"[vV]\d+", value)
        if not MLFLOW_ALIAS.fullmatch(value) or reserved:
            raise ValueError(
                "must be letters, digits, '_' or '-' (at most 255), and neither 'latest' nor "
                "'v' with a number, which MLflow keeps for versions"
            )
        return value

    @field_validator("batch_run_id")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value == "":  # BATCH_RUN_ID= in a manifest: no run id
            return None
        if value is not None and (not PLAIN_NAME.fullmatch(value) or ".." in value):
            raise ValueError(
                "must be a plain name of at most 128 letters, digits, '.', '_' or '-' that "
                "starts with a letter or digit (a Kubernetes Job's uid fits); it names a "
                "folder inside the output"
            )
        return value

    def token(self) -> str | None:
        """The bearer token from API_TOKEN or API_TOKEN_FILE; None (auth off) if neither
        is set. An empty token is refused rather than taken as "no token needed"."""
        if self.api_token is not None:
            token = self.api_token.get_secret_value().strip()
        elif self.api_token_file is not None:
            token = self.api_token_file.read_text().strip()
        else:
            return None
        if not token:
            raise ValueError(
                "API_TOKEN (or the API_TOKEN_FILE's content) is empty; set a token or unset it"
            )
        return token

    def public(self) -> dict[str, object]:
        """The settings as shown by `GET /metadata`: secrets reduced to whether they are set."""
        shown: dict[str, object] = {}
        for name, value in self.model_dump(mode="json").items():
            if name in {"api_token", "api_token_file"}:
                value = value is not None
            elif name in {"model_uri", "payload_log_url", "mlflow_tracking_uri"} and value:
                value = redacted(value)
            shown[name.upper()] = value
        return shown


@lru_cache
def get_settings() -> Settings:
    return Settings()
