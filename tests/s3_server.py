"""An S3-compatible server for the tests: moto's standalone server (the `s3_endpoint`
fixture in conftest.py starts it), and how the tests put objects there."""

from pathlib import Path

import pyarrow.fs as pafs

BUCKET = "models"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}


def store(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        allow_bucket_creation=True,
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
        access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region="us-east-1",
    )


def upload(endpoint: str, folder: Path, prefix: str, bucket: str = BUCKET) -> None:
    filesystem = store(endpoint)
    filesystem.create_dir(bucket)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with filesystem.open_output_stream(
                f"{bucket}/{prefix}/{path.relative_to(folder)}"
            ) as out:
                out.write(path.read_bytes())
