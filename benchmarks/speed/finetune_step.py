"""A fine-tuning step against a bare loop: how much do patch sampling, augmentation and bookkeeping add?

Same process, same network (default UNet), same batch shape (2 x 1 x 40 x 56 x 40), same optimiser and loss:
`fit()` on 10 hippocampus volumes (MONAI foreground-oversampled crops + augmentation) vs a bare
forward/backward/step loop on one fixed batch. Each is timed `--repeats` times over `--steps` steps, alternating,
and the medians are compared. Writes benchmarks/results/finetune_step.json. Time it alone (no other busy process).

With `--levers`, instead: the bare loop itself in fp32, in `channels_last_3d`, under bf16 autocast (with and
without channels_last), and in fp32 with the dropout layers switched off (what dropout's Bernoulli masks cost),
alternating, medians -> benchmarks/results/finetune_levers.json. These are the levers left for a faster campaign once
`fit` is near the bare loop; each changes the float results of training, so none is a default (a default must keep
the selections identical).

Usage: python benchmarks/speed/finetune_step.py [--steps 20] [--repeats 3] [--threads 2] [--levers]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hippocampus")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--levers", action="store_true", help="time the bare loop's precision/layout variants")
    args = parser.parse_args()
    args.out = args.out or ROOT / "benchmarks" / "results" / ("finetune_levers.json" if args.levers
                                                              else "finetune_step.json")
    import torch

    from assft.config import ModelConfig, TrainConfig
    from assft.data import load_case, load_dataset
    from assft.finetune.losses import SegmentationLoss
    from assft.finetune.trainer import fit
    from assft.models.zoo import build_model
    from assft.utils.provenance import run_provenance
    from assft.utils.threads import set_thread_policy

    set_thread_policy(args.threads)
    torch.set_num_threads(args.threads)
    spec = load_dataset(args.data)
    cases = [load_case(c) for c in spec.cases[:10]]
    config = TrainConfig(steps=args.steps, batch_size=2, lr=5e-4, val_every=10**6)
    torch.manual_seed(0)
    net = build_model(ModelConfig())

    def run_fit() -> float:
        start = time.perf_counter()
        fit(net, cases, config, 3)
        return (time.perf_counter() - start) / args.steps

    def run_bare() -> float:
        net.train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        loss_fn = SegmentationLoss()
        image, label = torch.randn(2, 1, *config.patch_size), torch.randint(0, 3, (2, 1, *config.patch_size))
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = loss_fn(net(image), label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / args.steps

    if args.levers:
        time_levers(net, config, args)
        return
    run_bare()  # warm-up
    fits, bares = [], []
    for _ in range(args.repeats):
        fits.append(run_fit())
        bares.append(run_bare())
    row = {"fit_ms": 1000 * statistics.median(fits), "bare_ms": 1000 * statistics.median(bares),
           "steps": args.steps, "repeats": args.repeats, "threads": args.threads}
    row["ratio"] = row["fit_ms"] / row["bare_ms"]
    print(json.dumps(row, indent=2))
    args.out.write_text(json.dumps({**run_provenance(ROOT), **row}, indent=2))


def time_levers(net, config, args: argparse.Namespace) -> None:
    """The bare forward/backward/step loop under each layout/precision variant, alternating; medians in ms."""
    import torch

    from assft.finetune.losses import SegmentationLoss
    from assft.utils.provenance import run_provenance

    loss_fn = SegmentationLoss()
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    image, label = torch.randn(2, 1, *config.patch_size), torch.randint(0, 3, (2, 1, *config.patch_size))
    # (channels_last, bf16, dropout)
    variants = {"fp32": (False, False, True), "fp32_channels_last": (True, False, True), "bf16": (False, True, True),
                "bf16_channels_last": (True, True, True), "fp32_no_dropout": (False, False, False)}

    def run(channels_last: bool, bf16: bool, dropout: bool, steps: int) -> float:
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        net.to(memory_format=fmt).train()
        for module in net.modules():  # eval() on a Dropout layer makes it the identity
            if isinstance(module, torch.nn.Dropout):
                module.train(dropout)
        x = image.contiguous(memory_format=fmt)
        start = time.perf_counter()
        for _ in range(steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(x)
            loss = loss_fn(out.float(), label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / steps

    for flags in variants.values():  # warm-up (oneDNN primitive caches)
        run(*flags, 2)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, flags in variants.items():
            times[name].append(run(*flags, args.steps))
    row = {f"{name}_ms": 1000 * statistics.median(values) for name, values in times.items()}
    row.update({f"{name}_ratio": row[f"{name}_ms"] / row["fp32_ms"] for name in variants},
               steps=args.steps, repeats=args.repeats, threads=args.threads)
    print(json.dumps(row, indent=2))
    args.out.write_text(json.dumps({**run_provenance(ROOT), **row}, indent=2))


if __name__ == "__main__":
    main()
