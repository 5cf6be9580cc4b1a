"""MODEL_URI against a real S3-compatible server (moto's standalone server, the
`s3_endpoint` fixture): the slim serving image, built once, serves a model it fetches from a
bucket, through the same Arrow client code that reaches AWS or MinIO, and refuses a missing or
tampered one with the reason in /readyz. `predict` in the image fetches the same way. The
start-up with a fetched model is printed beside the start-up with the baked one. `train
--output` puts a model there, metadata.json last. A server that checks signatures refuses a
wrong secret or an unknown key, and the reason is named without the secret."""

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pandas as pd
import pyarrow.fs as pafs
import pytest

from .conftest import Build, docker_support, on_worker, project_command, serving_on_host
from .s3_server import BUCKET, CREDENTIALS, moto_server, store, upload


def baked_model(docker: Any, image: str, into: Path) -> Path:
    """The model the full image baked, copied out of it."""
    into.mkdir(parents=True)
    into.chmod(0o777)
    docker.containers.run(
        image,
        ["-c", "cp -r /opt/ml/model/. /out/"],
        entrypoint="sh",
        volumes={str(into): {"bind": "/out", "mode": "rw"}},
        remove=True,
    )
    return into


def fetching(docker: Any, image: str, endpoint: str, uri: str) -> Any:
    """The image's server with MODEL_URI=`uri`, the S3 server's variables set."""
    store = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"}
    return serving_on_host(docker, image, {**store, "MODEL_URI": uri})


def settled(url: str, timeout: float = 60) -> httpx.Response:
    """/readyz once the model is loaded or has failed to load."""
    deadline = time.monotonic() + timeout
    while (answer := httpx.get(f"{url}/readyz")).json()["status"] == "loading":
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)
    return answer


@on_worker("3.11")
def test_the_slim_image_serves_a_model_it_fetches_from_s3(
    docker: Any, build: Build, s3_endpoint: str, tmp_path: Path
) -> None:
    project, full = build("3.11")
    _project, slim = build("3.11", target="serve")
    model = baked_model(docker, full, tmp_path / "model")
    upload(s3_endpoint, model, "iris/v1")
    with docker_support.serving(docker, slim) as baked:
        baked_ready = time.perf_counter() - baked.started  # serving() waited for /readyz
        row = pd.read_csv(project / "data" / "sample.csv").head(1).to_dict("records")
        expected = httpx.post(f"{baked.url}/predict", json=row).json()

    with fetching(docker, slim, s3_endpoint, f"s3://{BUCKET}/iris/v1") as (url, started, _):
        assert settled(url).status_code == 200
        fetched_ready = time.perf_counter() - started
        metadata = httpx.get(f"{url}/metadata").json()
        assert metadata["source"] == f"s3://{BUCKET}/iris/v1"
        baked_metadata = json.loads((model / "metadata.json").read_text())
        assert metadata["model"]["model_version"] == baked_metadata["model_version"]
        assert httpx.post(f"{url}/predict", json=row).json() == expected
    print(
        f"start-up to /readyz: the baked model {baked_ready:.2f} s; "
        f"the model fetched from S3 {fetched_ready:.2f} s"
    )

    data = tmp_path / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    shutil.copy(project / "data" / "sample.csv", data / "in.csv")
    logs = docker.containers.run(
        slim,
        ["predict", "--input", "/data/in.csv", "--output", "/data/out.csv"],
        network_mode="host",
        environment={
            **CREDENTIALS,
            "MODEL_URI": f"s3://{BUCKET}/iris/v1",
            "AWS_ENDPOINT_URL": s3_endpoint,
            "AWS_REGION": "us-east-1",
        },
        volumes={str(data): {"bind": "/data", "mode": "rw"}},
        remove=True,
    ).decode()
    assert "predict: done" in logs, logs
    scored = pd.read_csv(data / "out.csv")
    assert len(scored) == len(pd.read_csv(data / "in.csv")) and scored["prediction"].notna().all()


