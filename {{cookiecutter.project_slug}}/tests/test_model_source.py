"""MODEL_URI: the model fetched from elsewhere before the server is ready, checked like any
model, cached, never half-fetched, and named without its credentials. The archives are served
over HTTP by a real server on 127.0.0.1 that the tests start (S3 is tested against an
S3-compatible server by the template's own tests)."""

import base64
import http.server
import io
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.batch.engines.local import predict
from {{ cookiecutter.package_name }}.batch.job import BatchJob
from {{ cookiecutter.package_name }}.core.artifact import (
    METADATA_FILE,
    ArtifactError,
    load_artifact,
)
from {{ cookiecutter.package_name }}.core.model_source import SourceError, model_folder
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.core.uris import redacted, scrubbed
from {{ cookiecutter.package_name }}.serve import app as app_module
from {{ cookiecutter.package_name }}.serve.app import create_app

from .conftest import wait_until_ready
from .test_batch_datasets import keyed_rows


class Files(http.server.BaseHTTPRequestHandler):
    """Serves the bytes in `files` by path; counts the requests."""

    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []
    authorizations: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.authorizations.append(self.headers.get("Authorization", ""))
        body = self.files.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[tuple[str, type[Files]]]:
    """A file server on a free port of 127.0.0.1: its base URL and its handler class."""
    handler = type("Handler", (Files,), {"files": {}, "requests": [], "authorizations": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def tar_of(folder: Path, inside: str = "model") -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        archive.add(folder, arcname=inside)
    return data.getvalue()


def zip_of(folder: Path) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return data.getvalue()


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_an_archive_is_fetched_once_and_loads_as_the_folder_does(
    trained: Settings, tmp_path: Path, web: tuple[str, type[Files]], kind: str
) -> None:
    base, handler = web
    handler.files[f"/models/model.{kind}"] = (
        tar_of(trained.model_dir) if kind == "tar.gz" else zip_of(trained.model_dir)
    )
    uri = f"{base}/models/model.{kind}"
    folder = model_folder(trained.model_dir, uri, tmp_path / "cache")
    assert folder.parent == tmp_path / "cache" and (folder / METADATA_FILE).is_file()
    fetched = load_artifact(folder).metadata
    assert fetched == load_artifact(trained.model_dir).metadata
    assert model_folder(trained.model_dir, uri, tmp_path / "cache") == folder
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [folder.name]  # nothing partial


def test_the_server_fetches_before_it_is_ready_and_names_the_source_without_credentials(
    trained: Settings, tmp_path: Path, web: tuple[str, type[Files]]
) -> None:
    base, handler = web
    handler.files["/model.tar.gz"] = tar_of(trained.model_dir)
    host = base.removeprefix("http://")
    uri = f"http://someone:pa55word@{host}/model.tar.gz?X-Amz-Signature=5ecret"
    settings = trained.model_copy(
        update={"model_dir": tmp_path / "empty", "model_uri": uri, "model_cache_dir": tmp_path}
    )
    with TestClient(create_app(settings)) as client:
        wait_until_ready(client)
        metadata = client.get("/metadata").json()
        assert metadata["source"] == f"{base}/model.tar.gz"
        assert metadata["settings"]["MODEL_URI"] == f"{base}/model.tar.gz"
        assert "pa55word" not in str(metadata) and "5ecret" not in str(metadata)
    assert handler.requests == ["/model.tar.gz?X-Amz-Signature=5ecret"]
    assert handler.authorizations == ["Basic " + base64.b64encode(b"someone:pa55word").decode()]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/missing.tar.gz", "the server answered 404"),
        ("/model.txt", "an https:// model is an archive of the model folder"),
        ("/empty.tar.gz", "no model there: it holds no metadata.json"),
    ],
)
def test_a_uri_that_gives_no_model_is_a_reason_in_readyz_and_nothing_is_cached(
    trained: Settings, tmp_path: Path, web: tuple[str, type[Files]], path: str, problem: str
) -> None:
    base, handler = web
    (tmp_path / "nothing").mkdir()
    handler.files["/empty.tar.gz"] = tar_of(tmp_path / "nothing")
    uri = f"http://reader:pa55word@{base.removeprefix('http://')}{path}"
    settings = trained.model_copy(update={"model_uri": uri, "model_cache_dir": tmp_path / "cache"})
    with TestClient(create_app(settings)) as client:
        readiness = client.get("/readyz")
        while readiness.json()["status"] == "loading":
            readiness = client.get("/readyz")
    assert readiness.status_code == 503 and readiness.json()["status"] == "failed"
    reason = readiness.json()["reason"]
    assert reason.startswith(f"MODEL_URI {base}{path}: ") and problem in reason, reason
    assert "pa55word" not in reason
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_model_that_arrives_later_is_served_without_a_restart(
    trained: Settings, tmp_path: Path, web: tuple[str, type[Files]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server fetches again after a failure, so a pod that started before its model was
    there (or while the store was down) turns ready by itself."""
    monkeypatch.setattr(app_module, "FETCH_RETRY_FIRST_S", 0.05)
    base, handler = web
    uri = f"{base}/later.tar.gz"
    settings = trained.model_copy(update={"model_uri": uri, "model_cache_dir": tmp_path / "c"})
    with TestClient(create_app(settings)) as client:
        readiness = client.get("/readyz")
        while readiness.json()["status"] != "failed":
            readiness = client.get("/readyz")
        assert "the server answered 404" in readiness.json()["reason"]
        handler.files["/later.tar.gz"] = tar_of(trained.model_dir)
        wait_until_ready(client)
        version = client.get("/metadata").json()["model"]["model_version"]
    assert version == load_artifact(trained.model_dir).metadata["model_version"]
    assert handler.requests.count("/later.tar.gz") >= 2


def test_an_unreachable_store_is_named(trained: Settings, tmp_path: Path) -> None:
    with pytest.raises(
        SourceError, match=r"MODEL_URI http://127\.0\.0\.1:9/m\.tar\.gz: unreachable"
    ):
        model_folder(trained.model_dir, "http://127.0.0.1:9/m.tar.gz", tmp_path)


def test_a_tampered_model_is_fetched_but_never_loaded(
    trained: Settings, tmp_path: Path, web: tuple[str, type[Files]]
) -> None:
    base, handler = web
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in trained.model_dir.iterdir():
        if path.is_file():
            copy.joinpath(path.name).write_bytes(path.read_bytes())
    model_file = next(
        p for p in copy.iterdir() if p.name.startswith("model.") and p.suffix != ".json"
    )
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    handler.files["/model.tar.gz"] = tar_of(copy)
    folder = model_folder(trained.model_dir, f"{base}/model.tar.gz", tmp_path / "cache")
    with pytest.raises(ArtifactError, match=f"does not match the hash in {METADATA_FILE}"):
        load_artifact(folder)


def evil_zip() -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("../outside.json", "{}")
    return data.getvalue()


def evil_tar() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        entry = tarfile.TarInfo("../outside.json")
        entry.size = 2
        archive.addfile(entry, io.BytesIO(b"{}"))
    return data.getvalue()


@pytest.mark.parametrize(("name", "archive"), [("evil.zip", evil_zip), ("evil.tar.gz", evil_tar)])
def test_an_archive_that_leaves_its_folder_is_refused(
    trained: Settings, tmp_path: Path, web: tuple[str, type[Files]], name: str, archive: Any
) -> None:
    base, handler = web
    handler.files[f"/{name}"] = archive()
    with pytest.raises(SourceError, match="leaves its folder"):
        model_folder(trained.model_dir, f"{base}/{name}", tmp_path / "cache")
    assert not (tmp_path / "outside.json").exists()


def test_batch_scoring_fetches_the_model_too(
    trained: Settings, tmp_path: Path, web: tuple[str, type[Files]]
) -> None:
    base, handler = web
    handler.files["/model.tar.gz"] = tar_of(trained.model_dir)
    keyed_rows(50).to_csv(tmp_path / "in.csv", index=False)
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "local.csv"))
    fetching = trained.model_copy(
        update={
            "model_dir": tmp_path / "empty",
            "model_uri": f"{base}/model.tar.gz",
            "model_cache_dir": tmp_path / "cache",
        }
    )
    predict(fetching, BatchJob(tmp_path / "in.csv", tmp_path / "fetched.csv"))
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "fetched.csv"), pd.read_csv(tmp_path / "local.csv")
    )


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://user:se/cret@host.example/m.tgz?sig=1", "https://host.example/m.tgz"),
        ("https://user:pw@host.example:8443/m.tgz", "https://host.example:8443/m.tgz"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("/models/v1", "/models/v1"),
    ],
)
def test_a_uri_is_shown_without_credentials_whatever_they_hold(uri: str, shown: str) -> None:
    assert redacted(uri) == shown


@pytest.mark.parametrize(
    "uri", ["https://user:se/cret@mlflow.example:5000", "http://user:pw@127.0.0.1:5000/prefix"]
)
def test_a_library_message_quoting_the_uri_loses_its_credentials(uri: str) -> None:
    message = f"API request to {uri}/api/2.0/mlflow/runs/get failed; then {uri}"
    shown = scrubbed(message, uri)
    assert not any(secret in shown for secret in ("user", "pw", "cret")), shown
    assert f"to {redacted(uri)}/api/2.0/mlflow/runs/get failed; then {redacted(uri)}" in shown


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("models:/some-model/1", "set MLFLOW_TRACKING_URI to the MLflow server that holds it"),
        ("runs:/0123456789abcdef/model", "set MLFLOW_TRACKING_URI"),
    ],
)
def test_an_mlflow_uri_needs_a_tracking_server(
    uri: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's client falls back to a local ./mlruns folder: never taken for a registry."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match=problem):
        model_folder(tmp_path / "unused", uri, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "mlruns").exists()


def test_a_registered_model_is_named_by_version_or_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(SourceError, match=r"models:/NAME/VERSION \(a number\)"):
        model_folder(tmp_path / "unused", "models:/some-model/latest", tmp_path / "cache")


def test_an_mlflow_uri_needs_no_mlflow_client_and_an_unreachable_server_is_named_safely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slim serving image has no MLflow client: the registry is reached over its REST API
    all the same, and the server is named without its credentials."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:s3cret@127.0.0.1:9")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.raises(SourceError) as raised:
        model_folder(tmp_path / "unused", "models:/some-model@champion", tmp_path / "cache")
    message = str(raised.value)
    assert "MLflow at http://127.0.0.1:9: cannot reach it" in message, message
    assert "s3cret" not in message
