"""File helpers shared by every command: atomic writes and image loading with clear errors."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from posedraw.errors import ImageReadError, PosedrawError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    Readers of `path` then see either the old file or the complete new one, never a partial write,
    even when the process is interrupted. A failed write removes the temporary file and its OS error
    names `path` (raise_on_user_path).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_temp_suffix(target.name), dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, target)
    except Exception as exc:
        raise_on_user_path(exc, tmp, target)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _temp_suffix(name: str) -> str:
    return Path(name).suffix or ".tmp"


#: the names atomic_path gives its temporary files: `.<name>.<8 characters of mkstemp><suffix of name>`
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)")


def stale_temps(folder: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """The temporary files that atomic writes of `names` (file names in `folder`) left behind when their
    process was killed: only files named exactly as atomic_path names them, so nothing else is touched.
    The folder is listed once, however many names are asked about."""
    wanted = set(names)
    found = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            match = _TEMP_NAME.fullmatch(entry.name)
            ours = match and match["name"] in wanted and match["suffix"] == _temp_suffix(match["name"])
            if ours and entry.is_file(follow_symlinks=False):
                found.append(Path(entry.path))
    return sorted(found)


def remove_stale_temps(folder: str | os.PathLike[str], names: Iterable[str]) -> int:
    """Remove stale_temps(folder, names); returns how many. Call it only where no other process writes
    those names at the same time (a killed run's own outputs, before it resumes)."""
    stale = stale_temps(folder, names)
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


#: the OS error inside a library's message, as Rust's std::io formats it (safetensors)
_OS_ERROR_IN_MESSAGE = re.compile(r"\(os error (\d+)\)")


def raise_on_user_path(exc: BaseException, tmp: Path, target: Path) -> None:
    """Raise `exc` again naming the user's `target` where it names the hidden temporary `tmp` (or a file
    inside it), or no file at all: a full disk then reads `<target>: No space left on device`, a path the
    user knows, not a temporary name that is gone by then. Returns (the caller re-raises `exc` unchanged)
    when `exc` is about another file or is no OS error.

    An OS error that a library reports as its own exception (safetensors: `... (os error 28)`) becomes the
    OSError it stands for."""
    if isinstance(exc, PosedrawError):
        return
    if isinstance(exc, OSError):
        number, reason, filename = exc.errno, exc.strerror, exc.filename
    else:
        match = _OS_ERROR_IN_MESSAGE.search(str(exc)) if exc.__class__.__name__ == "SafetensorError" else None
        if match is None:
            return
        number, filename = int(match[1]), None
        reason = os.strerror(number)
    if number is None:
        return
    named = isinstance(filename, (str, bytes, os.PathLike))  # not an open file's number
    where = _beside(Path(os.fsdecode(filename)), tmp, target) if named else target
    if where is not None:
        raise OSError(number, reason, str(where)) from exc


def _beside(path: Path, tmp: Path, target: Path) -> Path | None:
    """`path` under `target`'s name if it is `tmp` or inside it, else None."""
    if path == tmp:
        return target
    if tmp in path.parents:
        return target / path.relative_to(tmp)
    return None


class _KeepWriteErrors:
    """A binary file that remembers the OS error of a failed write: torch.save reports one as a
    RuntimeError ("unexpected pos ...") that says nothing of a full disk."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def torch_save_atomic(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save `obj` to `path` through a temporary file beside it (never in $TMPDIR, never whole in
    memory first): a failure leaves the old file, removes the partial one, and names `path`."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        writer = _KeepWriteErrors(handle)
        try:
            torch.save(obj, writer)  # type: ignore[arg-type]
        except RuntimeError:
            if writer.error is None:
                raise
            raise writer.error from None


def check_writable_file(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder in its place, or no
    writable folder to put it in (its nearest existing parent). Creates nothing."""
    target = Path(path)
    if target.is_dir():
        raise PosedrawError(f"{target}: is a folder; expected a file name to write")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PosedrawError(f"{target}: cannot be written ({_not_writable(parent)})")


def check_writable_dir(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output folder that cannot be made or written: a file in its place, or
    (for a new folder) no writable folder above it. Creates nothing."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise PosedrawError(f"{target}: is a file; expected a folder to write into")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        where = "is not writable" if existing == target else f"cannot be made ({_not_writable(existing)})"
        raise PosedrawError(f"{target}: {where}")


def _not_writable(path: Path) -> str:
    return f"{path} is a file, not a folder" if path.exists() and not path.is_dir() else f"{path} is not writable"


def _read_umask() -> int:
    """The process umask, read without changing it where the system says it (Linux's /proc), else read
    once at import by setting and restoring it (before any thread of ours runs)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current


_UMASK = _read_umask()  # honoured by passing modes explicitly; the umask itself is never changed


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_image_atomic(image: Image.Image, path: str | os.PathLike[str], **save_kwargs: object) -> None:
    """Save a PIL image so that `path` never holds a half-written file."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise ImageReadError(f"{path}: unknown image extension; expected .png, .jpg or .webp")
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **save_kwargs)


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Load an image file as an RGB uint8 array (H, W, 3), raising ImageReadError naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; it replaces `path` only if the block succeeds.

    A model folder is then either the old complete one or the new complete one, never half-written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700 folders
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    except Exception as exc:
        raise_on_user_path(exc, tmp, target)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