@on_worker("3.11")
def test_a_missing_or_tampered_model_in_s3_is_never_served(
    docker: Any, build: Build, s3_endpoint: str, tmp_path: Path
) -> None:
    project, full = build("3.11")
    _project, slim = build("3.11", target="serve")
    row = pd.read_csv(project / "data" / "sample.csv").head(1).to_dict("records")
    model = baked_model(docker, full, tmp_path / "model")
    tampered = tmp_path / "tampered"
    shutil.copytree(model, tampered)
    onnx = tampered / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    upload(s3_endpoint, tampered, "iris/tampered")
    cases = {
        f"s3://{BUCKET}/iris/nothing-here": "no model there: nothing is stored under it",
        "s3://no-such-bucket/iris": "cannot fetch it",
        f"s3://{BUCKET}/iris/tampered": "does not match the hash in metadata.json",
    }
    for uri, problem in cases.items():
        with fetching(docker, slim, s3_endpoint, uri) as (url, _started, container):
            answer = settled(url)
            assert answer.status_code == 503 and answer.json()["status"] == "failed"
            assert problem in answer.json()["reason"], answer.text
            assert httpx.post(f"{url}/predict", json=row).status_code == 503
            logs = container.logs().decode(errors="replace")
            assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in logs + answer.text


def train_to(project: Path, model_dir: Path, endpoint: str, *options: str) -> Any:
    """`train` in this environment with the S3 server's variables, and `options`."""
    return project_command(
        project,
        "train",
        *options,
        env={
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
            "MODEL_DIR": str(model_dir),
            "TRAINING_DATA_DIR": str(project / "data" / "train"),
        },
    )


def objects_under(
    endpoint: str, bucket: str, prefix: str, key: str | None = None, secret: str | None = None
) -> dict[str, bytes]:
    filesystem = store(endpoint, key, secret)
    found = filesystem.get_file_info(pafs.FileSelector(f"{bucket}/{prefix}", recursive=True))
    return {
        info.path.removeprefix(
            f"{bucket}/{prefix}".rstrip("/") + "/"
        ): filesystem.open_input_stream(info.path).read()
        for info in found
        if info.type == pafs.FileType.File
    }


def test_train_output_copies_the_model_to_s3_where_model_uri_serves_it(
    default_project: Path, s3_endpoint: str, tmp_path: Path
) -> None:
    project = default_project
    # A file of an older model under the prefix, which the new one replaces; a model in a
    # folder under the prefix, and one beside it, which are not the output's to touch.
    others = {"trained/champion/metadata.json": b"{}", "trained-old/metadata.json": b"{}"}
    for key, content in {"trained/report/old.png": b"old", **others}.items():
        with store(s3_endpoint).open_output_stream(f"{BUCKET}/{key}") as out:
            out.write(content)
    run = train_to(project, tmp_path / "model", s3_endpoint, "--output", f"s3://{BUCKET}/trained")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"to s3://{BUCKET}/trained, metadata.json last" in run.stdout
    on_disk = {
        str(p.relative_to(tmp_path / "model")): p.read_bytes()
        for p in (tmp_path / "model").rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    written = objects_under(s3_endpoint, BUCKET, "trained")
    assert {k: v for k, v in written.items() if not k.startswith("champion/")} == on_disk
    for key, content in others.items():
        with store(s3_endpoint).open_input_stream(f"{BUCKET}/{key}") as kept:
            assert kept.read() == content, key

    local = tmp_path / "local.csv"
    fetched = tmp_path / "fetched.csv"
    for model_env, out in (
        ({"MODEL_DIR": str(tmp_path / "model")}, local),
        ({"MODEL_URI": f"s3://{BUCKET}/trained", "MODEL_CACHE_DIR": str(tmp_path / "c")}, fetched),
    ):
        scored = project_command(
            project,
            "predict",
            "--input",
            str(project / "data" / "sample.csv"),
            "--output",
            str(out),
            env={
                **CREDENTIALS,
                "AWS_ENDPOINT_URL": s3_endpoint,
                "AWS_REGION": "us-east-1",
                **model_env,
            },
        )
        assert scored.returncode == 0, scored.stderr
    pd.testing.assert_frame_equal(pd.read_csv(fetched), pd.read_csv(local))


def test_train_output_refuses_a_place_it_cannot_write_and_keeps_the_model(
    default_project: Path, s3_endpoint: str, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    for output in (str(tmp_path / "x"), f"s3://{BUCKET}", f"s3://{BUCKET}/"):
        refused = train_to(default_project, model_dir, s3_endpoint, "--output", output)
        assert refused.returncode == 2 and "give s3://bucket/prefix" in refused.stderr, output
        assert not model_dir.exists()  # refused before training

    missing = train_to(default_project, model_dir, s3_endpoint, "--output", "s3://no-such-bucket/m")
    assert missing.returncode == 1, missing.stdout + missing.stderr
    [line] = missing.stderr.strip().splitlines()
    assert "publishing failed: s3://no-such-bucket/m" in line, line
    assert (model_dir / "metadata.json").is_file()
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in missing.stdout + missing.stderr


@pytest.fixture(scope="module")
def s3_with_auth() -> Iterator[tuple[str, str, str]]:
    """moto's S3 server that checks every request's signature once the first three (which
    make an IAM user allowed s3:*, and its access key) are done: its endpoint, the key's id
    and secret."""
    with moto_server(docker_support.free_port(), INITIAL_NO_AUTH_ACTION_COUNT="3") as endpoint:
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="unchecked",
            aws_secret_access_key="unchecked",
        )
        iam.create_user(UserName="store")
        key = iam.create_access_key(UserName="store")["AccessKey"]
        allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [allow]}
        iam.put_user_policy(UserName="store", PolicyName="s3", PolicyDocument=json.dumps(policy))
        yield endpoint, key["AccessKeyId"], key["SecretAccessKey"]


