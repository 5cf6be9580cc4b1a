"""An S3-compatible server for the tests: moto's standalone server (the `s3_endpoint`
fixture in conftest.py starts it), and how the tests put objects there."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs

BUCKET = "models"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}


@contextlib.contextmanager
def moto_server(port: int, **env: str) -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1:`port`, with `env` (moto's settings): its
    endpoint, once it answers."""
    from .conftest import docker_support

    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        docker_support.wait_for(f"{endpoint}/moto-api/", timeout=30)
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


def store(endpoint: str, key: str | None = None, secret: str | None = None) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        allow_bucket_creation=True,
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
        access_key=key or CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=secret or CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region="us-east-1",
    )


def upload(
    endpoint: str,
    folder: Path,
    prefix: str,
    bucket: str = BUCKET,
    key: str | None = None,
    secret: str | None = None,
) -> None:
    filesystem = store(endpoint, key, secret)
    filesystem.create_dir(bucket)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with filesystem.open_output_stream(
                f"{bucket}/{prefix}/{path.relative_to(folder)}"
            ) as out:
                out.write(path.read_bytes())
