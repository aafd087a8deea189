"""LocalBlobStore on a temporary directory."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from storage.blobs import (
    BlobNotFound,
    BlobRef,
    BlobTooLarge,
    LocalBlobStore,
    normalise_content_type,
    validate_sha256,
)

PDF = b"%PDF-1.7\n" + "Претензия по заказу №42".encode() + bytes(range(256)) * 100
PDF_SHA = hashlib.sha256(PDF).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def stored_files(store: LocalBlobStore) -> list[Path]:
    """Every regular file under the root, temporary ones included."""
    if not store.root.exists():
        return []
    return sorted(p for p in store.root.rglob("*") if p.is_file())


async def stream(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


class TestPut:
    async def test_roundtrip(self, store: LocalBlobStore) -> None:
        ref = await store.put(PDF, "application/pdf")

        assert ref == BlobRef(PDF_SHA, len(PDF), "application/pdf")
        assert await store.get(ref.sha256) == PDF
        assert await store.exists(ref.sha256)
        assert store.path(ref.sha256) == store.root / PDF_SHA[:2] / PDF_SHA[2:4] / PDF_SHA
        assert stored_files(store) == [store.path(PDF_SHA)]

    async def test_empty_blob(self, store: LocalBlobStore) -> None:
        ref = await store.put(b"", "text/plain")

        assert ref.size == 0
        assert await store.get(ref.sha256) == b""

    async def test_same_content_is_stored_once(self, store: LocalBlobStore) -> None:
        first = await store.put(PDF, "application/pdf")
        mtime = store.path(first.sha256).stat().st_mtime_ns
        second = await store.put(PDF, "Application/PDF; name=copy.pdf")

        assert first == second
        assert stored_files(store) == [store.path(PDF_SHA)]
        assert store.path(first.sha256).stat().st_mtime_ns == mtime

    async def test_content_type_is_per_ref_not_per_blob(self, store: LocalBlobStore) -> None:
        as_pdf = await store.put(PDF, "application/pdf")
        as_bytes = await store.put(PDF, "")

        assert as_pdf.content_type == "application/pdf"
        assert as_bytes.content_type == "application/octet-stream"
        assert len(stored_files(store)) == 1

    async def test_concurrent_puts_of_same_content(self, store: LocalBlobStore) -> None:
        refs = await asyncio.gather(*(store.put(PDF, "application/pdf") for _ in range(20)))

        assert set(refs) == {BlobRef(PDF_SHA, len(PDF), "application/pdf")}
        assert stored_files(store) == [store.path(PDF_SHA)]
        assert await store.get(PDF_SHA) == PDF

    async def test_concurrent_puts_of_different_content(self, store: LocalBlobStore) -> None:
        blobs = [f"вложение {n}".encode() for n in range(20)]

        refs = await asyncio.gather(*(store.put(blob, "text/plain") for blob in blobs))

        assert [await store.get(ref.sha256) for ref in refs] == blobs
        assert len(stored_files(store)) == 20


class TestPutStream:
    async def test_roundtrip_matches_put(self, store: LocalBlobStore) -> None:
        parts = [PDF[i : i + 1000] for i in range(0, len(PDF), 1000)]

        ref = await store.put_stream(stream(parts), "application/pdf", max_size=len(PDF))

        assert ref == BlobRef(PDF_SHA, len(PDF), "application/pdf")
        assert await store.get(PDF_SHA) == PDF
        assert stored_files(store) == [store.path(PDF_SHA)]

    async def test_large_stream_in_big_chunks(self, store: LocalBlobStore) -> None:
        parts = [bytes([n]) * 700_000 for n in range(5)]
        data = b"".join(parts)

        ref = await store.put_stream(stream(parts), "video/mp4", max_size=10_000_000)

        assert ref.sha256 == hashlib.sha256(data).hexdigest()
        assert await store.get(ref.sha256) == data

    async def test_existing_content_is_not_duplicated(self, store: LocalBlobStore) -> None:
        await store.put(PDF, "application/pdf")

        ref = await store.put_stream(stream([PDF]), "application/pdf", max_size=len(PDF))

        assert ref.sha256 == PDF_SHA
        assert stored_files(store) == [store.path(PDF_SHA)]

    async def test_too_large_leaves_no_file(self, store: LocalBlobStore) -> None:
        consumed: list[int] = []

        async def endless() -> AsyncIterator[bytes]:
            n = 0
            while True:
                consumed.append(n)
                n += 1
                yield b"x" * 1000

        with pytest.raises(BlobTooLarge) as raised:
            await store.put_stream(endless(), "text/plain", max_size=5_500)

        assert raised.value.max_size == 5_500
        assert len(consumed) == 6  # stopped reading at the first chunk past the limit
        assert stored_files(store) == []

    async def test_exactly_max_size_is_allowed(self, store: LocalBlobStore) -> None:
        ref = await store.put_stream(stream([b"ab", b"cd"]), "text/plain", max_size=4)

        assert ref.size == 4

    async def test_failing_stream_leaves_no_file(self, store: LocalBlobStore) -> None:
        async def broken() -> AsyncIterator[bytes]:
            yield b"part"
            raise ConnectionResetError("client went away")

        with pytest.raises(ConnectionResetError):
            await store.put_stream(broken(), "text/plain", max_size=100)

        assert stored_files(store) == []


BAD_HASHES = (
    "",
    "../../etc/passwd",
    "a" * 63,
    "a" * 65,
    "g" * 64,
    "/" + "a" * 63,
    "a" * 64 + "\n",
    "a" * 62 + "/.",
    "аа" * 32,  # Cyrillic "а"
)


class TestHashValidation:
    @pytest.mark.parametrize("bad", BAD_HASHES)
    async def test_bad_hashes_are_rejected(self, store: LocalBlobStore, bad: str) -> None:
        with pytest.raises(ValueError):
            store.path(bad)
        with pytest.raises(ValueError):
            await store.get(bad)
        with pytest.raises(ValueError):
            await store.exists(bad)

    async def test_upper_case_is_accepted(self, store: LocalBlobStore) -> None:
        await store.put(PDF, "application/pdf")

        assert validate_sha256(PDF_SHA.upper()) == PDF_SHA
        assert await store.get(PDF_SHA.upper()) == PDF

    async def test_missing_blob(self, store: LocalBlobStore) -> None:
        assert not await store.exists("0" * 64)
        with pytest.raises(BlobNotFound):
            await store.get("0" * 64)


class TestContentType:
    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("application/pdf", "application/pdf"),
            ("Text/HTML; charset=UTF-8", "text/html"),
            ("  image/jpeg  ", "image/jpeg"),
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            ("image/svg+xml", "image/svg+xml"),
            ("", "application/octet-stream"),
            ("pdf", "application/octet-stream"),
            ("text/", "application/octet-stream"),
            ("text/plain/extra", "application/octet-stream"),
            ("текст/plain", "application/octet-stream"),
            ("text/plain\r\nX-Injected: 1", "application/octet-stream"),
        ],
    )
    def test_normalised(self, given: str, expected: str) -> None:
        assert normalise_content_type(given) == expected


class TestPutMany:
    async def test_many_at_once_like_one_by_one(self, store: LocalBlobStore) -> None:
        items = [(b"one", "text/plain"), (b"two", "application/pdf"), (b"one", "text/csv")]
        refs = await store.put_many(items)
        assert [r.size for r in refs] == [3, 3, 3]
        assert refs[0].sha256 == refs[2].sha256 and refs[2].content_type == "text/csv"
        assert [await store.get(r.sha256) for r in refs] == [b"one", b"two", b"one"]
        assert refs[1] == await store.put(b"two", "application/pdf")
        assert len(stored_files(store)) == 2
        assert not any((store.root / ".tmp").iterdir())
        assert await store.put_many([]) == []
