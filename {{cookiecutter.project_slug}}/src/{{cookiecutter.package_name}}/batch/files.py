"""The files and folders a batch job writes: each written under a name of its own and renamed
when complete, locked while it is written, and as open to group 0 as to its owner.

- A file in the making is `.<name>.<random>.partial` beside its final name. Its writer holds an
  exclusive `flock` on it until the rename, so that a cleaner (the shard that completes a run,
  or the next run into the same file) removes only what a dead process left: never the file a
  live copy of a shard (a duplicate pod) is writing.
- Permissions follow the image's rule (its Dockerfile's `chmod g=u`): what the process umask
  gives the owner, group 0 gets too. A shard or a reader that runs under another UID of the
  same group reads, replaces and removes these files like their writer.
"""

import contextlib
import fcntl
import os
import secrets
import time
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def group_like_owner(path: Path | int) -> None:
    """Give the group what the owner has (`chmod g=u`), on a path or an open descriptor."""
    mode = os.stat(path).st_mode & 0o777
    wanted = mode | (mode & 0o700) >> 3
    if wanted != mode:
        os.chmod(path, wanted)


def make_folder(path: Path) -> None:
    """`mkdir -p`, each folder it creates as open to group 0 as to its owner."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another shard made it meanwhile
            folder.mkdir()
            group_like_owner(folder)


class Partial:
    """A file in the making beside `target`, created empty, locked until `commit` renames it
    to `target` or `discard` removes it. Writers open `path` themselves."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._fd: int | None = None
        while True:
            self.path = target.parent / f".{target.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}"
            # Created and locked under another name, then renamed: a cleaner never sees a
            # `.partial` file before its lock is taken.
            unlocked = self.path.with_name(self.path.name + ".new")
            try:
                self._fd = os.open(unlocked, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
                break
            except FileExistsError:
                continue
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        group_like_owner(self._fd)
        os.rename(unlocked, self.path)

    def commit(self) -> None:
        try:
            os.replace(self.path, self.target)
        finally:
            self._release()

    def discard(self) -> None:
        """Remove the file and release its lock, unless `commit` already ran (whether the
        rename succeeded or not); safe to call twice."""
        if self._fd is not None:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_file(target: Path, data: bytes) -> None:
    """`data` into `target` as a whole: readers see the old file or the new one."""
    partial = Partial(target)
    try:
        partial.path.write_bytes(data)
    except BaseException:
        partial.discard()
        raise
    partial.commit()


def claim_file(target: Path, data: bytes) -> bytes:
    """Create `target` holding `data` unless it exists; return what it holds either way (the
    first writer's data). Never a half-written file where hard links work: it is linked
    complete. Where they do not (some bucket mounts), it is created exclusively and written,
    and a reader that finds it still empty waits for its content."""
    partial = Partial(target)
    try:
        partial.path.write_bytes(data)
        os.link(partial.path, target)
    except FileExistsError:
        pass
    except OSError:  # no hard links here
        with contextlib.suppress(FileExistsError):
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            group_like_owner(target)
    finally:
        partial.discard()
    for _ in range(100):
        found = target.read_bytes()
        if found:
            return found
        time.sleep(0.05)
    return found


def remove_if_abandoned(path: Path) -> bool:
    """Remove a `.partial` file unless a live writer holds its lock; whether it was removed."""
    try:
        # Read-write: NFS emulates flock with a lock that needs a descriptor open for writing.
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False  # gone, or not ours to judge
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its writer is alive (or the lock cannot be judged: keep it)
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def remove_abandoned_beside(target: Path) -> None:
    """The `.partial` files that dead writers of `target` left beside it."""
    for path in target.parent.glob(f".{target.name}.*{PARTIAL_SUFFIX}"):
        remove_if_abandoned(path)
