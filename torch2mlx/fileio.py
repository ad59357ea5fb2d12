"""File reading and atomic writing: a file is either fully written or not touched."""
from __future__ import annotations

import io
import os
import tempfile
import tokenize
from pathlib import Path

from torch2mlx.diagnostics import InputError


def decode_source(data: bytes, path: str = "<string>") -> str:
    """Bytes to text: UTF-8 (a BOM is kept) or the PEP 263 coding cookie; else an InputError."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        # "utf-8-sig" would drop the BOM; decode as utf-8 so "\ufeff" stays and is written back.
        return data.decode("utf-8" if encoding == "utf-8-sig" else encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        line = data[: getattr(exc, "start", 0)].count(b"\n") + 1 if isinstance(exc, UnicodeDecodeError) else 0
        raise InputError(f"cannot decode file: {exc}", path, line, 0) from None


def read_source(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory", str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", str(path)) from None
    return decode_source(data, str(path))


def source_encoding(text: str) -> str:
    """The encoding a source text declares (PEP 263 cookie in its first two lines), else UTF-8."""
    head = "".join(text.lstrip("\ufeff").splitlines(keepends=True)[:2])
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(head.encode("utf-8", "surrogateescape")).readline)
    except (SyntaxError, LookupError):
        return "utf-8"
    return "utf-8" if encoding == "utf-8-sig" else encoding


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename over it (never a half-written file).

    The text is encoded as its coding cookie says (a latin-1 file stays latin-1), so
    reading it back gives the same characters; a leading "\ufeff" is written as the UTF-8 BOM.
    """
    path = Path(path)
    data = text.encode(source_encoding(text))  # before any file exists: an encode error leaves nothing
    write_bytes_atomic(path, data)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:  # mkstemp makes 0600; a new file gets what open() would give it (0666 less the umask)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
