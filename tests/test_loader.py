"""Device-resident loader: torchvision-equivalent augmentation, determinism, splits, encoded documents; the
synthetic dataset."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from compresslib.data.datasets import load_dataset, prepare_dataset, save_dataset
from compresslib.data.loader import DeviceLoader, holdout_split
from compresslib.data.synthetic import make_synthetic
from compresslib.data.text import VOCAB_SIZE

MEAN, STD = [0.5, 0.4, 0.3], [0.5, 0.25, 0.2]


def _images(n: int = 37) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator), torch.arange(n) % 10


def _loader(images, labels, **kwargs) -> DeviceLoader:
    options = dict(batch_size=8, mean=MEAN, std=STD, augment=True, shuffle=True, seed=5) | kwargs
    return DeviceLoader(images, labels, **options)


def test_augmentation_equals_torchvision_pad_crop_flip_normalize():
    images, labels = _images()
    loader = _loader(images, labels)
    plan = loader.epoch_plan(3)
    batch = loader.transform(plan.order[:16], plan)
    for row, index in enumerate(plan.order[:16].tolist()):
        top, left = int(plan.dy[index]), int(plan.dx[index])
        expected = TF.pad(images[index], [4, 4, 4, 4], fill=0)  # RandomCrop(32, padding=4) zero-fills
        expected = expected[:, top:top + 32, left:left + 32]
        if plan.flip[index]:
            expected = TF.horizontal_flip(expected)
        expected = TF.normalize(expected.float() / 255, MEAN, STD)
        torch.testing.assert_close(batch[row], expected, rtol=0, atol=1e-5)


def test_each_epoch_visits_every_example_once_and_is_reproducible():
    images, labels = _images()
    loader = _loader(images, labels)
    loader.set_epoch(2)
    first = list(loader)
    assert sorted(torch.cat([y for _, y in first]).tolist()) == sorted(labels.tolist())
    assert len(first) == len(loader) == 5  # 37 examples in batches of 8, last one partial
    again = list(_replay(images, labels, epoch=2))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    loader.set_epoch(3)
    assert not torch.equal(first[0][0], next(iter(loader))[0])  # a new epoch draws new order and crops


def _replay(images, labels, epoch: int):
    loader = _loader(images, labels)
    loader.set_epoch(epoch)
    return loader


def test_seed_changes_the_plan_and_drop_last():
    images, labels = _images()
    a, b = _loader(images, labels).epoch_plan(0), _loader(images, labels, seed=6).epoch_plan(0)
    assert not torch.equal(a.order, b.order)
    assert len(_loader(images, labels, drop_last=True)) == 4


def test_eval_loader_is_plain_normalisation_in_order():
    images, labels = _images(10)
    loader = _loader(images, labels, augment=False, shuffle=False, batch_size=4)
    inputs = torch.cat([x for x, _ in loader])
    torch.testing.assert_close(inputs, TF.normalize(images.float() / 255, MEAN, STD), rtol=0, atol=1e-5)
    channels_last = _loader(images, labels, augment=False, shuffle=False, channels_last=True)
    assert next(iter(channels_last))[0].is_contiguous(memory_format=torch.channels_last)


def test_loader_rejects_bad_input():
    images, labels = _images(4)
    with pytest.raises(ValueError, match="uint8"):
        _loader(images.float(), labels)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        _loader(images, labels[:3])
    with pytest.raises(ValueError, match="mean and std need 3 values"):
        _loader(images, labels, mean=[0.5])


def _documents(n: int = 37, length: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, VOCAB_SIZE, (n, length), dtype=torch.uint8, generator=generator), torch.arange(n) % 5


def _text_loader(documents, labels, **kwargs) -> DeviceLoader:
    return DeviceLoader(documents, labels, **dict(batch_size=8, augment=False, shuffle=True, seed=5) | kwargs)


def test_documents_come_as_int64_ids_in_the_image_order():
    documents, labels = _documents()
    loader = _text_loader(documents, labels)
    loader.set_epoch(2)
    batches = list(loader)
    assert len(batches) == len(loader) == 5 and len(_text_loader(documents, labels, drop_last=True)) == 4
    inputs = torch.cat([x for x, _ in batches])
    assert inputs.dtype == torch.int64 and inputs.shape == (37, 20)
    # the same order an image loader with the same seed draws, and each row is its document's ids
    order = _loader(*_images(), seed=5).epoch_plan(2).order
    assert torch.equal(inputs, documents[order].long())
    assert torch.equal(torch.cat([y for _, y in batches]), labels[order])
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, _replay_text(documents, labels, epoch=2)))
    loader.set_epoch(3)
    assert not torch.equal(batches[0][0], next(iter(loader))[0])
    in_order = torch.cat([x for x, _ in _text_loader(documents, labels, shuffle=False)])
    assert torch.equal(in_order, documents.long())
    keep, held_out = holdout_split(37, 7, seed=0)
    held = torch.cat([x for x, _ in _text_loader(documents[held_out], labels[held_out], shuffle=False)])
    assert torch.equal(held, documents[held_out].long())


def _replay_text(documents, labels, epoch: int):
    loader = _text_loader(documents, labels)
    loader.set_epoch(epoch)
    return loader


@pytest.mark.parametrize(("options", "message"), [
    ({"augment": True}, "no augmentation for encoded documents: pass augment=False"),
    ({"mean": [0.5], "std": [0.5]}, "encoded documents take no normalisation: pass mean=None and std=None"),
    ({"channels_last": True}, "channels_last applies to images only"),
])
def test_loader_refuses_image_options_for_documents(options, message):
    with pytest.raises(ValueError, match=message):
        _text_loader(*_documents(), **options)


def test_loader_rejects_bad_document_input():
    documents, labels = _documents(4)
    with pytest.raises(ValueError, match=r"uint8 images \(N, C, H, W\) or encoded documents \(N, L\), got torch.int64"):
        _text_loader(documents.long(), labels)
    with pytest.raises(ValueError, match="4 documents but 3 labels"):
        _text_loader(documents, labels[:3])
    with pytest.raises(ValueError, match="mean and std need 3 values"):
        _loader(*_images(4), mean=None, std=None)


def test_holdout_split_is_a_fixed_partition():
    keep, held = holdout_split(100, 20, seed=1)
    assert len(held) == 20 and len(keep) == 80
    assert sorted(torch.cat([keep, held]).tolist()) == list(range(100))
    assert torch.equal(held, holdout_split(100, 20, seed=1)[1])
    assert not torch.equal(held, holdout_split(100, 20, seed=2)[1])
    with pytest.raises(ValueError, match="holdout_size"):
        holdout_split(10, 10, seed=0)


def test_synthetic_dataset_is_deterministic_and_balanced():
    a, b = make_synthetic(600, 200, seed=4), make_synthetic(600, 200, seed=4)
    assert torch.equal(a["train_inputs"], b["train_inputs"]) and torch.equal(a["test_labels"], b["test_labels"])
    assert not torch.equal(a["train_inputs"], make_synthetic(600, 200, seed=5)["train_inputs"])
    assert a["train_inputs"].dtype == torch.uint8 and a["train_inputs"].shape == (600, 3, 32, 32)
    counts = torch.bincount(a["train_labels"], minlength=10)
    assert len(a["classes"]) == 10 and counts.min() > 30  # every class present in roughly equal numbers
    assert 60 < a["train_inputs"].float().mean() < 200  # not saturated


def test_prepared_dataset_round_trip_and_validation(tmp_path):
    provenance = prepare_dataset("synthetic", tmp_path / "d.pt", synthetic={"train_size": 50, "test_size": 20})
    data = load_dataset(tmp_path / "d.pt")
    assert data["name"] == "synthetic" and data["provenance"] == provenance
    assert len(data["train_labels"]) == 50 and len(data["test_labels"]) == 20
    broken = {key: data[key] for key in ("train_inputs", "test_inputs", "test_labels", "classes")}
    broken["train_labels"] = data["train_labels"] + 20  # labels outside the 10 classes
    with pytest.raises(ValueError, match="train_labels outside"):
        save_dataset(tmp_path / "bad.pt", "synthetic", broken, {})
    assert not (tmp_path / "bad.pt").exists()
    with pytest.raises(FileNotFoundError, match="prepare_dataset rule"):
        load_dataset(tmp_path / "none.pt")
