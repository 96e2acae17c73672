"""Translation sources: corpus and test-set downloads (download.py against a 127.0.0.1 server), newstest2013
read from the official tarball, .sgm and plain files, and prepare_corpus.py end to end."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import compresslib.data.corpus as corpus_module  # build_corpus looks up its readers here
import compresslib.data.corpus_sources as sources  # test_set_* stay behind the module name: pytest collects test_*
from compresslib.data.corpus import load_corpus, tokenizers
from compresslib.data.corpus_sources import corpus_downloads, downloads, read_test_set, source_archive
from compresslib.data.download import Archive, ChecksumError, DownloadError
from compresslib.data.synthetic_translation import make_synthetic_translation
from conftest import REPO, http_server, shared_data

pytestmark = pytest.mark.usefixtures("one_thread")


def _script(name: str):
    """A workflow script loaded as a module from its path, to call its main(argv) in-process."""
    spec = importlib.util.spec_from_file_location(f"workflow_scripts_{name}", REPO / "workflow_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


download, prepare_corpus = _script("download"), _script("prepare_corpus")

SACREBLEU_WMT13_MD5 = "48eca5d02f637af44e85186847141f67"  # sacrebleu's md5 of https://statmt.org/wmt13/test.tgz
DE_EN_MEMBERS = ("test/newstest2013-src.de.sgm", "test/newstest2013-src.en.sgm")
ONMT = "https://raw.githubusercontent.com/OpenNMT/IntegrationTesting/master/data/"
# The shared OpenNMT sample is en->de (src English, tgt German); onmt_integration's roles are de->en.
SAMPLE_FILES = {"train_src": "tgt-train.txt", "train_tgt": "src-train.txt", "test_src": "tgt-test.txt",
                "test_tgt": "src-test.txt"}
OFFICIAL_NAMES = {"train_src": "de-train-clean.200K.txt", "train_tgt": "en-train-clean.200K.txt",
                  "test_src": "de-val-clean.10K.txt", "test_tgt": "en-val-clean.10K.txt"}


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text.removesuffix("\n").split("\n")


@pytest.fixture(scope="module")
def newstest() -> dict[str, Path]:
    folder = shared_data("wmt13-sample")
    return {"tgz": folder / "newstest2013.tgz", "de": folder / "newstest2013.de", "en": folder / "newstest2013.en",
            "src.de.sgm": folder / "newstest2013-src.de.sgm", "ref.en.sgm": folder / "newstest2013-ref.en.sgm"}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, newstest: dict[str, Path]) -> Path:
    """The official file names, holding the shared samples: the first 1500 training and 200 test lines of the
    OpenNMT sample, and the matrix.statmt.org newstest2013 tarball under sacrebleu's name test.tgz."""
    folder, root = shared_data("onmt-integration", "2018"), tmp_path_factory.mktemp("mirror")
    for role, sample in SAMPLE_FILES.items():
        count = 1500 if role.startswith("train") else 200
        (root / OFFICIAL_NAMES[role]).write_text("".join(line + "\n" for line in _lines(folder / sample)[:count]),
                                                 encoding="utf-8")
    shutil.copy(newstest["tgz"], root / "test.tgz")
    return root


@pytest.fixture(scope="module")
def server(mirror: Path) -> Iterator[str]:
    with http_server(mirror) as url:
        yield url


def test_registry_takes_urls_from_the_corpora_and_newstest2013_from_sacrebleu() -> None:
    assert corpus_downloads("onmt_integration") == {role: Archive(name, ONMT + name, None)
                                                    for role, name in OFFICIAL_NAMES.items()}
    assert corpus_downloads("wmt13_europarl") == {"archive": Archive(
        "training-parallel-europarl-v7.tgz", "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz", None)}
    for name, problem in (("synthetic_translation", "is generated, not downloaded"), ("nope", "is not a known corpus")):
        with pytest.raises(ValueError, match=f"{problem}; corpora with files to download: onmt_integration, "
                                             "wmt13_europarl"):
            corpus_downloads(name)
    newstest2013 = Archive("test.tgz", "https://statmt.org/wmt13/test.tgz", SACREBLEU_WMT13_MD5)
    assert sources.test_set_download("newstest2013") == newstest2013
    assert sources.test_set_members("newstest2013", "de", "en") == DE_EN_MEMBERS
    assert sources.test_set_members("newstest2013", "en", "de") == DE_EN_MEMBERS[::-1]
    pairs = sources.test_set_language_pairs("newstest2013")
    assert len(pairs) == 10 and ("de", "en") in pairs and ("en", "de") in pairs
    assert downloads() == {
        "onmt_integration": {name: Archive(name, ONMT + name, None) for name in OFFICIAL_NAMES.values()},
        "wmt13_europarl": {"training-parallel-europarl-v7.tgz": corpus_downloads("wmt13_europarl")["archive"]},
        "newstest2013": {"test.tgz": newstest2013}}
    with pytest.raises(ValueError, match="unknown test set 'newstest2099'; known test sets: newstest2013"):
        sources.test_set_download("newstest2099")
    with pytest.raises(ValueError, match="unknown translation source 'nope'; sources with downloads: "
                                         "onmt_integration, wmt13_europarl, newstest2013"):
        source_archive("nope", "test.tgz")
    with pytest.raises(ValueError, match="newstest2013 has no download named 'newstest2013.tgz'; its files: test.tgz"):
        source_archive("newstest2013", "newstest2013.tgz")


