"""MLflow's model registry and run artifacts, through the tracking server's REST API: the
calls MLflow's own client makes, so that every image, the slim serving one included, resolves
`models:/` and `runs:/` without MLflow's client.

The server is MLFLOW_TRACKING_URI; credentials come as MLflow's client takes them: in the URI
(`https://user:password@host`), or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or
MLFLOW_TRACKING_TOKEN. Artifacts are downloaded through the server's artifact proxy
(`mlflow-artifacts:`, what `mlflow server` serves by default), from S3 by the caller, or from a
folder (`file:`) both can see.
"""

import base64
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from .uris import authorized_request

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PROXIED = "mlflow-artifacts:"
TIMEOUT_S = 60


class RegistryError(Exception):
    """The server refused a call (its own message), or could not be reached."""


@dataclass(frozen=True)
class Registry:
    server: str  # MLFLOW_TRACKING_URI as given: it may hold credentials

    def version(self, reference: str) -> tuple[str, str]:
        """(name, version) of `name/version` or `name@alias`, the alias resolved now."""
        if "@" in reference:
            name, alias = reference.rsplit("@", 1)
            found = self.call("/registered-models/alias", name=name, alias=alias)
        else:
            name, _, version = reference.rpartition("/")
            found = self.call("/model-versions/get", name=name, version=version)
        return name, str(found["model_version"]["version"])

    def version_artifacts(self, name: str, version: str) -> str:
        """Where a model version's files are (MLflow's own answer: its download URI)."""
        found = self.call("/model-versions/get-download-uri", name=name, version=version)
        return str(found["artifact_uri"])

    def run_artifacts(self, run_id: str, path: str) -> str:
        """Where the files at `path` among a run's artifacts are."""
        info = self.call("/runs/get", run_id=run_id)["run"]["info"]
        return f"{str(info['artifact_uri']).rstrip('/')}/{path.strip('/')}".rstrip("/")

    def call(self, endpoint: str, **params: str) -> dict[str, Any]:
        return dict(json.loads(self._get(f"{API}{endpoint}?{urlencode(params)}")))

    def download_proxied(self, artifact_uri: str, into: Path) -> None:
        """Every file under an `mlflow-artifacts:` URI, through the server, into `into`."""
        root = urlsplit(artifact_uri).path.strip("/")
        self._download_folder(root, into)

    def _download_folder(self, folder: str, into: Path) -> None:
        listing = json.loads(self._get(f"{ARTIFACTS}?{urlencode({'path': folder})}"))
        for entry in listing.get("files", []):
            name = str(entry["path"]).rpartition("/")[2]
            if name in ("", ".", ".."):
                raise RegistryError(f"the server listed {entry['path']!r}, which is no file name")
            if entry.get("is_dir"):
                (into / name).mkdir()
                self._download_folder(f"{folder}/{name}", into / name)
                continue
            request = self._request(f"{ARTIFACTS}/{quote(f'{folder}/{name}')}")
            with self._open(request) as response, (into / name).open("wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)

    def _get(self, path: str) -> bytes:
        with self._open(self._request(path)) as response:
            return bytes(response.read())

    def _request(self, path: str) -> urllib.request.Request:
        request = authorized_request(self.server.rstrip("/") + path)
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if token:
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        elif user:
            pair = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
            basic = "Basic " + base64.b64encode(pair).decode()
            request.add_unredirected_header("Authorization", basic)
        return request

    def _open(self, request: urllib.request.Request) -> Any:
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                message = str(json.loads(body).get("message") or "")
            except ValueError:
                message = ""
            raise RegistryError(message or f"HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(f"cannot reach it: {reason}") from None


def local_folder(artifact_uri: str) -> Path | None:
    """The folder of a `file:` artifact URI (or a plain path), else None."""
    parts = urlsplit(artifact_uri)
    if parts.scheme in ("", "file"):
        return Path(unquote(parts.path))
    return None
