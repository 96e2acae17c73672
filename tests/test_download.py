"""fetch_archive / extract_archive against a real HTTP server on 127.0.0.1 (no outside network).

The server serves a tiny archive in the torchvision CIFAR-10 layout that the tests build, pickled
like the original release (protocol 2, N x 3072 uint8 rows), plus deliberately broken variants.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from compresslib.data.cifar import read_cifar
from compresslib.data.download import (
    ARCHIVES,
    Archive,
    ChecksumError,
    DownloadError,
    archive_source,
    extract_archive,
    fetch_archive,
    md5_file,
)

from conftest import http_server

FILENAME = "cifar-10-python.tar.gz"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCH_SIZES = {"data_batch_1": 3, "data_batch_2": 2, "data_batch_3": 2, "data_batch_4": 2, "data_batch_5": 2,
               "test_batch": 4}


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _build_cifar10_archive() -> tuple[bytes, dict[str, np.ndarray]]:
    """A CIFAR-10 tar.gz with a few random images per batch, and the arrays it should decode to."""
    rng = np.random.default_rng(0)
    members, expected = {}, {"train_inputs": [], "train_labels": [], "test_inputs": [], "test_labels": []}
    for name, count in BATCH_SIZES.items():
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).tolist()
        filenames = [f"{name}_{i}.png" for i in range(count)]
        batch = {"batch_label": name, "labels": labels, "data": data, "filenames": filenames}
        members[f"cifar-10-batches-py/{name}"] = pickle.dumps(batch, protocol=2)
        split = "test" if name == "test_batch" else "train"
        expected[f"{split}_inputs"].append(data)
        expected[f"{split}_labels"].append(labels)
    meta = {"num_cases_per_batch": 10000, "label_names": CLASSES, "num_vis": 3072}
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(meta, protocol=2)
    arrays = {key: np.concatenate(parts) for key, parts in expected.items()}
    return _tar_gz(members), arrays


@pytest.fixture(scope="module")
def tarball() -> tuple[bytes, dict[str, np.ndarray]]:
    return _build_cifar10_archive()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tarball) -> Path:
    """Directory the server serves: the good archive at the top, a corrupted copy under corrupt/."""
    root = tmp_path_factory.mktemp("served")
    payload, _ = tarball
    (root / FILENAME).write_bytes(payload)
    corrupted = bytearray(payload)
    corrupted[len(corrupted) // 2] ^= 0xFF
    (root / "corrupt").mkdir()
    (root / "corrupt" / FILENAME).write_bytes(bytes(corrupted))
    return root


@pytest.fixture(scope="module")
def server(served: Path) -> Iterator[str]:
    """Base URL of an HTTP server on 127.0.0.1 serving ``served``."""
    with http_server(served) as url:
        yield url


@pytest.fixture
def archive(server: str, tarball) -> Archive:
    payload, _ = tarball
    return Archive(filename=FILENAME, url=f"{server}/{FILENAME}", md5=hashlib.md5(payload).hexdigest())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_archives_carry_torchvision_official_url_and_md5():
    assert ARCHIVES["cifar10"] == Archive(
        "cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a")
    assert ARCHIVES["cifar100"] == Archive(
        "cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85")


def test_md5_file(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    assert md5_file(path) == hashlib.md5(b"abc" * 1000).hexdigest()


def test_archive_source_forms(tmp_path: Path):
    archive = Archive(FILENAME, "https://example.org/x/" + FILENAME, "0" * 32)
    assert archive_source(archive, None) == archive.url
    assert archive_source(archive, "http://host/mirror/") == "http://host/mirror/" + FILENAME
    assert archive_source(archive, "file:///srv/mirror") == "file:///srv/mirror/" + FILENAME
    assert archive_source(archive, str(tmp_path)) == str(tmp_path / FILENAME)


def test_a_file_without_a_published_md5_is_fetched_with_its_size_and_digests_recorded(tmp_path: Path, server: str,
                                                                                      tarball):
    """The translation corpora publish no checksum: the fetch checks completeness and records what it got."""
    payload, _ = tarball
    unpublished = Archive(FILENAME, f"{server}/{FILENAME}", md5=None)
    provenance = fetch_archive(unpublished, tmp_path / FILENAME, timeout=5)
    assert provenance["md5_verified"] is False and provenance["bytes"] == len(payload)
    assert provenance["sha256"] == hashlib.sha256(payload).hexdigest()
    assert provenance["md5"] == hashlib.md5(payload).hexdigest()
    assert (tmp_path / FILENAME).read_bytes() == payload


def test_fetch_extract_read_roundtrip(tmp_path: Path, archive: Archive, tarball):
    dest = tmp_path / "downloads" / FILENAME
    provenance = fetch_archive(archive, dest, timeout=5)
    assert provenance["source"] == archive.url
    assert provenance["filename"] == FILENAME
    assert provenance["md5"] == archive.md5 == md5_file(dest) and provenance["md5_verified"]
    assert provenance["bytes"] == dest.stat().st_size
    assert provenance["seconds"] >= 0
    assert sorted(p.name for p in dest.parent.iterdir()) == [FILENAME]  # no temp file left behind

    root = extract_archive(dest, tmp_path / "extracted")
    assert root == tmp_path / "extracted"
    data = read_cifar(root, "cifar10", verify_checksums=False)  # the test pickles are not the official files
    _, expected = tarball
    assert data["train_inputs"].shape == (11, 3, 32, 32) and data["test_inputs"].shape == (4, 3, 32, 32)
    assert data["train_inputs"].dtype == torch.uint8 and data["train_labels"].dtype == torch.int64
    assert data["train_inputs"].is_contiguous()
    for split in ("train", "test"):
        expected_images = torch.from_numpy(expected[f"{split}_inputs"]).reshape(-1, 3, 32, 32)
        assert torch.equal(data[f"{split}_inputs"], expected_images)
        assert data[f"{split}_labels"].tolist() == expected[f"{split}_labels"].tolist()
    # Row layout is R plane, G plane, B plane: pixel (c, y, x) is byte c*1024 + y*32 + x.
    assert data["train_inputs"][0, 2, 5, 7] == expected["train_inputs"][0, 2 * 1024 + 5 * 32 + 7]
    assert data["classes"] == CLASSES
    assert set(data["files"]) == {f"cifar-10-batches-py/{name}" for name in [*BATCH_SIZES, "batches.meta"]}


def test_corrupted_download_raises_checksum_error_and_leaves_nothing(tmp_path: Path, server: str, archive: Archive,
                                                                   served: Path):
    dest = tmp_path / "downloads" / FILENAME
    with pytest.raises(ChecksumError) as caught:
        fetch_archive(archive, dest, mirror=f"{server}/corrupt", timeout=5)
    message = str(caught.value)
    assert archive.md5 in message
    assert md5_file(served / "corrupt" / FILENAME) in message
    assert f"{server}/corrupt/{FILENAME}" in message
    assert list(dest.parent.iterdir()) == []


def test_http_404_names_the_url(tmp_path: Path, server: str, archive: Archive):
    missing = Archive("missing.tar.gz", f"{server}/missing.tar.gz", archive.md5)
    dest = tmp_path / "missing.tar.gz"
    with pytest.raises(DownloadError, match="404") as caught:
        fetch_archive(missing, dest, timeout=5)
    assert missing.url in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused(tmp_path: Path, archive: Archive):
    url = f"http://127.0.0.1:{_closed_port()}/{FILENAME}"
    with pytest.raises(DownloadError, match="cannot reach") as caught:
        fetch_archive(Archive(FILENAME, url, archive.md5), tmp_path / FILENAME, timeout=5)
    assert url in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_truncated_body_is_detected(tmp_path: Path, server: str, archive: Archive):
    with pytest.raises(DownloadError, match="truncated"):
        fetch_archive(archive, tmp_path / FILENAME, mirror=f"{server}/short", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_stalled_server_times_out(tmp_path: Path, server: str, archive: Archive):
    with pytest.raises(DownloadError, match="timed out"):
        fetch_archive(archive, tmp_path / FILENAME, mirror=f"{server}/stall", timeout=0.2)
    assert list(tmp_path.iterdir()) == []


def test_mirror_local_directory(tmp_path: Path, archive: Archive, served: Path):
    dest = tmp_path / FILENAME
    provenance = fetch_archive(archive, dest, mirror=str(served))
    assert provenance["source"] == str(served / FILENAME)
    assert md5_file(dest) == archive.md5


@pytest.mark.parametrize("form", ["http", "http-trailing-slash", "file"])
def test_mirror_url_base(tmp_path: Path, server: str, archive: Archive, served: Path, form: str):
    mirror = {"http": server, "http-trailing-slash": server + "/", "file": served.as_uri()}[form]
    # The official URL points nowhere, so success proves the mirror was used.
    official_elsewhere = Archive(FILENAME, f"http://127.0.0.1:{_closed_port()}/{FILENAME}", archive.md5)
    provenance = fetch_archive(official_elsewhere, tmp_path / FILENAME, mirror=mirror, timeout=5)
    assert provenance["source"] == mirror.rstrip("/") + "/" + FILENAME
    assert md5_file(tmp_path / FILENAME) == archive.md5


def test_mirror_missing_local_path_explains_accepted_forms(tmp_path: Path, archive: Archive):
    with pytest.raises(DownloadError, match="URL base") as caught:
        fetch_archive(archive, tmp_path / "out" / FILENAME, mirror=str(tmp_path / "no-such-dir"))
    assert "local directory" in str(caught.value) and "no-such-dir" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_mirror_directory_without_the_archive(tmp_path: Path, archive: Archive):
    (tmp_path / "empty-mirror").mkdir()
    with pytest.raises(DownloadError, match="does not exist") as caught:
        fetch_archive(archive, tmp_path / "out" / FILENAME, mirror=str(tmp_path / "empty-mirror"))
    assert str(tmp_path / "empty-mirror" / FILENAME) in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_truncated_archive_fails_extraction_and_leaves_no_dest(tmp_path: Path, tarball):
    payload, _ = tarball
    broken = tmp_path / FILENAME
    broken.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(DownloadError, match=FILENAME):
        extract_archive(broken, tmp_path / "extracted")
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILENAME]  # no dest_dir, no staging directory


def test_extraction_replaces_existing_dest_only_on_success(tmp_path: Path, tarball):
    payload, _ = tarball
    dest_dir = tmp_path / "extracted"
    dest_dir.mkdir()
    (dest_dir / "old-marker").write_text("old")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tar archive")
    with pytest.raises(DownloadError, match="broken.tar.gz"):
        extract_archive(broken, dest_dir)
    assert (dest_dir / "old-marker").read_text() == "old"

    good = tmp_path / FILENAME
    good.write_bytes(payload)
    extract_archive(good, dest_dir)
    assert sorted(p.name for p in dest_dir.iterdir()) == ["cifar-10-batches-py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["broken.tar.gz", FILENAME, "extracted"])


@pytest.mark.parametrize("member", ["../escape.txt", "/tmp/absolute.txt", "cifar-10-batches-py/../../escape.txt"])
def test_unsafe_members_are_refused(tmp_path: Path, member: str):
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(_tar_gz({"cifar-10-batches-py/ok.txt": b"ok", member: b"boom"}))
    with pytest.raises(DownloadError, match="refusing"):
        extract_archive(evil, tmp_path / "work" / "extracted")
    assert list((tmp_path / "work").iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_link_out_of_the_tree_is_refused(tmp_path: Path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
        tar.addfile(link)
    evil = tmp_path / "link.tar.gz"
    evil.write_bytes(buffer.getvalue())
    with pytest.raises(DownloadError, match="link.tar.gz"):
        extract_archive(evil, tmp_path / "work" / "extracted")
    assert list((tmp_path / "work").iterdir()) == []


def test_missing_archive_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nothing.tar.gz"):
        extract_archive(tmp_path / "nothing.tar.gz", tmp_path / "extracted")
    assert list(tmp_path.iterdir()) == []
