"""Character-level text data: LIT's alphabet and encoding, Zhang's CSV rows and release (archive or folder, built
in chunks), prepared text datasets, the synthetic text dataset, and the real Amazon sample."""

from __future__ import annotations

import csv
import hashlib
import inspect
import io
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from compresslib.catalog import DOCUMENT_LENGTH, get_dataset_info
from compresslib.data.datasets import load_dataset, prepare_dataset, save_dataset
from compresslib.data.download import ARCHIVES, Archive, ChecksumError, DownloadError, fetch_archive
from compresslib.data.synthetic_text import MIN_LENGTH, make_synthetic_text
from compresslib.data.text import ALPHABET, PAD, UNKNOWN, VOCAB_SIZE, encode_texts, read_zhang_csv
from compresslib.data.zhang import ZHANG_RELEASES, read_zhang_release
from conftest import REPO, shared_data
from test_download import _closed_port, _tar_gz, server  # noqa: F401 (server is a fixture serving ``served``)

# the sample's README: the five Amazon Review Full ratings, renamed
SAMPLE_LABELS = {"Very Negative": 0, "Negative": 1, "Neutral": 2, "Positive": 3, "Very Positive": 4}


def test_alphabet_has_67_symbols_and_the_original_circumflex():
    assert len(ALPHABET) == 67 and len(set(ALPHABET)) == 67 and VOCAB_SIZE == 69
    assert "\u02c6" in ALPHABET and "^" not in ALPHABET and ALPHABET.endswith(" ")


def test_encoding_by_hand():
    encoded = encode_texts(["Ab c^\u00e9", ""], length=10)
    a, b, c, space = 2, 3, 4, 2 + ALPHABET.index(" ")
    assert encoded.dtype == np.uint8 and encoded.shape == (2, 10)
    assert encoded[0].tolist() == [a, b, space, c, UNKNOWN, UNKNOWN, PAD, PAD, PAD, PAD]
    assert (encoded[1] == PAD).all()
    assert encode_texts(["\u02c6\U0001f600{"], length=3)[0].tolist() == [2 + ALPHABET.index("\u02c6"), UNKNOWN,
                                                                        2 + ALPHABET.index("{")]
    long = encode_texts(["x" * 5000])
    assert long.shape == (1, DOCUMENT_LENGTH) and (long == 2 + ALPHABET.index("x")).all()  # cut at 1014
    assert encode_texts([]).shape == (0, DOCUMENT_LENGTH)


def test_zhang_rows_join_title_and_body_and_shift_the_rating():
    text = '"5","Great, really","Loved it ""a lot"""\n"1","Bad","Broke\non day one"\n'
    assert list(read_zhang_csv(io.StringIO(text), num_classes=5)) == [
        (4, 'Great, really Loved it "a lot"'), (0, "Bad Broke\non day one")]
    with pytest.raises(ValueError, match="row 1: rating '6' is not an integer from 1 to 5"):
        list(read_zhang_csv(io.StringIO('"6","t","b"\n'), num_classes=5))
    with pytest.raises(ValueError, match="row 2: expected 3 columns"):
        list(read_zhang_csv(io.StringIO('"1","t","b"\n"2","only title"\n'), num_classes=5))


def test_real_amazon_review_sample_encodes_into_one_compact_array():
    path = shared_data("amazon-review-full-sample", "test.csv")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([SAMPLE_LABELS[row["target"]] for row in rows])
    encoded = encode_texts(row["input"] for row in rows)
    assert len(rows) == 999 and encoded.shape == (999, DOCUMENT_LENGTH) and encoded.nbytes == 999 * 1014
    assert set(labels.tolist()) == {0, 1, 2, 3, 4}
    lengths = (encoded != PAD).sum(axis=1)
    assert lengths.tolist() == [min(len(row["input"].lower()), DOCUMENT_LENGTH) for row in rows]  # padding after
    assert (encoded == UNKNOWN).sum() / lengths.sum() < 0.01  # English reviews: almost every character known
    first = rows[0]["input"].lower()[:DOCUMENT_LENGTH]
    assert encoded[0, : len(first)].tolist() == [2 + ALPHABET.index(ch) if ch in ALPHABET else UNKNOWN for ch in first]


