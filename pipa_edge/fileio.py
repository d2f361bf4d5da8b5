"""Crash-safe file writing shared by checkpoints, sidecars, reports and collections, and the one
error path for writes that fail because of the machine (full disk, no permission, read-only).

:func:`guard_write` turns ``ENOSPC`` / ``EDQUOT`` / ``EACCES`` / ``EPERM`` / ``EROFS`` into a
:class:`~pipa_edge.errors.WriteError`: one line naming the path and what was kept, exit 2. Other
``OSError`` s stay ordinary exceptions. :func:`atomic_write` writes through it.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

from pipa_edge.errors import WriteError

WRITE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.EROFS: "read-only file system"}


def machine_oserror(exc: BaseException | None) -> OSError | None:
    """The full-disk/permission/read-only ``OSError`` in ``exc`` or its cause/context chain.

    ``torch.save`` reports a failed ``write`` as a ``RuntimeError`` whose context is the OSError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def write_error(path: str | Path, exc: BaseException, kept: str | None = None) -> WriteError | None:
    """A :class:`WriteError` for ``exc`` when it is a machine write failure, else None."""
    os_err = machine_oserror(exc)
    if os_err is None:
        return None
    where = os_err.filename if os_err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and os_err.filename else path
    what = WRITE_ERRNOS[os_err.errno]
    tail = f"; {kept}" if kept else ""
    return WriteError(f"{where}: cannot write ({what}){tail}", path=str(where), reason=what)


@contextmanager
def guard_write(path: str | Path, kept: str | None = None) -> Iterator[None]:
    """``with guard_write(path, kept="the previous last.pt is kept"): ...`` — see the module docstring."""
    try:
        yield
    except WriteError as e:  # from a nested guard: the outer caller knows better what was kept
        if kept is None or not e.reason:
            raise
        raise WriteError(f"{e.path}: cannot write ({e.reason}); {kept}", path=e.path, reason=e.reason) from None
    except BaseException as e:  # noqa: BLE001 - re-raised unless it is a machine write failure
        err = write_error(path, e, kept)
        if err is None:
            raise
        raise err from None


def write_errors_as_one_line(what: str, kept: str | None = None):
    """Decorator: a full disk / missing permission / read-only folder anywhere in the function
    becomes a :class:`WriteError` naming the failing file (or ``what`` when the OS did not say)."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except WriteError:
                raise
            except BaseException as e:  # noqa: BLE001 - re-raised unless it is a machine write failure
                os_err = machine_oserror(e)
                err = write_error(os_err.filename or what, e, kept) if os_err is not None else None
                if err is None:
                    raise
                raise err from None

        return wrapper

    return deco


def _kept(path: Path) -> str:
    return f"the previous {path.name} is kept" if path.exists() else "nothing was written"


def _open_new(folder: Path, name: str) -> tuple[int, Path]:
    """Create a fresh temp file with mode ``0666`` (the kernel applies the umask: no process-wide
    ``os.umask`` read, which would race with threads creating files)."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: cannot create a temp file for {name}")


def atomic_write(path: str | Path, write: Callable[[IO], None], binary: bool = True, *, guard: bool = True,
                 kept: str | None = None, fsync: bool = True) -> Path:
    """Write through ``write(file)`` to a temp file in the same folder, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never a partial file. The
    result gets ordinary permissions (``0666 & ~umask``). With ``guard`` (default) a full disk /
    missing permission / read-only folder raises :class:`WriteError` naming ``path`` and what
    was kept (``kept``, default: the previous file or nothing); ``guard=False`` re-raises the
    ``OSError`` (the collector decides itself what a full disk means). ``fsync=False`` skips the
    fsync (still no partial file after a process crash; after a power loss the file may be empty):
    for per-frame outputs, where an fsync per frame is slow on eMMC/SD cards.
    """
    path = Path(path)
    if not guard:
        return _atomic_write(path, write, binary, fsync)
    with guard_write(path, kept if kept is not None else _kept(path)):
        return _atomic_write(path, write, binary, fsync)


def _atomic_write(path: Path, write: Callable[[IO], None], binary: bool, fsync: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_new(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_bytes(path: str | Path, data: bytes, **kw) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda f: f.write(data), **kw)


def write_text(path: str | Path, text: str, **kw) -> Path:
    """:func:`atomic_write` of ``text`` (UTF-8)."""
    return atomic_write(path, lambda f: f.write(text.encode()), **kw)


def remove_folder_of(folder: str | Path, names: tuple[str, ...]) -> bool:
    """Remove ``folder`` when it holds nothing but files named in ``names`` (e.g. caches a failed
    start wrote); True when removed."""
    folder = Path(folder)
    if not folder.is_dir() or any(p.name not in names or not p.is_file() for p in folder.iterdir()):
        return False
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    return True


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
