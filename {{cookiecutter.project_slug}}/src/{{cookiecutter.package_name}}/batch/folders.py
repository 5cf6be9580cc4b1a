"""An output folder as the output protocol (output.py) uses it: a local folder, or a prefix of
an object store. Names are relative to the folder, with `/` between folders.

- On disk, files are written under a name of their own, locked, and renamed (files.py): a
  reader sees the old file or the new one, and duplicate writers never remove each other's.
- In an object store, a part is uploaded under a hidden name and copied to its own by the
  store in one request (core/storage.py's upload): it is there whole or not at all, and what
  a killed upload leaves is hidden, which readers skip. Claiming a name (the run's plan) is a
  read, then a write if there was nothing: two shards that start at the same instant may both
  write theirs, which the shards' records (compared when the last one finishes) then catch.
  A part is checked by the size and time the store listed right after its upload, not by its
  SHA-256, which would mean reading it back.
"""

import contextlib
import fnmatch
import shutil
from pathlib import Path
from typing import Any, Protocol

from ..core.artifact import sha256_file
from ..core.schema import InputError
from ..core.storage import (
    Location,
    ObjectPath,
    delete_object,
    delete_prefix,
    list_objects,
    object_info,
    read_object,
    write_object,
)
from .files import PARTIAL_SUFFIX, claim_file, make_folder, remove_if_abandoned, write_file


class Folder(Protocol):
    def check(self) -> None:
        """InputError if the target is there but is no folder."""

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None if there is no such file."""

    def write(self, name: str, data: bytes) -> None:
        """`data` as the whole file: readers see the old file or the new one."""

    def claim(self, name: str, data: bytes) -> bytes:
        """Write `data` unless the file exists; what the file holds either way."""

    def delete(self, name: str) -> None: ...

    def delete_tree(self, name: str) -> None:
        """The folder `name` and all under it."""

    def clear(self) -> None:
        """Everything in the folder, which stays (it may be a volume's mount point)."""

    def names(self, folder: str, pattern: str) -> list[str]:
        """The names of the files directly in `folder` ("" for the top) that match the glob
        `pattern`, sorted."""

    def folders(self, folder: str) -> list[str]:
        """The names of the folders directly in `folder`."""

    def holds(self, part: dict[str, Any]) -> bool:
        """Whether a part (a shard's record of it: PartResult's fields) is there as written:
        its SHA-256 on disk; in a store, the size and time the store listed after the upload."""

    def tidy(self) -> None:
        """Remove what killed writers left (their `.partial` files), never a live one's."""


class LocalFolder:
    def __init__(self, path: Path) -> None:
        self.path = path

    def check(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise InputError(["--output"], f"{self.path} exists and is not a folder")

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write(self, name: str, data: bytes) -> None:
        make_folder((self.path / name).parent)
        write_file(self.path / name, data)

    def claim(self, name: str, data: bytes) -> bytes:
        make_folder((self.path / name).parent)
        return claim_file(self.path / name, data)

    def delete(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)

    def delete_tree(self, name: str) -> None:
        shutil.rmtree(self.path / name, ignore_errors=True)

    def clear(self) -> None:
        for child in self.path.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def names(self, folder: str, pattern: str) -> list[str]:
        return sorted(p.name for p in (self.path / folder).glob(pattern) if p.is_file())

    def folders(self, folder: str) -> list[str]:
        with contextlib.suppress(FileNotFoundError):
            return sorted(p.name for p in (self.path / folder).iterdir() if p.is_dir())
        return []

    def holds(self, part: dict[str, Any]) -> bool:
        path = self.path / str(part["name"])
        return path.is_file() and sha256_file(path) == str(part["sha256"])

    def tidy(self) -> None:
        for partial in self.path.glob(f".part-*{PARTIAL_SUFFIX}"):
            remove_if_abandoned(partial)  # a killed process's; never a live duplicate's


class ObjectFolder:
    def __init__(self, prefix: ObjectPath) -> None:
        self.prefix = prefix

    def check(self) -> None:
        if not self.prefix.key:
            raise InputError(
                ["--output"],
                f"--output {self.prefix}: give a prefix of its own in the bucket "
                "(s3://bucket/prefix/), not the whole bucket",
            )
        if object_info(self.prefix) is not None:
            raise InputError(
                ["--output"], f"{self.prefix} is an object; give a prefix that is not one"
            )

    def read(self, name: str) -> bytes | None:
        return read_object(self.prefix / name)

    def write(self, name: str, data: bytes) -> None:
        write_object(self.prefix / name, data)

    def claim(self, name: str, data: bytes) -> bytes:
        found = self.read(name)
        if found is None:
            self.write(name, data)
            return data
        return found

    def delete(self, name: str) -> None:
        delete_object(self.prefix / name)

    def delete_tree(self, name: str) -> None:
        delete_prefix(self.prefix / name)

    def clear(self) -> None:
        delete_prefix(self.prefix)

    def _children(self, folder: str) -> list[str]:
        """The keys under `folder`, relative to it."""
        base = self.prefix / folder
        skip = len(str(base)) + 1
        return [str(entry.path)[skip:] for entry in list_objects(base)]

    def names(self, folder: str, pattern: str) -> list[str]:
        return sorted(
            name
            for name in self._children(folder)
            if "/" not in name and fnmatch.fnmatchcase(name, pattern)
        )

    def folders(self, folder: str) -> list[str]:
        return sorted({name.split("/")[0] for name in self._children(folder) if "/" in name})

    def holds(self, part: dict[str, Any]) -> bool:
        found = object_info(self.prefix / part["name"])
        return found is not None and (found.size, found.mtime_ns) == (
            part.get("size"),
            part.get("stored_ns"),
        )

    def tidy(self) -> None:
        pass  # a killed upload's hidden object may belong to a live duplicate: it stays


def folder_at(target: Location) -> Folder:
    return ObjectFolder(target) if isinstance(target, ObjectPath) else LocalFolder(target)
