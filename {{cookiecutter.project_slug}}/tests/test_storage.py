"""Object storage locations as batch scoring reads them: `s3://bucket/key` parsed and joined
like a path, prefixes that hold what lies under them, and globs read as `glob.glob` reads
them. (Reading and writing objects is tested against an S3-compatible server by the template's
own tests.)"""

import argparse
import glob
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.core import storage
from {{ cookiecutter.package_name }}.core.storage import ObjectPath


def test_an_object_uri_is_parsed_and_joined_like_a_path() -> None:
    path = ObjectPath.parse("s3://data//scores/2026/")
    assert (path.bucket, path.key, str(path)) == ("data", "scores/2026", "s3://data/scores/2026")
    part = path / "part-00001.csv"
    assert (str(part), part.name, part.suffix) == (
        "s3://data/scores/2026/part-00001.csv",
        "part-00001.csv",
        ".csv",
    )
    assert part.parent == path and part.arrow == "data/scores/2026/part-00001.csv"
    bucket = ObjectPath.parse("s3://data")
    assert (str(bucket), bucket.key) == ("s3://data", "")
    with pytest.raises(ValueError, match="needs a bucket"):
        ObjectPath.parse("s3://")


def test_a_command_line_location_is_an_object_only_with_its_scheme() -> None:
    assert storage.location("s3://data/in/") == ObjectPath("data", "in")
    assert storage.location("data/in") == Path("data/in")
    assert storage.location("/s3:/data") == Path("/s3:/data")


def test_a_prefix_holds_its_own_key_and_what_lies_under_it_only() -> None:
    folder = ObjectPath("data", "in")
    assert folder.contains(ObjectPath("data", "in"))
    assert folder.contains(ObjectPath("data", "in/part-0.csv"))
    assert not folder.contains(ObjectPath("data", "inside/part-0.csv"))  # a longer name
    assert not folder.contains(ObjectPath("other", "in/part-0.csv"))
    assert ObjectPath("data", "").contains(ObjectPath("data", "anything"))


@pytest.mark.parametrize(
    "pattern",
    [
        "in/*.csv",
        "in/**/*.csv",
        "in/**",
        "in/part-?.csv",
        "in/part-[01].csv",
        "in/part-[!0].csv",
        "in/p**",
        "in/*/part-*.csv",
        "**/*.csv",
        "in/[z-a].csv",
    ],
)
def test_a_glob_matches_object_keys_as_glob_matches_files(tmp_path: Path, pattern: str) -> None:
    names = [
        "in/part-0.csv",
        "in/part-1.csv",
        "in/part-2.csv",
        "in/deep/part-3.csv",
        "in/.hidden/part-4.csv",
        "in/a.txt",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    on_disk = {
        str(Path(found).relative_to(tmp_path))
        for found in glob.glob(str(tmp_path / pattern), recursive=True)
        if Path(found).is_file()
    }
    assert {name for name in names if storage.glob_matches(pattern, name)} == on_disk


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("s3://key:secret@bucket/in/", "credentials go in the AWS variables"),
        ("s3://bucket/in/../out/", "'.' and '..' are not folders"),
        ("s3:///in/", "needs a bucket"),
    ],
)
def test_an_unusable_object_uri_is_refused_without_repeating_it(uri: str, problem: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=problem) as refused:
        storage.location(uri)
    assert "secret" not in str(refused.value)
