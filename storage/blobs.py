"""Content-addressed storage for attachment blobs on the local disk.

A blob lives at ``root/ab/cd/<sha256>`` where ``abcd`` are the first four hex
digits of its SHA-256. Identical content is stored once. Files appear
atomically (written to a temporary file, fsynced, then ``os.replace``d), so a
reader never sees a partial blob and concurrent writers of the same content
are harmless. Blob files are created with mode 0600: attachments carry personal
data, and only the hub's own processes read them.

The store keeps no metadata: the caller records the returned ``BlobRef`` (hash,
size, content type) next to the message it belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "BlobError",
    "BlobNotFound",
    "BlobRef",
    "BlobStore",
    "BlobTooLarge",
    "LocalBlobStore",
    "normalise_content_type",
    "validate_sha256",
]

DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"

_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
# RFC 6838 restricted-name characters for type and subtype.
_NAME: Final = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_CONTENT_TYPE_RE: Final = re.compile(f"{_NAME}/{_NAME}")
_TMP_DIR: Final = ".tmp"
_WRITE_BUFFER: Final = 1 << 20


class BlobError(Exception):
    """Base class of blob storage errors."""


class BlobTooLarge(BlobError):
    """The streamed content exceeded the allowed size; nothing was stored."""

    def __init__(self, max_size: int) -> None:
        super().__init__(f"blob exceeds the maximum size of {max_size} bytes")
        self.max_size = max_size


class BlobNotFound(BlobError, LookupError):
    """No blob with this hash is stored."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"blob {sha256} not found")
        self.sha256 = sha256


@dataclass(frozen=True, slots=True)
class BlobRef:
    """What a caller keeps to find a blob again and serve it."""

    sha256: str
    size: int
    content_type: str


class BlobStore(Protocol):
    """Content-addressed blob storage."""

    async def put(self, data: bytes, content_type: str) -> BlobRef:
        """Store ``data`` (once, however often it is put) and return its reference."""
        ...

    async def put_stream(
        self, chunks: AsyncIterator[bytes], content_type: str, max_size: int
    ) -> BlobRef:
        """Store streamed content; past ``max_size`` bytes raise ``BlobTooLarge``, store nothing."""
        ...

    async def put_many(self, items: Sequence[tuple[bytes, str]]) -> list[BlobRef]:
        """Store several blobs at once (durable when it returns); references in order."""
        ...

    async def get(self, sha256: str) -> bytes:
        """Return the blob's content; raise ``BlobNotFound`` if it is not stored."""
        ...

    async def exists(self, sha256: str) -> bool:
        """Whether a blob with this hash is stored."""
        ...


def validate_sha256(sha256: str) -> str:
    """Return the hash in lower case; raise ValueError unless it is 64 hex digits.

    Every path is built from a validated hash, so no input can leave the root.
    """
    if isinstance(sha256, str):
        lowered = sha256.lower()
        if _SHA256_RE.fullmatch(lowered):
            return lowered
    raise ValueError(f"not a SHA-256 hex digest: {sha256!r:.80}")


def normalise_content_type(content_type: str | None) -> str:
    """Reduce a Content-Type to lower-case ``type/subtype``; malformed means octet-stream."""
    if not content_type:
        return DEFAULT_CONTENT_TYPE
    essence = content_type.split(";", 1)[0].strip().lower()
    if _CONTENT_TYPE_RE.fullmatch(essence):
        return essence
    return DEFAULT_CONTENT_TYPE


