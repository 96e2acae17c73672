"""Translation corpus layer: raw readers, SentencePiece tokenisers, the prepared corpus file, the synthetic task."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch

from compresslib.catalog import CORPORA
from compresslib.data.corpus import Tokenizer, load_corpus, prepare_corpus, split_sentences, tokenizers, \
    train_sentencepiece
from compresslib.data.corpus_sources import read_corpus_pairs, read_europarl_archive, read_parallel_text, read_sgm, \
    split_europarl
from compresslib.data.synthetic_translation import make_synthetic_translation
from compresslib.io import load_torch, save_torch
from conftest import shared_data

pytestmark = pytest.mark.usefixtures("one_thread")


def _lines(path: Path, count: int | None = None, start: int = 0) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines[start:None if count is None else start + count]


@pytest.fixture(scope="module")
def integration_sample() -> dict[str, list[str]]:
    """The OpenNMT-py integration sample: src = English, tgt = German (Moses-tokenised), 10 000 lines each."""
    folder = shared_data("onmt-integration", "2018")
    return {"en": _lines(folder / "src-train.txt"), "de": _lines(folder / "tgt-train.txt")}


def test_registry() -> None:
    assert CORPORA["onmt_integration"].files["train_src"].endswith("/de-train-clean.200K.txt")
    assert CORPORA["onmt_integration"].files["test_tgt"].endswith("/en-val-clean.10K.txt")
    europarl = "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz"
    assert CORPORA["wmt13_europarl"].files == {"archive": europarl}
    assert all((info.src_lang, info.tgt_lang) == ("de", "en") for name, info in CORPORA.items() if info.files)


def test_sentencepiece_round_trip_and_determinism(integration_sample: dict[str, list[str]]) -> None:
    train, held_out = integration_sample["en"][:2000], integration_sample["en"][5000:5500]
    proto = train_sentencepiece(train, 1000)
    assert train_sentencepiece(train, 1000) == proto  # byte-identical: no seed, no sampling, one thread
    tokenizer = Tokenizer(proto)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert tokenizer.vocab_size == 1000
    ids = tokenizer.encode(held_out)
    assert all(isinstance(i, int) for i in ids[0])
    decoded = tokenizer.decode(ids)
    # What SentencePiece's nmt_nfkc normalisation makes of the text (NFKC, whitespace collapsed, zero-width
    # characters removed); lines that still differ hold characters never seen in training (decoded as unk).
    normalised = [text.replace("\u2581", " ").strip() for text in tokenizer._processor.normalize(held_out)]
    exact = sum(d == n for d, n in zip(decoded, normalised)) / len(held_out)
    assert exact >= 0.99, exact
    assert sum(d == h for d, h in zip(decoded, held_out)) / len(held_out) >= 0.95  # most lines are exact even raw
    with_markers = tokenizer.encode(held_out[:2], add_bos=True, add_eos=True)
    assert with_markers[0][0] == 2 and with_markers[0][-1] == 3 and with_markers[0][1:-1] == ids[0]
    assert tokenizer.decode([torch.tensor(with_markers[0])]) == decoded[:1]  # bos/eos decode to nothing


def test_sentencepiece_small_corpus_and_errors() -> None:
    proto = train_sentencepiece(["a b c", "abc cab"], 1000)  # hard_vocab_limit=False: a smaller vocabulary
    assert 4 < Tokenizer(proto).vocab_size < 1000
    with pytest.raises(ValueError, match="empty corpus"):
        train_sentencepiece([], 100)
    with pytest.raises(ValueError, match="empty corpus"):
        train_sentencepiece(["", "  "], 100)
    with pytest.raises(ValueError, match="vocab_size"):
        train_sentencepiece(["a b"], 4)
    with pytest.raises(TypeError):
        Tokenizer(proto).encode("one string")


def _check_layout(corpus: dict, split: str, pairs: list[tuple[str, str]], lowercase: bool) -> None:
    """Ids and offsets agree with re-encoding the stored raw text, sentence by sentence."""
    src_tok, tgt_tok = tokenizers(corpus)
    entry = corpus["splits"][split]
    assert [(s, t) for s, t in zip(entry["src_text"], entry["tgt_text"])] == pairs
    for side, tok, index in (("src", src_tok, 0), ("tgt", tgt_tok, 1)):
        ids, offsets = entry[f"{side}_ids"], entry[f"{side}_offsets"]
        assert ids.dtype == torch.int32 and offsets.dtype == torch.int64
        assert len(offsets) == len(pairs) + 1 and offsets[0] == 0 and offsets[-1] == ids.numel()
        sentences = split_sentences(corpus, split, side)
        assert len(sentences) == len(pairs) and all(s.dtype == torch.int64 for s in sentences)
        if sentences and sentences[0].numel():
            assert sentences[0].untyped_storage().data_ptr() == sentences[-1].untyped_storage().data_ptr()  # views
        texts = [pair[index].lower() if lowercase else pair[index] for pair in pairs]
        assert [s.tolist() for s in sentences] == tok.encode(texts)
        assert corpus["stats"][split][f"{side}_tokens"] == ids.numel()


def test_prepare_synthetic_corpus(tmp_path: Path) -> None:
    pairs = make_synthetic_translation(300, 40, seed=1, vocabulary=50)
    path = tmp_path / "corpus.pt"
    corpus = prepare_corpus("synthetic_translation", pairs, path, vocab_size=120, max_length=8,
                            provenance={"source": "synthetic"})
    loaded = load_corpus(path)
    assert loaded["stats"] == corpus["stats"] and loaded["spm"] == corpus["spm"]
    assert (loaded["src_lang"], loaded["tgt_lang"], loaded["format"]) == ("x-src", "x-tgt", 1)
    stats = loaded["stats"]
    assert stats["test"] == {**stats["test"], "pairs": 40, "dropped_long": 0, "dropped_empty": 0}
    assert stats["train"]["pairs"] + stats["train"]["dropped_long"] == 300 and stats["train"]["dropped_long"] > 0
    src_tok, tgt_tok = tokenizers(loaded)
    kept = [p for p in pairs["train"] if max(len(src_tok.encode([p[0]])[0]), len(tgt_tok.encode([p[1]])[0])) <= 8]
    _check_layout(loaded, "train", kept, lowercase=True)
    _check_layout(loaded, "test", pairs["test"], lowercase=True)
    assert loaded["vocab_sizes"] == {"src": src_tok.vocab_size, "tgt": tgt_tok.vocab_size}


def test_prepare_real_sample(tmp_path: Path, integration_sample: dict[str, list[str]]) -> None:
    # The sample is en->de; pair it as the registry's corpora are, German source and English target.
    pairs = list(zip(integration_sample["de"], integration_sample["en"]))
    splits = {"train": pairs[:1500], "test": pairs[9000:9200]}
    path = tmp_path / "real.pt"
    prepare_corpus("onmt_integration", splits, path, vocab_size=800, max_length=30, lowercase=True,
                   provenance={"source": "test", "files": {}})
    corpus = load_corpus(path, mmap=True)
    src_tok, tgt_tok = tokenizers(corpus)
    lengths = [(len(s), len(t)) for s, t in zip(src_tok.encode([p[0].lower() for p in splits["train"]]),
                                                tgt_tok.encode([p[1].lower() for p in splits["train"]]))]
    long_ = [max(ls, lt) > 30 for ls, lt in lengths]
    empty = [min(ls, lt) == 0 and not too_long for (ls, lt), too_long in zip(lengths, long_)]
    stats = corpus["stats"]
    assert stats["train"]["dropped_long"] == sum(long_) > 100
    assert stats["train"]["dropped_empty"] == sum(empty)
    kept = [p for p, too_long, none in zip(splits["train"], long_, empty) if not (too_long or none)]
    _check_layout(corpus, "train", kept, lowercase=True)
    # The test split is kept whole, long sentences included, with its raw (cased) text for BLEU.
    _check_layout(corpus, "test", splits["test"], lowercase=True)
    assert max(corpus["splits"]["test"]["src_offsets"].diff()) > 30
    assert any(any(c.isupper() for c in text) for text in corpus["splits"]["test"]["tgt_text"])
    # Lower-casing reached the ids: no piece the target model emits has an upper-case letter.
    pieces = {tgt_tok._processor.id_to_piece(i) for i in corpus["splits"]["train"]["tgt_ids"].unique().tolist()}
    assert not any(any(c.isupper() for c in piece) for piece in pieces)


def test_prepare_cased_keeps_case(tmp_path: Path) -> None:
    pairs = {"train": [("Guten Tag", "Good day"), ("guten Abend", "good evening")] * 5, "test": [("Tag", "Good")]}
    corpus = prepare_corpus("onmt_integration", pairs, tmp_path / "c.pt", vocab_size=40, lowercase=False,
                            provenance={})
    _check_layout(corpus, "test", pairs["test"], lowercase=False)
    assert tokenizers(corpus)[1].decode(split_sentences(corpus, "test", "tgt")) == ["Good"]


def test_prepare_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'train' split"):
        prepare_corpus("onmt_integration", {"test": [("a", "b")]}, tmp_path / "x.pt", vocab_size=20, provenance={})
    with pytest.raises(ValueError, match="unknown corpus"):
        prepare_corpus("nope", {"train": [("a", "b")]}, tmp_path / "x.pt", vocab_size=20, provenance={})
    with pytest.raises(ValueError, match="hold no pairs"):
        prepare_corpus("onmt_integration", {"train": [("a", "b")], "test": []}, tmp_path / "x.pt", vocab_size=20,
                       provenance={})
    assert not (tmp_path / "x.pt").exists()


@pytest.fixture(scope="module")
def small_corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.pt"
    prepare_corpus("synthetic_translation", make_synthetic_translation(100, 10, seed=2, vocabulary=30), path,
                   vocab_size=60, provenance={"source": "synthetic"})
    return path


@pytest.mark.parametrize(("corrupt", "message"), [
    (lambda c: c["splits"]["train"].update(src_offsets=c["splits"]["train"]["src_offsets"][:-1]), "src_offsets"),
    (lambda c: c["splits"]["test"]["tgt_ids"].__setitem__(0, c["vocab_sizes"]["tgt"]), "outside the tgt vocabulary"),
    (lambda c: c["splits"]["test"]["src_ids"].__setitem__(0, -1), "outside the src vocabulary"),
    (lambda c: c["splits"]["test"]["src_text"].pop(), "src_text holds"),
    (lambda c: c["splits"]["train"].update(tgt_ids=c["splits"]["train"]["tgt_ids"].long()), "int32"),
    (lambda c: c["spm"].update(src=b"garbage"), "does not load"),
    (lambda c: c.pop("stats"), "lacks stats"),
])
def test_load_corpus_refuses_corrupt_files(tmp_path: Path, small_corpus_file: Path, corrupt, message: str) -> None:
    corpus = load_torch(small_corpus_file)
    corrupt(corpus)
    bad = tmp_path / "bad.pt"
    save_torch(bad, corpus)
    with pytest.raises(ValueError, match=message) as caught:
        load_corpus(bad)
    assert str(bad) in str(caught.value)


def test_load_corpus_refuses_non_monotone_offsets_and_foreign_files(tmp_path: Path, small_corpus_file: Path) -> None:
    corpus = load_torch(small_corpus_file)
    offsets = corpus["splits"]["test"]["src_offsets"]
    first, second = int(offsets[1]), int(offsets[2])
    offsets[1], offsets[2] = second + 1, first  # the first and last offsets are still right
    save_torch(tmp_path / "bad.pt", corpus)
    with pytest.raises(ValueError, match="not monotone"):
        load_corpus(tmp_path / "bad.pt")
    save_torch(tmp_path / "other.pt", {"format": 2})
    with pytest.raises(ValueError, match="other.pt is not a prepared translation corpus of format 1"):
        load_corpus(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_corpus(tmp_path / "missing.pt")


def test_read_parallel_text(tmp_path: Path) -> None:
    (tmp_path / "a.de").write_text("eins\nzwei\u2028mit Trenner\ndrei\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("one\r\ntwo\nthree", encoding="utf-8")
    assert read_parallel_text(tmp_path / "a.de", tmp_path / "a.en") == [
        ("eins", "one"), ("zwei\u2028mit Trenner", "two"), ("drei", "three")]
    (tmp_path / "b.en").write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"a.de has 3 lines, .*b.en has 2"):
        read_parallel_text(tmp_path / "a.de", tmp_path / "b.en")
    (tmp_path / "c.en").write_bytes(b"one\ntw\xff\nthree\n")
    with pytest.raises(ValueError, match="c.en: line 2 is not valid UTF-8"):
        read_parallel_text(tmp_path / "a.de", tmp_path / "c.en")


def _tar(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_read_europarl_archive_and_split(tmp_path: Path) -> None:
    german = [f"Satz {i}" for i in range(21)]
    german[7] = "   "  # a blank German line: its pair is dropped
    english = [f"sentence {i}" for i in range(21)]
    archive = _tar(tmp_path / "europarl.tgz", {
        "training/europarl-v7.cs-en.cs": "nope\n", "training/europarl-v7.de-en.de": "\n".join(german) + "\n",
        "training/europarl-v7.de-en.en": "\n".join(english) + "\n", "training/europarl-v7.fr-en.en": "no\n"})
    pairs = read_europarl_archive(archive)
    assert len(pairs) == 20 and ("Satz 8", "sentence 8") in pairs and all(de.strip() for de, _ in pairs)
    splits = split_europarl(pairs)
    assert splits == {"train": pairs[:18], "test": pairs[18:]}
    assert read_corpus_pairs("wmt13_europarl", {"archive": archive}) == splits
    assert [len(v) for v in split_europarl(list(range(1917))).values()] == [1725, 192]

    broken = _tar(tmp_path / "short.tgz", {"training/europarl-v7.de-en.de": "a\nb\n",
                                           "training/europarl-v7.de-en.en": "a\n"})
    with pytest.raises(ValueError, match="has 2 lines but europarl-v7.de-en.en has 1"):
        read_europarl_archive(broken)
    with pytest.raises(ValueError, match="no member ending 'europarl-v7.de-en.en'"):
        read_europarl_archive(_tar(tmp_path / "half.tgz", {"europarl-v7.de-en.de": "a\n"}))
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(archive.read_bytes()[:60])
    with pytest.raises(ValueError, match="truncated.tgz"):
        read_europarl_archive(truncated)


def test_read_corpus_pairs_integration_files(tmp_path: Path) -> None:
    paths = {}
    for role, text in {"train_src": "a\nb\n", "train_tgt": "A\nB\n", "test_src": "c\n", "test_tgt": "C\n"}.items():
        paths[role] = tmp_path / role
        paths[role].write_text(text, encoding="utf-8")
    assert read_corpus_pairs("onmt_integration", paths) == {"train": [("a", "A"), ("b", "B")], "test": [("c", "C")]}
    with pytest.raises(ValueError, match="needs files for test_tgt"):
        read_corpus_pairs("onmt_integration", {role: p for role, p in paths.items() if role != "test_tgt"})


def test_read_sgm_matches_newstest2013_plain_text() -> None:
    folder = shared_data("wmt13-sample")
    for sgm, plain in (("newstest2013-src.de.sgm", "newstest2013.de"), ("newstest2013-ref.en.sgm", "newstest2013.en")):
        segments = read_sgm(folder / sgm)
        assert len(segments) == 3000
        assert segments == _lines(folder / plain)


def test_read_sgm_unescapes_and_refuses_malformed(tmp_path: Path) -> None:
    (tmp_path / "a.sgm").write_text('<doc>\n<seg id="1"> Tom &amp; Jerry &lt;3 &quot;x&quot; &apos;y&apos; '
                                    "&#228;&#xE4; &gt; R&D &amp;lt; </seg>\n<seg id=\"2\">zwei  Leer</seg>\n</doc>\n",
                                    encoding="utf-8")
    assert read_sgm(tmp_path / "a.sgm") == ["Tom & Jerry <3 \"x\" 'y' ää > R&D &lt;", "zwei Leer"]
    (tmp_path / "b.sgm").write_text('<seg id="1">eins</seg>\n<seg id="2">zwei\n', encoding="utf-8")
    with pytest.raises(ValueError, match="b.sgm: 2 <seg> tags but 1 complete"):
        read_sgm(tmp_path / "b.sgm")
    (tmp_path / "c.sgm").write_text("plain text\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no <seg> elements"):
        read_sgm(tmp_path / "c.sgm")


def test_synthetic_translation_is_deterministic_and_consistent() -> None:
    first = make_synthetic_translation(200, 30, seed=5)
    assert first == make_synthetic_translation(200, 30, seed=5)
    assert first != make_synthetic_translation(200, 30, seed=6)
    assert [len(first["train"]), len(first["test"])] == [200, 30]
    mapping: dict[str, str] = {}
    for src, tgt in first["train"] + first["test"]:
        src_words, tgt_words = src.split(), tgt.split()[::-1]
        assert len(src_words) == len(tgt_words) and 3 <= len(src_words) <= 12
        for s, t in zip(src_words, tgt_words):
            assert mapping.setdefault(s, t) == t  # a source word always maps to the same target word
    assert len(set(mapping.values())) == len(mapping)  # and no two source words share one
    assert not set(mapping) & set(mapping.values())  # disjoint lexicons
    assert len(mapping) > 150  # most of the 200 words occur
    with pytest.raises(ValueError, match="min_length"):
        make_synthetic_translation(1, 1, seed=0, min_length=5, max_length=4)
