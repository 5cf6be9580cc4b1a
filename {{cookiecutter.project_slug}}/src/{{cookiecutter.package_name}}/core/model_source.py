"""Where the model comes from: the folder MODEL_DIR, or MODEL_URI fetched into a local cache
first, as KServe's `storageUri` is.

- A path (or `file://`): that folder, as it is.
- `s3://bucket/prefix`: every object under the prefix, through Arrow's S3 filesystem, with the
  endpoint, region and credentials of the standard AWS variables (AWS_ENDPOINT_URL,
  AWS_REGION, AWS_ACCESS_KEY_ID, ...), so that MinIO, Ceph and every cloud's S3 API work alike.
- `https://` (or `http://`): a `.tar.gz`, `.tgz` or `.zip` archive of the model folder.
- MLflow's `models:/<name>/<version>`, `models:/<name>@<alias>` and `runs:/<run>/<path>`, from
  the tracking server MLFLOW_TRACKING_URI names, through its REST API (mlflow_registry.py: no
  MLflow client needed, so the slim image takes them too; training publishes there,
  training/publish.py). An alias is resolved at each start: the cache holds one folder per
  version.

A fetched artifact is written into a folder of its own under MODEL_CACHE_DIR, named after what
was fetched, and renamed into place only when complete: a partial download is never loaded, and
a second start with the same objects loads the cached copy. The artifact's own checks (its
hashes, its framework, its schema) run on the fetched files as on any folder. Errors name the
URI without its credentials.
"""

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .artifact import METADATA_FILE, ArtifactError
from .mlflow_registry import PROXIED, Registry, RegistryError, local_folder
from .storage import s3_filesystem
from .uris import authorized_request, redacted, scrubbed

ARCHIVES = (".tar.gz", ".tgz", ".zip")
MLFLOW_SCHEMES = ("models", "runs")
DOWNLOAD_TIMEOUT_S = 60


class SourceError(ArtifactError):
    """MODEL_URI cannot be fetched: unreachable, forbidden, missing or not a model."""


def model_folder(model_dir: Path, model_uri: str | None, cache_dir: Path) -> Path:
    """The local folder to load the model from: MODEL_DIR, or MODEL_URI's artifact."""
    if not model_uri:
        return model_dir
    parts = urlsplit(model_uri)
    if parts.scheme in ("", "file"):
        return Path(parts.path)
    try:
        if parts.scheme == "s3":
            return _fetch_s3(model_uri, cache_dir)
        if parts.scheme in ("https", "http"):
            return _fetch_archive(model_uri, cache_dir)
        if parts.scheme in MLFLOW_SCHEMES:
            return _fetch_mlflow(model_uri, cache_dir)
    except SourceError:
        raise
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as error:
        raise SourceError(f"MODEL_URI {redacted(model_uri)}: cannot fetch it: {error}") from None
    raise SourceError(
        f"MODEL_URI {redacted(model_uri)}: unknown scheme {parts.scheme!r}; give a path, "
        "s3://bucket/prefix, an https:// archive (.tar.gz or .zip), models:/NAME/VERSION, "
        "models:/NAME@ALIAS or runs:/RUN/PATH"
    )


def _fetch_s3(uri: str, cache_dir: Path) -> Path:
    files, names = _s3_objects(uri, uri)
    key = _digest([uri, [[i.path, i.size, i.mtime_ns] for i in files]])
    return _cached(cache_dir, key, lambda staging: _copy_s3(files, names, staging))


def _s3_objects(prefix_uri: str, uri: str) -> tuple[list[Any], list[str]]:
    """The objects of the model under `prefix_uri` and their names in its folder; SourceError
    naming MODEL_URI `uri` when there is no model there."""
    import pyarrow.fs as pafs

    prefix = prefix_uri.removeprefix("s3://").rstrip("/")
    try:
        listed = s3_filesystem().get_file_info(pafs.FileSelector(prefix, recursive=True))
    except FileNotFoundError:
        raise SourceError(
            f"MODEL_URI {redacted(uri)}: no model there: nothing is stored under it"
        ) from None
    files = sorted((i for i in listed if i.type == pafs.FileType.File), key=lambda i: i.path)
    names = [info.path[len(prefix) + 1 :] for info in files]
    for name in names:  # an object key may hold anything: keep every file inside the folder
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise SourceError(f"MODEL_URI {redacted(uri)}: the object {name!r} leaves its folder")
    if METADATA_FILE not in names:
        raise SourceError(
            f"MODEL_URI {redacted(uri)}: no model there: expected {METADATA_FILE} and the "
            f"model file under it, found {len(names)} object(s)"
        )
    return files, names


def _copy_s3(files: list[Any], names: list[str], staging: Path) -> None:
    filesystem = s3_filesystem()
    for info, name in zip(files, names, strict=True):
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with filesystem.open_input_stream(info.path) as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