def test_download_script_fetches_a_corpus_file_and_records_it(tmp_path: Path, server: str, mirror: Path) -> None:
    name = "de-train-clean.200K.txt"
    out, record = tmp_path / "resources" / name, tmp_path / "records" / f"{name}.json"
    download.main(["--source", "onmt_integration", "--file", name, "--out", str(out), "--mirror", server + "/",
                   "--record", str(record)])
    payload = (mirror / name).read_bytes()
    assert out.read_bytes() == payload and len(payload) > 100_000
    written = json.loads(record.read_text(encoding="utf-8"))
    assert written["source"] == f"{server}/{name}" and written["filename"] == name
    assert written["bytes"] == len(payload)
    assert written["sha256"] == hashlib.sha256(payload).hexdigest()
    assert written["md5"] == hashlib.md5(payload).hexdigest()
    assert written["md5_verified"] is False


def test_download_script_leaves_nothing_after_a_truncated_transfer(tmp_path: Path, server: str) -> None:
    out, record = tmp_path / "out" / "en-val-clean.10K.txt", tmp_path / "out" / "record.json"
    with pytest.raises(DownloadError, match="transfer truncated"):
        download.main(["--source", "onmt_integration", "--file", out.name, "--out", str(out),
                       "--mirror", f"{server}/short", "--record", str(record)])
    assert list(out.parent.iterdir()) == []


def test_newstest2013_md5_is_checked(tmp_path: Path, server: str, newstest: dict[str, Path]) -> None:
    """The matrix.statmt.org tarball holds the same test set but is not sacrebleu's test.tgz: refused."""
    out, record = tmp_path / "out" / "test.tgz", tmp_path / "out" / "test.tgz.json"
    with pytest.raises(ChecksumError) as caught:
        download.main(["--source", "newstest2013", "--file", "test.tgz", "--out", str(out), "--mirror", server,
                       "--record", str(record)])
    served_md5 = hashlib.md5(newstest["tgz"].read_bytes()).hexdigest()
    assert served_md5 == "6b4de94948949c6fbe7e004092af3d4a"
    assert served_md5 in str(caught.value) and SACREBLEU_WMT13_MD5 in str(caught.value)
    assert list(out.parent.iterdir()) == []


def test_download_script_refuses_unknown_sources_and_files(tmp_path: Path) -> None:
    out = tmp_path / "out" / "file"
    with pytest.raises(ValueError, match="unknown translation source 'newstest2014'"):
        download.main(["--source", "newstest2014", "--file", "test.tgz", "--out", str(out)])
    with pytest.raises(ValueError, match="onmt_integration has no download named 'de-train.txt'; its files: "
                                         "de-train-clean.200K.txt, en-train-clean.200K.txt"):
        download.main(["--source", "onmt_integration", "--file", "de-train.txt", "--out", str(out)])
    with pytest.raises(SystemExit):  # --source without --file
        download.main(["--source", "onmt_integration", "--out", str(out)])
    with pytest.raises(SystemExit):  # a dataset and a translation source at once
        download.main(["--dataset", "cifar10", "--source", "newstest2013", "--file", "test.tgz", "--out", str(out)])
    assert not out.parent.exists()


def test_read_newstest2013_from_the_tarball_sgm_and_plain_files(newstest: dict[str, Path]) -> None:
    german, english = _lines(newstest["de"]), _lines(newstest["en"])
    expected = list(zip(german, english))
    assert len(expected) == 3000
    assert read_test_set("newstest2013", "de", "en", archive=newstest["tgz"]) == expected
    assert read_test_set("newstest2013", "de", "en", src=newstest["src.de.sgm"], ref=newstest["ref.en.sgm"]) == expected
    assert read_test_set("newstest2013", "de", "en", src=newstest["de"], ref=newstest["en"]) == expected
    assert read_test_set("newstest2013", "en", "de", archive=newstest["tgz"]) == list(zip(english, german))


