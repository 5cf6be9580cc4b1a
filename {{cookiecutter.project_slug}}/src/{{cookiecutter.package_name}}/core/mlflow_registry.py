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
import http.client
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from .uris import authorized_request, scrubbed

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PROXIED = "mlflow-artifacts:"
TIMEOUT_S = 60


class RegistryError(Exception):
    """The server refused a call (its own message), or could not be reached."""


@dataclass(frozen=True)
class Registry:
    server: str = field(repr=False)  # MLFLOW_TRACKING_URI as given: it may hold credentials

    def __post_init__(self) -> None:
        if not self.server.startswith(("http://", "https://")):
            raise RegistryError(
                "MLFLOW_TRACKING_URI must be an MLflow tracking server's http:// or https:// "
                "address to read its registry (a database or a folder is read by MLflow's "
                "own server)"
            )

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
        """The JSON answer of a GET of the registry's `endpoint`."""
        return self._json(f"{API}{endpoint}?{urlencode(params)}")

    def _json(self, path: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self._get(path)))
        except (ValueError, TypeError):
            raise RegistryError("its answer is not MLflow's (not a JSON object)") from None

    def download_proxied(self, artifact_uri: str, into: Path) -> None:
        """Every file under an `mlflow-artifacts:` URI, through this server, into `into`. (The
        URI's own host, if any, is not used: the tracking server is the proxy.)"""
        root = artifact_uri.removeprefix(PROXIED).lstrip("/")
        if artifact_uri.startswith(PROXIED + "//"):
            root = root.partition("/")[2]  # mlflow-artifacts://host:port/path
        self._download_folder(root.strip("/"), into)

    def _download_folder(self, folder: str, into: Path) -> None:
        listing = self._json(f"{ARTIFACTS}?{urlencode({'path': folder})}")
        for entry in listing.get("files", []):
            name = str(entry["path"]).rpartition("/")[2]
            if name in ("", ".", ".."):
                raise RegistryError(f"the server listed {entry['path']!r}, which is no file name")
            if entry.get("is_dir"):
                (into / name).mkdir()
                self._download_folder(f"{folder}/{name}", into / name)
                continue
            written = 0
            request = self._request(f"{ARTIFACTS}/{quote(f'{folder}/{name}')}")
            with self._open(request) as response, (into / name).open("wb") as out:
                while chunk := response.read(1 << 20):
                    written += out.write(chunk)
            expected = entry.get("file_size")
            if expected is not None and written != int(expected):
                raise RegistryError(
                    f"{folder}/{name}: {written} of its {expected} bytes came: the download "
                    "was cut short"
                )

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
            raise RegistryError(scrubbed(f"cannot reach it: {reason}", self.server)) from None
        except (ValueError, http.client.HTTPException) as error:  # a URI it cannot call
            raise RegistryError(scrubbed(f"cannot call it: {error}", self.server)) from None


def local_folder(artifact_uri: str) -> Path | None:
    """The folder of a `file:` artifact URI (its path unescaped) or of a plain path, else
    None."""
    parts = urlsplit(artifact_uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return Path(artifact_uri) if not parts.scheme else None