def _fetch_archive(uri: str, cache_dir: Path) -> Path:
    path = urlsplit(uri).path
    if not path.endswith(ARCHIVES):
        raise SourceError(
            f"MODEL_URI {redacted(uri)}: an https:// model is an archive of the model folder: "
            f"its name ends with {', '.join(ARCHIVES)}"
        )
    try:
        request = authorized_request(uri)
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except urllib.error.HTTPError as error:
        raise SourceError(f"MODEL_URI {redacted(uri)}: the server answered {error.code}") from None
    except urllib.error.URLError as error:
        raise SourceError(f"MODEL_URI {redacted(uri)}: unreachable: {error.reason}") from None

    def unpack(staging: Path) -> None:
        if path.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise SourceError(
                            f"MODEL_URI {redacted(uri)}: {member!r} leaves its folder"
                        )
                archive.extractall(staging)
        else:
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                members = archive.getmembers()
                for entry in members:  # plain files and folders inside it, nothing else
                    inside = not entry.name.startswith("/") and ".." not in Path(entry.name).parts
                    if not inside or not (entry.isfile() or entry.isdir()):
                        raise SourceError(
                            f"MODEL_URI {redacted(uri)}: {entry.name!r} leaves its folder or "
                            "is not a plain file"
                        )
                archive.extractall(staging, members=members)  # each entry checked above
        _move_root_up(uri, staging)

    return _cached(cache_dir, _digest([uri, hashlib.sha256(data).hexdigest()]), unpack)


def pinned(model_uri: str | None) -> str | None:
    """MODEL_URI as every process of one job reads it: an MLflow alias resolved to its version
    now, so that moving the alias during a job changes nothing in it. Other URIs as given."""
    if not model_uri or not model_uri.startswith("models:/") or "@" not in model_uri:
        return model_uri
    with _registry(model_uri) as registry:
        name, version = registry.version(model_uri.removeprefix("models:/"))
    return f"models:/{name}/{version}"


@contextlib.contextmanager
def _registry(uri: str) -> Iterator[Registry]:
    """The registry of MLFLOW_TRACKING_URI; its errors as SourceError naming `uri`."""
    server = os.environ.get("MLFLOW_TRACKING_URI")
    if not server:
        raise SourceError(
            f"MODEL_URI {uri}: set MLFLOW_TRACKING_URI to the MLflow server that holds it"
        )
    if uri.startswith("models:/") and "@" not in uri:
        _name, _, version = uri.removeprefix("models:/").rpartition("/")
        if not _name or not version.isdigit():
            raise SourceError(
                f"MODEL_URI {uri}: give models:/NAME/VERSION (a number) or models:/NAME@ALIAS"
            )
    try:
        yield Registry(server)
    except RegistryError as error:
        raise SourceError(
            f"MODEL_URI {uri}: MLflow at {redacted(server)}: {scrubbed(str(error), server)}"
        ) from None


def _fetch_mlflow(uri: str, cache_dir: Path) -> Path:
    """A registered model's version (an alias resolved now) or a run's artifact folder."""
    with _registry(uri) as registry:
        # What the URI means now: the cache folder of a version, never of an alias.
        if uri.startswith("models:/"):
            name, version = registry.version(uri.removeprefix("models:/"))
            meaning = [redacted(registry.server), name, version]
        else:
            run_id, _, path = uri.removeprefix("runs:/").strip("/").partition("/")
            meaning = [redacted(registry.server), uri]

        def download(staging: Path) -> None:
            if uri.startswith("models:/"):
                where = registry.version_artifacts(name, version)
            else:
                where = registry.run_artifacts(run_id, path)
            if where.startswith(PROXIED):
                registry.download_proxied(where, staging)
            elif where.startswith("s3://"):
                files, names = _s3_objects(where, uri)
                _copy_s3(files, names, staging)
            elif (folder := local_folder(where)) is not None:
                shutil.copytree(folder, staging, dirs_exist_ok=True)
            else:
                raise SourceError(
                    f"MODEL_URI {uri}: its files are at {redacted(where)}, which this image "
                    "does not fetch: have the MLflow server serve its artifacts (`mlflow server`'s "
                    "default), or keep them in S3"
                )
            _move_root_up(uri, staging)

        return _cached(cache_dir, _digest(meaning), download)


def _move_root_up(uri: str, staging: Path) -> None:
    """The artifact's files straight in `staging`, where they may sit in its one subfolder."""
    found = _artifact_root(staging)
    if found is None:
        raise SourceError(f"MODEL_URI {redacted(uri)}: no model there: it holds no {METADATA_FILE}")
    if found != staging:  # the download holds the folder itself: its content is the model
        holder = found.rename(staging / f".{secrets.token_hex(6)}")  # its name is free again
        for child in list(holder.iterdir()):
            child.rename(staging / child.name)
        holder.rmdir()


def _artifact_root(folder: Path) -> Path | None:
    """The folder that holds metadata.json: `folder`, or its only subfolder."""
    if (folder / METADATA_FILE).is_file():
        return folder
    children = [c for c in folder.iterdir() if not c.name.startswith(".")]
    if len(children) == 1 and (children[0] / METADATA_FILE).is_file():
        return children[0]
    return None


def _cached(cache_dir: Path, key: str, fill: Callable[[Path], None]) -> Path:
    """cache_dir/key, filled by `fill(staging)` into a staging folder renamed when complete."""
    target = cache_dir / key
    if (target / METADATA_FILE).is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / f".{key}.{secrets.token_hex(6)}.partial"
    staging.mkdir()
    try:
        fill(staging)
        with contextlib.suppress(FileExistsError, OSError):
            staging.rename(target)  # another process may have put the same files there
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (target / METADATA_FILE).is_file():
        raise SourceError(f"the model fetched into {target} is incomplete")
    return target


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest()[:20]
