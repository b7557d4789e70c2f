"""File helpers shared by every command: atomic writes and image loading with clear errors."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from posedraw.errors import ImageReadError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    Readers of `path` then see either the old file or the complete new one, never a partial write,
    even when the process is interrupted.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable_file(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder in its place, or no
    writable folder to put it in (its nearest existing parent). Creates nothing."""
    from posedraw.errors import PosedrawError

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
    from posedraw.errors import PosedrawError

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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
