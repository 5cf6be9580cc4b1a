"""Where a file is: a local path, or an object of an S3-compatible store (`s3://bucket/key`).

Objects are read and written through Arrow's S3 filesystem, with the endpoint, region and
credentials of the standard AWS variables (AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3,
AWS_REGION, AWS_ACCESS_KEY_ID, ...), so that MinIO, Ceph and every cloud's S3 API work alike.
An `ObjectPath` answers what batch scoring asks of a path (its name, suffix, parent, a
child), so that a dataset and an output folder may be either (`Location`).
"""

import argparse
import contextlib
import fnmatch
import functools
import io
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

OBJECT_SCHEME = "s3://"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
READ_BUFFER = 1 << 20  # an object is read in ranges of at least this (each is a request)
COPY_LIMIT = 5 * 1024**3  # the largest object S3 copies in one request
BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")


# Arrow reads these itself (its default chain of credential providers); a filesystem made
# under other values is not reused.
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)


def s3_filesystem() -> Any:
    """Arrow's S3 filesystem, configured by the standard AWS variables; one per process for
    the same values."""
    names = (*ENDPOINT_VARIABLES, *REGION_VARIABLES, *CREDENTIAL_VARIABLES)
    return _s3_filesystem(tuple(os.environ.get(name) for name in names))


@functools.lru_cache(maxsize=4)
def _s3_filesystem(settings: tuple[str | None, ...]) -> Any:
    import pyarrow.fs as pafs

    endpoint_s3, endpoint, region, default_region = settings[:4]
    options: dict[str, Any] = {}
    if endpoint := endpoint_s3 or endpoint:
        scheme, _, rest = endpoint.rpartition("://")
        options["endpoint_override"] = rest
        options["scheme"] = scheme or "https"
    if region := region or default_region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


@dataclass(frozen=True)
class ObjectPath:
    """`s3://bucket/key`: an object, or the folder its key's `/` make (a prefix)."""

    bucket: str
    key: str  # no leading, trailing or doubled `/`; "" for the whole bucket

    @classmethod
    def parse(cls, uri: str) -> "ObjectPath":
        """ValueError, naming no credentials, for what is no bucket and key: credentials in
        the URI (the AWS variables carry them), `.` or `..` in the key."""
        bucket, _, key = uri.removeprefix(OBJECT_SCHEME).partition("/")
        if not bucket:
            raise ValueError("an s3:// location needs a bucket: s3://bucket/key")
        if not BUCKET_NAME.fullmatch(bucket):
            raise ValueError(
                "an s3:// location's bucket holds letters, digits, '.', '_' and '-' only "
                "(credentials go in the AWS variables, never in the URI)"
            )
        parts = [part for part in key.split("/") if part]
        if any(part in (".", "..") for part in parts):
            raise ValueError(f"s3://{bucket}/{key}: '.' and '..' are not folders in a bucket")
        return cls(bucket, "/".join(parts))

    def __str__(self) -> str:
        return (
            f"{OBJECT_SCHEME}{self.bucket}/{self.key}" if self.key else OBJECT_SCHEME + self.bucket
        )

    def __truediv__(self, name: str) -> "ObjectPath":
        return ObjectPath(self.bucket, f"{self.key}/{name}".strip("/"))

    @property
    def arrow(self) -> str:
        """The path as Arrow's S3 filesystem names it: `bucket/key`."""
        return f"{self.bucket}/{self.key}".rstrip("/")

    @property
    def name(self) -> str:
        return self.key.rpartition("/")[2]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> "ObjectPath":
        return ObjectPath(self.bucket, self.key.rpartition("/")[0])

    def contains(self, other: "ObjectPath") -> bool:
        """Whether `other` is this prefix's object or lies under it."""
        return other.bucket == self.bucket and (
            not self.key or other.key == self.key or other.key.startswith(self.key + "/")
        )


Location = Path | ObjectPath


def location(text: str) -> Location:
    """A command line's path: an ObjectPath for `s3://...`, else a local Path. An unusable
    `s3://` location is refused with a message that does not repeat it (it may hold a secret)."""
    if not text.startswith(OBJECT_SCHEME):
        return Path(text)
    try:
        return ObjectPath.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclass(frozen=True)
class Listed:
    """A file found in a listing: where it is, its size and when it last changed."""

    path: Location
    size: int
    mtime_ns: int