class LocalBlobStore:
    """Blobs in a local directory tree; file IO runs in worker threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """The file a blob is (or would be) stored in; raises ValueError for a bad hash."""
        digest = validate_sha256(sha256)
        return self.root / digest[:2] / digest[2:4] / digest

    async def put(self, data: bytes, content_type: str) -> BlobRef:
        """Store ``data``; a second put of the same content writes nothing."""
        content_type = normalise_content_type(content_type)
        return await asyncio.to_thread(self._put_bytes, bytes(data), content_type)

    async def put_many(self, items: Sequence[tuple[bytes, str]]) -> list[BlobRef]:
        """Store several blobs in one go: written, then made durable with one sync of the
        file system (where the OS offers syncfs) instead of two fsyncs per file."""
        typed = [(bytes(data), normalise_content_type(kind)) for data, kind in items]
        return await asyncio.to_thread(self._put_many, typed)

    async def put_stream(
        self, chunks: AsyncIterator[bytes], content_type: str, max_size: int
    ) -> BlobRef:
        """Store streamed content without holding it in memory.

        Raises ``BlobTooLarge`` as soon as more than ``max_size`` bytes arrive;
        the partial file is removed and the rest of the stream is not read.
        """
        if max_size < 0:
            raise ValueError("max_size must not be negative")
        content_type = normalise_content_type(content_type)
        tmp_dir = self.root / _TMP_DIR
        fd, tmp_name = await asyncio.to_thread(_make_temp, tmp_dir)
        tmp_path = Path(tmp_name)
        hasher = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as file:
                buffer = bytearray()
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_size:
                        raise BlobTooLarge(max_size)
                    buffer += chunk
                    if len(buffer) >= _WRITE_BUFFER:
                        await asyncio.to_thread(_write, file, hasher, bytes(buffer))
                        buffer.clear()
                await asyncio.to_thread(_write, file, hasher, bytes(buffer))
                await asyncio.to_thread(_flush_and_sync, file)
            ref = BlobRef(hasher.hexdigest(), size, content_type)
            await asyncio.to_thread(self._install, tmp_path, ref)
            return ref
        finally:
            # Gone after a successful install; left over after any failure.
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(tmp_path.unlink)

    async def get(self, sha256: str) -> bytes:
        """Return the blob's content; raise ``BlobNotFound`` if it is not stored."""
        path = self.path(sha256)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(path.name) from None

    async def exists(self, sha256: str) -> bool:
        """Whether a blob with this hash is stored."""
        return await asyncio.to_thread(self.path(sha256).is_file)

    # --- blocking helpers, run in worker threads ---

    def _put_bytes(self, data: bytes, content_type: str) -> BlobRef:
        ref = BlobRef(hashlib.sha256(data).hexdigest(), len(data), content_type)
        if self._is_stored(ref):
            return ref
        fd, tmp_name = _make_temp(self.root / _TMP_DIR)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                _flush_and_sync(file)
            self._install(Path(tmp_name), ref)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        return ref

    def _put_many(self, items: list[tuple[bytes, str]]) -> list[BlobRef]:
        refs = [BlobRef(hashlib.sha256(data).hexdigest(), len(data), kind) for data, kind in items]
        pending: dict[str, tuple[Path, BlobRef]] = {}
        try:
            for (data, _), ref in zip(items, refs, strict=True):
                if ref.sha256 in pending or self._is_stored(ref):
                    continue
                fd, tmp_name = _make_temp(self.root / _TMP_DIR)
                pending[ref.sha256] = (Path(tmp_name), ref)
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    if not _CAN_SYNCFS:
                        _flush_and_sync(file)
            if pending:
                _sync_filesystem(self.root)  # the contents, before any name points at them
                for tmp_path, ref in pending.values():
                    final = self.path(ref.sha256)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp_path, final)
                    if not _CAN_SYNCFS:
                        _sync_dir(final.parent)
                _sync_filesystem(self.root)  # the new names
        finally:
            for tmp_path, _ in pending.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_path)
        return refs

    def _is_stored(self, ref: BlobRef) -> bool:
        try:
            return self.path(ref.sha256).stat().st_size == ref.size
        except FileNotFoundError:
            return False

    def _install(self, tmp_path: Path, ref: BlobRef) -> None:
        """Move a complete, synced temporary file into its final place."""
        if self._is_stored(ref):
            return
        final = self.path(ref.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Atomic on one file system: readers see the old file or the whole new one.
        os.replace(tmp_path, final)
        _sync_dir(final.parent)


def _make_temp(directory: Path) -> tuple[int, str]:
    directory.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=directory, prefix="blob-")


def _write(file: _BinaryFile, hasher: _Hasher, data: bytes) -> None:
    hasher.update(data)
    file.write(data)


def _flush_and_sync(file: _BinaryFile) -> None:
    file.flush()
    os.fsync(file.fileno())


def _load_syncfs() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs() if sys.platform.startswith("linux") else None
_CAN_SYNCFS = _SYNCFS is not None


def _sync_filesystem(path: Path) -> None:
    """syncfs(2): flush everything written to the file system holding `path`."""
    if _SYNCFS is None:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed")
    finally:
        os.close(fd)


def _sync_dir(directory: Path) -> None:
    """Make the new directory entry durable (POSIX); best effort elsewhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _BinaryFile(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def fileno(self) -> int: ...


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