def test_read_test_set_errors(tmp_path: Path, newstest: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="newstest2013 has no de-fr language pair; it has cs-en, en-cs, de-en"):
        read_test_set("newstest2013", "de", "fr", archive=newstest["tgz"])
    short = tmp_path / "short.en"
    short.write_text("".join(line + "\n" for line in _lines(newstest["en"])[:2999]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"newstest2013-src.de.sgm has 3000 segments but .*short.en has 2999"):
        read_test_set("newstest2013", "de", "en", src=newstest["src.de.sgm"], ref=short)
    (tmp_path / "empty.de").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.de holds no segments"):
        read_test_set("newstest2013", "de", "en", src=tmp_path / "empty.de", ref=tmp_path / "empty.de")
    other = tmp_path / "other.tgz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo(DE_EN_MEMBERS[0])
        content = b'<seg id="1">eins</seg>\n'
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    with pytest.raises(ValueError, match=f"other.tgz has no member {DE_EN_MEMBERS[1]}: not the newstest2013"):
        read_test_set("newstest2013", "de", "en", archive=other)
    with pytest.raises(ValueError, match="either archive or both src and ref"):
        read_test_set("newstest2013", "de", "en", src=newstest["de"])


def test_prepare_synthetic_corpus(tmp_path: Path) -> None:
    options = {"train_size": 300, "test_size": 40, "seed": 1, "vocabulary": 50}
    out = tmp_path / "resources" / "synthetic_translation" / "corpus.pt"
    prepare_corpus.main(["--corpus", "synthetic_translation", "--out", str(out), "--vocab-size", "120",
                         "--max-length", "8", "--synthetic", json.dumps(options)])
    corpus, expected = load_corpus(out), make_synthetic_translation(**options)
    assert list(corpus["splits"]) == ["train", "test"]
    test = corpus["splits"]["test"]
    assert list(zip(test["src_text"], test["tgt_text"])) == expected["test"]
    stats = corpus["stats"]
    assert stats["test"]["pairs"] == 40 and stats["train"]["pairs"] + stats["train"]["dropped_long"] == 300
    assert stats["train"]["dropped_long"] > 0  # max_length 8 reached the length filter
    src_tok, tgt_tok = tokenizers(corpus)
    assert corpus["vocab_sizes"] == {"src": src_tok.vocab_size, "tgt": tgt_tok.vocab_size}
    assert 50 < src_tok.vocab_size <= 120 and 50 < tgt_tok.vocab_size <= 120  # 50 words per side fit
    assert (corpus["vocab_size"], corpus["max_length"], corpus["lowercase"]) == (120, 8, True)
    assert corpus["provenance"] == {
        "corpus": "synthetic_translation", "source": "synthetic", "options": options, "test_sets": {},
        "settings": {"vocab_size": 120, "max_length": 8, "lowercase": True, "model_type": "unigram"}}
    assert sorted(p.name for p in out.parent.iterdir()) == ["corpus.pt", "corpus.pt.sha256"]  # no temporary file

    cased = tmp_path / "cased.pt"
    prepare_corpus.main(["--corpus", "synthetic_translation", "--out", str(cased), "--vocab-size", "120",
                         "--cased", "--synthetic", json.dumps(options)])
    assert load_corpus(cased)["lowercase"] is False
    assert load_corpus(cased)["provenance"]["settings"] == {"vocab_size": 120, "max_length": 50, "lowercase": False,
                                                            "model_type": "unigram"}


def test_prepare_files_corpus_with_newstest2013(tmp_path: Path, mirror: Path, newstest: dict[str, Path]) -> None:
    """download.py (local-directory mirror) -> files + records -> prepare_corpus.py with newstest2013 added."""
    downloaded, records = {}, []
    for role, name in OFFICIAL_NAMES.items():
        downloaded[role] = tmp_path / "onmt_integration" / "downloads" / name
        records.append(tmp_path / "records" / f"{name}.json")
        download.main(["--source", "onmt_integration", "--file", name, "--out", str(downloaded[role]),
                       "--mirror", str(mirror), "--record", str(records[-1])])
    out = tmp_path / "onmt_integration" / "corpus.pt"
    prepare_corpus.main(["--corpus", "onmt_integration", "--out", str(out), "--vocab-size", "400",
                         "--files", json.dumps({role: str(path) for role, path in downloaded.items()}),
                         "--test-sets", json.dumps({"newstest2013": {"archive": str(newstest["tgz"])}}),
                         "--download-records", *map(str, records)])
    corpus = load_corpus(out)
    assert list(corpus["splits"]) == ["train", "test", "newstest2013"]
    stats = corpus["stats"]
    assert stats["train"]["pairs"] + stats["train"]["dropped_long"] + stats["train"]["dropped_empty"] == 1500
    assert stats["test"]["pairs"] == 200
    assert stats["newstest2013"] == {**stats["newstest2013"], "pairs": 3000, "dropped_long": 0, "dropped_empty": 0}
    news = corpus["splits"]["newstest2013"]
    assert news["src_text"] == _lines(newstest["de"]) and news["tgt_text"] == _lines(newstest["en"])  # raw, cased
    assert news["tgt_text"][0][0].isupper()
    assert corpus["splits"]["test"]["src_text"] == _lines(downloaded["test_src"])

    provenance = corpus["provenance"]
    assert (provenance["corpus"], provenance["source"]) == ("onmt_integration", "files")
    for (role, path), record in zip(downloaded.items(), records):
        payload = path.read_bytes()
        assert provenance["files"][role] == {"path": str(path), "bytes": len(payload),
                                             "sha256": hashlib.sha256(payload).hexdigest(),
                                             "download": json.loads(record.read_text(encoding="utf-8"))}
        assert provenance["files"][role]["download"]["source"] == str(mirror / path.name)
    tarball = newstest["tgz"].read_bytes()
    assert provenance["test_sets"] == {"newstest2013": {
        "sacrebleu": "wmt13", "language_pair": "de-en", "members": dict(zip(("src", "ref"), DE_EN_MEMBERS)),
        "files": {"archive": {"path": str(newstest["tgz"]), "bytes": 2_807_826,
                              "sha256": hashlib.sha256(tarball).hexdigest()}}}}
    assert provenance["settings"] == {"vocab_size": 400, "max_length": 50, "lowercase": True, "model_type": "unigram"}


@pytest.fixture
def small_files(tmp_path: Path) -> dict[str, str]:
    files = {}
    for role in OFFICIAL_NAMES:
        files[role] = str(tmp_path / role)
        Path(files[role]).write_text("eins zwei\ndrei\n", encoding="utf-8")
    return files


def _forbidden(*args: object, **kwargs: object) -> None:
    raise AssertionError("text was read before every input had been checked")


@pytest.mark.parametrize(("case", "error", "message"), [
    ("missing file", FileNotFoundError, r"onmt_integration files: no such file\(s\): test_tgt: .*missing.txt"),
    ("unknown role", ValueError, "must give exactly train_src, train_tgt, test_src, test_tgt, got .*valid_src"),
    ("unknown test set", ValueError, "unknown test set 'newstest2099'; known test sets: newstest2013"),
    ("test set file shape", ValueError, r"test set newstest2013: give \{'archive': path\} or"),
    ("test set on synthetic", ValueError, "cannot be added to synthetic_translation: a generated corpus has no real"),
    ("synthetic for a files corpus", ValueError, "synthetic options are only for generated corpora; onmt_integration"),
    ("unknown synthetic option", ValueError, "synthetic options: unknown size, missing none"),
    ("foreign download record", ValueError, "record.json .*match none of the input files"),
    ("vocab size", ValueError, "vocab_size must exceed the 4 special pieces"),
])
def test_prepare_corpus_refuses_bad_input_before_reading(tmp_path: Path, small_files: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch, case: str, error: type,
                                                         message: str) -> None:
    monkeypatch.setattr(corpus_module, "read_test_set", _forbidden)
    monkeypatch.setattr(corpus_module, "read_corpus_pairs", _forbidden)
    monkeypatch.setattr(corpus_module, "prepare_corpus", _forbidden)
    synthetic = json.dumps({"train_size": 10, "test_size": 2, "seed": 0})
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"source": "x", "filename": "f", "md5": "0", "sha256": "0" * 64, "bytes": 3}))
    argv = {
        "missing file": ["--files", json.dumps({**small_files, "test_tgt": str(tmp_path / "missing.txt")})],
        "unknown role": ["--files", json.dumps({**small_files, "valid_src": small_files["test_src"]})],
        "unknown test set": ["--files", json.dumps(small_files),
                             "--test-sets", json.dumps({"newstest2099": {"archive": small_files["test_src"]}})],
        "test set file shape": ["--files", json.dumps(small_files),
                                "--test-sets", json.dumps({"newstest2013": {"src": small_files["test_src"]}})],
        "test set on synthetic": ["--synthetic", synthetic,
                                  "--test-sets", json.dumps({"newstest2013": {"archive": small_files["test_src"]}})],
        "synthetic for a files corpus": ["--synthetic", synthetic],
        "unknown synthetic option": ["--synthetic", json.dumps({"train_size": 10, "test_size": 2, "seed": 0,
                                                                "size": 3})],
        "foreign download record": ["--files", json.dumps(small_files), "--download-records", str(record)],
        "vocab size": ["--files", json.dumps(small_files), "--vocab-size", "4"],
    }[case]
    corpus = "synthetic_translation" if case in ("test set on synthetic", "unknown synthetic option") \
        else "onmt_integration"
    out = tmp_path / "out" / "corpus.pt"
    with pytest.raises(error, match=message):
        prepare_corpus.main(["--corpus", corpus, "--out", str(out), "--vocab-size", "50", *argv])
    assert not out.parent.exists()