def list_objects(prefix: ObjectPath) -> list[Listed]:
    """Every object under `prefix`, in key order; none if there is nothing there."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(prefix.arrow, recursive=True, allow_not_found=True)
    found = [
        _listed(info)
        for info in s3_filesystem().get_file_info(selector)
        if info.type == pafs.FileType.File
    ]
    return sorted(found, key=lambda entry: str(entry.path))


def object_info(path: ObjectPath) -> Listed | None:
    """The object at `path`, or None if there is no object of that very key."""
    import pyarrow.fs as pafs

    info = s3_filesystem().get_file_info(path.arrow)
    return _listed(info) if info.type == pafs.FileType.File else None


def _listed(info: Any) -> Listed:
    bucket, _, key = info.path.partition("/")
    return Listed(ObjectPath(bucket, key), info.size, info.mtime_ns or 0)


def glob_matches(pattern: str, key: str) -> bool:
    """Whether `key` matches `pattern` as `glob.glob(recursive=True)` reads it: each name
    against its own part of the pattern (fnmatch: `*`, `?`, `[...]`, `[!...]`), a `**` part
    for any number of folders, and a name starting with `.` only where the pattern's does."""
    return _matches(pattern.split("/"), key.split("/"))


def _matches(patterns: list[str], names: list[str]) -> bool:
    if not patterns:
        return not names
    first, rest = patterns[0], patterns[1:]
    if first == "**":
        return any(
            _matches(rest, names[skip:])
            for skip in range(len(names) + 1)
            if not any(name.startswith(".") for name in names[:skip])
        )
    if not names or (names[0].startswith(".") and not first.startswith(".")):
        return False
    return fnmatch.fnmatchcase(names[0], first) and _matches(rest, names[1:])


class _ObjectReader(io.RawIOBase):
    """An object opened by Arrow, as a Python binary stream (read, seek, tell)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._handle.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._handle.seek(offset, whence))

    def tell(self) -> int:
        return int(self._handle.tell())

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


def open_input(path: str) -> BinaryIO:
    """A local file or an object (`s3://...`), opened to read bytes, buffered."""
    if path.startswith(OBJECT_SCHEME):
        return io.BufferedReader(open_raw(path), READ_BUFFER)
    return open(path, "rb")


def open_raw(path: str) -> io.RawIOBase:
    """A local file or an object, opened to read bytes unbuffered: each read asks for exactly
    the bytes wanted (an object's, in one request)."""
    if path.startswith(OBJECT_SCHEME):
        return _ObjectReader(s3_filesystem().open_input_file(ObjectPath.parse(path).arrow))
    return open(path, "rb", buffering=0)


@contextlib.contextmanager
def arrow_input(path: str) -> Iterator[Any]:
    """What Arrow's Parquet reader takes for `path`: the path of a local file, or the object
    opened by Arrow's S3 filesystem (closed afterwards)."""
    if not path.startswith(OBJECT_SCHEME):
        yield path
        return
    with s3_filesystem().open_input_file(ObjectPath.parse(path).arrow) as handle:
        yield handle


def upload(source: Path, target: ObjectPath) -> "Listed":
    """A local file copied to the object `target`; what the store then lists for it. The bytes
    go to a hidden object beside it first, which the store copies to `target` in one request:
    `target` only ever holds a whole file, and an upload cut short leaves none of it there.
    Past COPY_LIMIT, which S3 does not copy in one request, the file goes straight to `target`,
    which is removed if the store then holds another size."""
    filesystem = s3_filesystem()
    size = source.stat().st_size
    staged = target
    if size <= COPY_LIMIT:
        staged = target.parent / f".{target.name}.{secrets.token_hex(6)}.partial"
    try:
        with source.open("rb") as data, filesystem.open_output_stream(staged.arrow) as out:
            while chunk := data.read(8 * READ_BUFFER):
                out.write(chunk)
        if staged != target:
            filesystem.move(staged.arrow, target.arrow)
    finally:
        if staged != target:
            with contextlib.suppress(OSError):  # gone once moved
                filesystem.delete_file(staged.arrow)
    stored = object_info(target)
    if stored is None or stored.size != size:
        if staged == target:
            delete_object(target)
        raise OSError(f"{target}: the upload did not complete ({size} bytes sent)")
    return stored


def read_object(path: ObjectPath) -> bytes | None:
    """The object's bytes, or None if there is no such object."""
    try:
        with s3_filesystem().open_input_stream(path.arrow) as stream:
            return bytes(stream.read())
    except FileNotFoundError:
        return None


def write_object(path: ObjectPath, data: bytes) -> None:
    """`data` as the object `path`, in one request: readers see the old object or the new."""
    with s3_filesystem().open_output_stream(path.arrow) as out:
        out.write(data)


def delete_object(path: ObjectPath) -> None:
    """Remove the object, if it is there."""
    with contextlib.suppress(FileNotFoundError):
        s3_filesystem().delete_file(path.arrow)


def delete_prefix(prefix: ObjectPath) -> None:
    """Remove every object under `prefix` (as a folder: `prefix/...`)."""
    s3_filesystem().delete_dir_contents(prefix.arrow, missing_dir_ok=True)