def test_wrong_credentials_are_named_without_the_secret_and_nothing_is_scored(
    default_project: Path, s3_with_auth: tuple[str, str, str], tmp_path: Path
) -> None:
    endpoint, key, secret = s3_with_auth
    model_dir = tmp_path / "model"
    trained = train_to(default_project, model_dir, endpoint)  # no --output: the key is unused
    assert trained.returncode == 0, trained.stderr
    upload(endpoint, model_dir, "m", bucket="guarded", key=key, secret=secret)

    def scored(access_key: str, secret_key: str) -> Any:
        return project_command(
            default_project,
            "predict",
            "--input",
            str(default_project / "data" / "sample.csv"),
            "--output",
            str(tmp_path / f"{access_key[-4:]}-{secret_key[-4:]}.csv"),
            env={
                "AWS_ACCESS_KEY_ID": access_key,
                "AWS_SECRET_ACCESS_KEY": secret_key,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_REGION": "us-east-1",
                "MODEL_URI": "s3://guarded/m",
                "MODEL_CACHE_DIR": str(tmp_path / f"cache-{secret_key[-4:]}"),
            },
        )

    assert scored(key, secret).returncode == 0  # the right key reads it
    for access_key, secret_key, problem in (
        (key, "wrong-secret-1234", "SIGNATURE_DOES_NOT_MATCH"),
        ("AKIAUNKNOWNKEY000000", "wrong-secret-5678", "INVALID_ACCESS_KEY_ID"),
    ):
        run = scored(access_key, secret_key)
        assert run.returncode == 1, run.stdout + run.stderr
        [line] = run.stderr.strip().splitlines()
        assert "MODEL_URI s3://guarded/m: cannot fetch it" in line and problem in line, line
        assert secret_key not in run.stdout + run.stderr
        assert not (tmp_path / f"{access_key[-4:]}-{secret_key[-4:]}.csv").exists()

    # Batch data behind the same key: the object is named, the reason given, nothing written.
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(default_project / "data" / "sample.csv", data / "part-0.csv")
    upload(endpoint, data, "in", bucket="guarded", key=key, secret=secret)
    for access_key, secret_key in (
        (key, "wrong-secret-1234"),
        ("AKIAUNKNOWNKEY000000", "wrong-secret-5678"),
    ):
        run = project_command(
            default_project,
            "predict",
            "--input",
            "s3://guarded/in/",
            "--output",
            "s3://guarded/out/",
            env={
                "AWS_ACCESS_KEY_ID": access_key,
                "AWS_SECRET_ACCESS_KEY": secret_key,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_REGION": "us-east-1",
                "MODEL_DIR": str(model_dir),
            },
        )
        assert run.returncode == 1, run.stdout + run.stderr
        [line] = run.stderr.strip().splitlines()
        # A HEAD request's refusal has no body: S3 gives no more reason than this.
        assert "s3://guarded/in: cannot list or read it:" in line and "ACCESS_DENIED" in line
        assert secret_key not in run.stdout + run.stderr
    assert set(objects_under(endpoint, "guarded", "in", key, secret)) == {"part-0.csv"}
    assert not [
        name for name in objects_under(endpoint, "guarded", "", key, secret) if "out" in name
    ]