# ---- Zhang's release: chunked build from the archive or an extracted folder ----------------------------------------

# (rating, title, body): quotes, commas and newlines inside fields, non-ASCII, an unknown "^", one body longer than
# the encoded length
ZHANG_ROWS = {
    "train": [("5", "Great, really", 'Loved it "a lot"'), ("1", "Bad", "Broke\non day one, sadly."),
              ("3", "Caf\u00e9 cr\u00e8me", "na\u00efve \u00fcber \U0001f600 [ok] {fine} ^_^"),
              ("2", "", "no title here"), ("4", "Long", "x" * 100), ("1", "a,b", "c\r\nd"), ("5", "Z", "\u02c6")],
    "test": [("2", "Meh", "it was 'fine', I guess"), ("4", "Good", "\"\"quoted\"\"")],
}
ENCODED_LENGTH = 64
FOLDER = ZHANG_RELEASES["amazon_review_full"].folder


def _zhang_csv(rows: list[tuple[str, str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)  # Zhang quotes every field
    return buffer.getvalue().encode("utf-8")


def _expected(split: str, length: int = ENCODED_LENGTH) -> tuple[np.ndarray, list[int]]:
    rows = ZHANG_ROWS[split]
    return encode_texts([f"{title} {body}" for _, title, body in rows], length), [int(r) - 1 for r, _, _ in rows]


@pytest.fixture(scope="module")
def zhang_csvs() -> dict[str, bytes]:
    return {split: _zhang_csv(rows) for split, rows in ZHANG_ROWS.items()}


@pytest.fixture(scope="module")
def zhang_archive(zhang_csvs) -> bytes:
    # test.csv first: the stream reader must not depend on the member order
    return _tar_gz({f"{FOLDER}/readme.txt": b"Amazon Review Full", f"{FOLDER}/test.csv": zhang_csvs["test"],
                    f"{FOLDER}/train.csv": zhang_csvs["train"]})


def test_archive_is_streamed_in_chunks_into_exactly_the_encoded_rows(tmp_path, zhang_archive, zhang_csvs, caplog):
    archive = tmp_path / "amazon_review_full_csv.tar.gz"
    archive.write_bytes(zhang_archive)
    md5 = hashlib.md5(zhang_archive).hexdigest()
    with caplog.at_level(logging.INFO, logger="compresslib.data.zhang"):
        data = read_zhang_release("amazon_review_full", tmp_path, archive=archive, expected_md5=md5, chunk_rows=3,
                                  length=ENCODED_LENGTH)
    for split in ("train", "test"):
        inputs, labels = _expected(split)
        assert data[f"{split}_inputs"].dtype == torch.uint8 and data[f"{split}_inputs"].shape == inputs.shape
        assert torch.equal(data[f"{split}_inputs"], torch.from_numpy(inputs))
        assert data[f"{split}_labels"].dtype == torch.int64 and data[f"{split}_labels"].tolist() == labels
    assert data["rows"] == {"train": 7, "test": 2} and data["md5"] == md5
    assert data["files"] == {f"{FOLDER}/{split}.csv": hashlib.md5(zhang_csvs[split]).hexdigest()
                             for split in ("train", "test")}
    assert data["classes"] == ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
    progress = [record.getMessage() for record in caplog.records]
    assert progress == [f"{archive}:{FOLDER}/test.csv: 2 rows encoded"] + [
        f"{archive}:{FOLDER}/train.csv: {count} rows encoded" for count in (3, 6, 7)]  # one line per chunk of 3


def test_archive_with_another_md5_or_without_a_split_is_refused(tmp_path, zhang_archive, zhang_csvs):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(zhang_archive)
    with pytest.raises(ChecksumError, match=f"{archive} has md5 {hashlib.md5(zhang_archive).hexdigest()}, expected 0+"):
        read_zhang_release("amazon_review_full", tmp_path, archive=archive, expected_md5="0" * 32)
    archive.write_bytes(_tar_gz({f"{FOLDER}/train.csv": zhang_csvs["train"]}))
    with pytest.raises(ValueError, match=f"lacks {FOLDER}/test.csv"):
        read_zhang_release("amazon_review_full", tmp_path, archive=archive)
    archive.write_bytes(zhang_archive[: len(zhang_archive) // 2])
    with pytest.raises(DownloadError, match="corrupt or truncated"):
        read_zhang_release("amazon_review_full", tmp_path, archive=archive)


def _extracted(root, csvs: dict[str, bytes]):
    (root / FOLDER).mkdir(parents=True)
    for split, payload in csvs.items():
        (root / FOLDER / f"{split}.csv").write_bytes(payload)
    return root


def test_prepared_from_an_extracted_folder_loads_with_provenance(tmp_path, zhang_csvs, caplog):
    root = _extracted(tmp_path / "data", zhang_csvs)
    out = tmp_path / "resources" / "dataset.pt"
    with caplog.at_level(logging.WARNING):
        provenance = prepare_dataset("amazon_review_full", out, extracted=root)
    assert "publishes no per-file md5" in caplog.text
    assert provenance == {"source": "extracted", "path": str(root), "verified": False,
                          "files": {f"{FOLDER}/{split}.csv": hashlib.md5(payload).hexdigest()
                                    for split, payload in zhang_csvs.items()},
                          "rows": {"train": 7, "test": 2}}
    data = load_dataset(out)
    for split in ("train", "test"):
        inputs, labels = _expected(split, DOCUMENT_LENGTH)
        assert torch.equal(data[f"{split}_inputs"], torch.from_numpy(inputs))
        assert data[f"{split}_labels"].tolist() == labels
    assert sorted(path.name for path in out.parent.iterdir()) == ["dataset.pt", "dataset.pt.sha256"]  # no scratch file


def test_bad_row_names_the_file_and_row_and_writes_nothing(tmp_path, zhang_csvs):
    broken = zhang_csvs | {"train": zhang_csvs["train"] + b'"9","title","body"\n'}
    root = _extracted(tmp_path / "data", broken)
    out = tmp_path / "resources" / "dataset.pt"
    with pytest.raises(ValueError, match=f"{root}/{FOLDER}/train.csv: row 8: rating '9' is not an integer from 1 to 5"):
        prepare_dataset("amazon_review_full", out, extracted=root)
    assert list(out.parent.iterdir()) == []
    (root / FOLDER / "train.csv").write_bytes(b'"1","t","b"\n"2","\xff\xfe"\n')
    with pytest.raises(ValueError, match="train.csv: not UTF-8 text after line 0: 'utf-8' codec can't decode"):
        prepare_dataset("amazon_review_full", out, extracted=root)
    (root / FOLDER / "train.csv").write_bytes(b'"1","t","b"\n"2","t","' + b"x" * 200_000 + b'"\n')
    with pytest.raises(ValueError, match=r"train.csv: line 2: field larger than field limit"):
        prepare_dataset("amazon_review_full", out, extracted=root)
    (root / FOLDER / "test.csv").unlink()
    with pytest.raises(FileNotFoundError, match=f"expects {root}/{FOLDER}/{{train,test}}.csv"):
        prepare_dataset("amazon_review_full", out, extracted=root)


def test_amazon_archive_registry_entry():
    archive = ARCHIVES["amazon_review_full"]
    assert archive.filename == "amazon_review_full_csv.tar.gz" and archive.md5 == "57d28bd5d930e772930baddf36641c7c"
    assert "id=0Bz8a_Dbh9QhbZVhsUnRWRDhETzA" in archive.url and archive.url.startswith("https://")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, zhang_archive) -> Path:
    """What test_download's ``server`` fixture serves here: the test archive under its official name."""
    root = tmp_path_factory.mktemp("served")
    (root / ARCHIVES["amazon_review_full"].filename).write_bytes(zhang_archive)
    return root


def test_archive_from_an_http_mirror_is_prepared(tmp_path, server, zhang_archive, monkeypatch):
    # The official URL points nowhere, so success proves the mirror was used; the md5 is the test archive's.
    official = ARCHIVES["amazon_review_full"]
    md5 = hashlib.md5(zhang_archive).hexdigest()
    stand_in = Archive(official.filename, f"http://127.0.0.1:{_closed_port()}/x", md5)
    monkeypatch.setitem(ARCHIVES, "amazon_review_full", stand_in)
    archive = tmp_path / "resources" / "archive.tar.gz"
    fetched = fetch_archive(stand_in, archive, mirror=server, timeout=5)
    assert fetched["source"] == f"{server}/{official.filename}"
    provenance = prepare_dataset("amazon_review_full", tmp_path / "resources" / "dataset.pt", archive=archive)
    assert provenance["source"] == "archive" and provenance["verified"] and provenance["md5"] == stand_in.md5
    data = load_dataset(tmp_path / "resources" / "dataset.pt")
    assert data["name"] == "amazon_review_full" and data["train_inputs"].shape == (7, DOCUMENT_LENGTH)
    assert torch.equal(data["test_inputs"], torch.from_numpy(_expected("test", DOCUMENT_LENGTH)[0]))


# ---- prepared text datasets: validation ----------------------------------------------------------------------------

def _text_arrays(length: int = DOCUMENT_LENGTH, **changes) -> dict:
    generator = torch.Generator().manual_seed(0)
    arrays = {"train_inputs": torch.randint(0, VOCAB_SIZE, (6, length), dtype=torch.uint8, generator=generator),
              "test_inputs": torch.randint(0, VOCAB_SIZE, (3, length), dtype=torch.uint8, generator=generator),
              "train_labels": torch.arange(6) % 5, "test_labels": torch.arange(3),
              "classes": ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]}
    return arrays | changes


@pytest.mark.parametrize(("name", "changes", "message"), [
    ("amazon_review_full", {"train_inputs": torch.zeros(6, DOCUMENT_LENGTH, dtype=torch.int64)},
     r"train_inputs must be uint8 of shape \(N, 1014\), got torch.int64"),
    ("amazon_review_full", {"test_inputs": torch.zeros(3, 256, dtype=torch.uint8)},
     r"test_inputs must be uint8 of shape \(N, 1014\), got torch.uint8 \(3, 256\)"),
    ("amazon_review_full", {"test_inputs": torch.full((3, DOCUMENT_LENGTH), VOCAB_SIZE, dtype=torch.uint8)},
     "test_inputs holds character index 69, but the vocabulary has 69 entries"),
    ("synthetic_text", {"test_inputs": torch.zeros(3, 100, dtype=torch.uint8)},
     r"test_inputs must be uint8 of shape \(N, L\) with the same L in both splits, got torch.uint8 \(3, 100\)"),
    ("synthetic_text", {"train_inputs": torch.zeros(6, 3, 32, 32, dtype=torch.uint8)}, r"shape \(N, L\)"),
    ("amazon_review_full", {"classes": ["good", "bad"]}, "expected 5 class names, got 2"),
])
def test_text_dataset_validation_names_the_problem(tmp_path, name, changes, message):
    length = DOCUMENT_LENGTH if name == "amazon_review_full" else 128
    arrays = _text_arrays(length) | changes
    with pytest.raises(ValueError, match=message):
        save_dataset(tmp_path / "d.pt", name, arrays, {})
    assert not (tmp_path / "d.pt").exists()


def test_text_dataset_round_trip_at_any_synthetic_length(tmp_path):
    save_dataset(tmp_path / "d.pt", "synthetic_text", _text_arrays(128), {"source": "test"})
    data = load_dataset(tmp_path / "d.pt")
    assert torch.equal(data["train_inputs"], _text_arrays(128)["train_inputs"])
    info = get_dataset_info("synthetic_text")
    assert info.kind == "text" and info.mean is None and info.std is None
    assert get_dataset_info("amazon_review_full").input_shape == (DOCUMENT_LENGTH,)


# ---- the synthetic text dataset -------------------------------------------------------------------------------------

def test_synthetic_text_is_deterministic_balanced_and_over_the_alphabet():
    start = time.perf_counter()
    a = make_synthetic_text(3000, 1000, seed=4)
    assert time.perf_counter() - start < 5  # the demo generates it in every fresh run
    b = make_synthetic_text(3000, 1000, seed=4)
    for key in ("train_inputs", "train_labels", "test_inputs", "test_labels"):
        assert torch.equal(a[key], b[key])
    assert a["classes"] == b["classes"] and len(a["classes"]) == 5
    assert not torch.equal(a["train_inputs"], make_synthetic_text(3000, 1000, seed=5)["train_inputs"])
    assert a["train_inputs"].dtype == torch.uint8 and a["train_inputs"].shape == (3000, 256)
    assert make_synthetic_text(10, 10, length=57)["test_inputs"].shape == (10, 57)
    assert int(a["train_inputs"].min()) >= 2 and int(a["train_inputs"].max()) < VOCAB_SIZE  # no padding, no unknown
    assert torch.bincount(a["train_labels"], minlength=5).min() > 3000 / 5 * 0.85


def test_synthetic_text_signal_is_in_the_words_and_ambiguous():
    """Counting each class's signature words (named in ``classes``) classifies well above chance, far below 100 %."""
    data = make_synthetic_text(2000, 10, seed=1, noise=0.0)
    signatures = [name.split("+") for name in data["classes"]]
    correct = ties = 0
    for row, label in zip(data["train_inputs"].tolist(), data["train_labels"].tolist()):
        words = "".join(ALPHABET[index - 2] for index in row).replace(",", " ").replace(".", " ").split()
        counts = [sum(words.count(word) for word in class_words) for class_words in signatures]
        assert counts[label] >= 1  # every document holds a signature word of its class
        best = [c for c, count in enumerate(counts) if count == max(counts)]
        correct += best == [label]
        ties += len(best) > 1
    assert 0.6 < correct / 2000 < 0.75 and 0.1 < ties / 2000 < 0.3  # 6 of 9 (own, distractor) count pairs win


def test_synthetic_text_options_are_checked():
    with pytest.raises(ValueError, match="length must be at least 50"):
        make_synthetic_text(10, 10, length=40)
    with pytest.raises(ValueError, match="noise is a probability"):
        make_synthetic_text(10, 10, noise=1.0)


def test_synthetic_text_schema_defaults_equal_the_generator_defaults():
    schema = yaml.safe_load((REPO / "rules/schemas/config.schema.yaml").read_text())
    options = schema["properties"]["data"]["properties"]["synthetic_text"]["properties"]
    parameters = inspect.signature(make_synthetic_text).parameters
    defaults = {name: parameter.default for name, parameter in parameters.items()}
    assert {name: option["default"] for name, option in options.items()} == defaults
    assert options["length"]["minimum"] == MIN_LENGTH


def test_prepared_synthetic_text(tmp_path):
    options = {"train_size": 40, "test_size": 20, "seed": 2, "length": 64}
    assert prepare_dataset("synthetic_text", tmp_path / "d.pt", synthetic=options) == {"source": "synthetic",
                                                                                         "options": options}
    data = load_dataset(tmp_path / "d.pt")
    assert data["train_inputs"].shape == (40, 64)
    assert torch.equal(data["test_inputs"], make_synthetic_text(**options)["test_inputs"])
