"""Run a teacher once on every augmented view of every training image and save its logits (one job per teacher).

Snakemake calls it from rules/teachers.smk for a teacher whose students read their KD logits from the table
(``teacher_outputs=cached``); the same command runs by hand:

    python workflow_scripts/teacher_views.py --teacher results/teachers/cifar10/conv-teacher/seed1/model.pt \
        --data resources/cifar10/dataset.pt --out results/teachers/cifar10/conv-teacher/seed1/views.pt

Every pad-4 crop offset and flip (162 views per image) with the teacher's own normalisation; on CUDA under
bf16 autocast with channels_last, as the training loop runs an online teacher.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from compresslib.cli import run_main
from compresslib.data.datasets import load_dataset
from compresslib.devices import place
from compresslib.io import sha256_file
from compresslib.models import load_model
from compresslib.training.teacher_views import compute_teacher_views, save_teacher_views, view_count

log = logging.getLogger("compresslib")

PAD = 4  # the training loader's crop padding (DeviceLoader's default, which the training loop keeps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="teacher model.pt")
    parser.add_argument("--data", required=True, help="prepared dataset the teacher was trained on")
    parser.add_argument("--out", required=True, help="views file to write")
    parser.add_argument("--batch-size", type=int, default=1000, help="images per teacher forward pass")
    parser.add_argument("--device", default="auto", help="auto (a free GPU, else the CPU), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args(argv)

    with place(args.device) as placement:
        device = placement.device
        if device.type == "cpu" and args.threads:
            torch.set_num_threads(args.threads)
        cuda = device.type == "cuda"
        teacher, meta = load_model(args.teacher, device)
        dataset = load_dataset(args.data)
        if meta.get("dataset") != dataset["name"]:
            raise ValueError(f"teacher {args.teacher} was trained on {meta.get('dataset')!r}, but {args.data} holds "
                             f"{dataset['name']!r}")
        normalization = meta["normalization"]
        images = dataset["train_inputs"]
        log.info("teacher %s on %d views of %d images, device %s", meta["name"], view_count(PAD), len(images), device)
        tick = time.perf_counter()
        logits = compute_teacher_views(
            teacher.to(memory_format=torch.channels_last if cuda else torch.contiguous_format), images,
            mean=normalization["mean"], std=normalization["std"], pad=PAD, batch_size=args.batch_size, device=device,
            autocast=torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda), channels_last=cuda
        ).cpu()  # waits for the device: the time below is the computation's
        seconds = time.perf_counter() - tick
        log.info("%.0f s, %.0f images/s", seconds, logits.shape[0] * logits.shape[1] / seconds)
        save_teacher_views(args.out, logits, pad=PAD, augment=True,
                           teacher={"path": str(args.teacher), "sha256": sha256_file(args.teacher),
                                    "name": meta["name"], "spec_hash": meta.get("spec_hash")},
                           dataset={"path": str(args.data), "sha256": sha256_file(args.data), "name": dataset["name"]},
                           normalization=normalization)


if __name__ == "__main__":
    run_main(main)
