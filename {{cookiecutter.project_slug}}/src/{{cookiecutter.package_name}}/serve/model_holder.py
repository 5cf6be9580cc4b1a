"""The model holder: what the server has loaded, or why it could not."""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..core.artifact import ArtifactError, load_artifact
from ..core.model_source import model_folder
from ..core.runtime import Choice, RuntimeSetting
from ..core.uris import redacted

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed"]


@dataclass
class ModelHolder:
    model_dir: Path
    runtime_setting: RuntimeSetting = "auto"
    model_uri: str | None = None  # fetched into cache_dir first, when set
    cache_dir: Path = Path("model-cache")
    status: Status = "loading"
    model: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    load_seconds: float | None = None
    runtime: Choice | None = None  # which runtime serves, and why not ONNX when it is not

    @property
    def source(self) -> str:
        """Where the model comes from, as logs and /metadata may show it (no credentials)."""
        return redacted(self.model_uri) if self.model_uri else str(self.model_dir)

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def load(self) -> None:
        """Load the artifact; on failure keep serving, not ready, with the reason recorded."""
        started = time.perf_counter()
        try:
            folder = model_folder(self.model_dir, self.model_uri, self.cache_dir)
            artifact = load_artifact(folder, self.runtime_setting)
        except Exception as error:  # whatever the reason, report it and stay live
            reason = (
                str(error)
                if isinstance(error, ArtifactError)
                else f"{type(error).__name__}: {error}"
            )
            self.status, self.error = "failed", reason
            log.error("model not loaded", extra={"source": self.source, "reason": self.error})
            return
        self.model, self.metadata, self.runtime = (
            artifact.model,
            artifact.metadata,
            artifact.runtime,
        )
        self.load_seconds = time.perf_counter() - started
        self.status, self.error = "ready", None
        log.info(
            "model loaded",
            extra={
                "model_version": self.metadata.get("model_version"),
                "source": self.source,
                "runtime": self.runtime.name,
                "runtime_reason": self.runtime.reason,
                "seconds": round(self.load_seconds, 4),
            },
        )

    def prepare_thread(self) -> None:
        """Set up a model thread: the native model's library may keep settings per thread
        (ONNX Runtime keeps none, and core/model.py is not imported for it)."""
        if self.runtime is not None and self.runtime.name == "native":
            from ..core.model import prepare_model_thread

            prepare_model_thread()
