"""Does SSL pre-training help fine-tuning with few labels? Hippocampus (real MRI), fixed split, CPU-sized.

1. Fixed split (seed 0): `source` (labels unused), `target` (the labeled pool), `test`.
2. `pretrain_ssl` on the source volumes (masked inpainting + rotation, default UNet) -> ssl-only checkpoint.
3. For each seed and each labeled-set size n: the same n target volumes (drawn with the seed) are fine-tuned
   (`train_supervised`, same steps and seed) from random initialisation and from the SSL checkpoint (new head).
4. Each model is evaluated on the test cases (`evaluate_checkpoint`); the table reports mean foreground Dice over
   seeds and the paired SSL - random difference.

Runs are cached in --work (one JSON per run), so an interrupted benchmark continues where it stopped.
Usage: python benchmarks/experiments/pretrain_benefit.py [--data ../shared/data/hippocampus] [--ft-steps 150] [--ssl-steps 400]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

from assft.utils.provenance import run_provenance  # noqa: E402


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hippocampus")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "assft_pretrain_benefit")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "pretrain_benefit.json")
    parser.add_argument("--source", type=int, default=120, help="Unlabeled source volumes for pre-training.")
    parser.add_argument("--target", type=int, default=100, help="Target pool the labeled sets are drawn from.")
    parser.add_argument("--test", type=int, default=30, help="Test volumes.")
    parser.add_argument("--sizes", default="5,20", help="Labeled-set sizes.")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ssl-steps", type=int, default=400)
    parser.add_argument("--ft-steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=2, help="Fine-tuning patches per step.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads (1 is fastest on a busy 2-core box).")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from assft.config import InferenceConfig, ModelConfig, TrainConfig
    from assft.data import load_dataset, make_split
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.pretrain.supervised import train_supervised
    from assft.metrics import summarize_metrics
    from assft.pretrain import PretrainConfig, pretrain_ssl
    from assft.pretrain.pretraining import summarize_history
    from assft.utils.progress import silenced
    from assft.utils.seeding import make_rng, seed_everything

    work = args.work
    (work / "runs").mkdir(parents=True, exist_ok=True)
    spec = load_dataset(args.data)
    split = make_split(spec.case_ids, {"source": args.source, "target": args.target, "test": args.test}, seed=0)
    test = spec.subset(split["test"])
    inference = InferenceConfig(device="cpu")

    ssl_ckpt = work / "ssl" / "ssl.pt"
    ssl_info_path = work / "ssl" / "info.json"
    if not ssl_info_path.exists():
        config = PretrainConfig(steps=args.ssl_steps, seed=0, num_threads=args.threads, fingerprint_cases=20,
                                device="cpu")
        with silenced():
            out = pretrain_ssl(spec.subset(split["source"]).without_labels(), ssl_ckpt, config=config, resume=True)
        ssl_info = {"seconds": out.seconds, "config": config.model_dump(mode="json"),
                    "first_losses": summarize_history(out.history[:10], 10), "final_losses": out.final_losses()}
        ssl_info_path.write_text(json.dumps(ssl_info, indent=2))
    ssl_info = json.loads(ssl_info_path.read_text())
    print(f"SSL pre-training: {ssl_info['seconds']:.0f} s; losses first 10 steps {ssl_info['first_losses']} "
          f"-> last 10 {ssl_info['final_losses']}", flush=True)

    runs = []
    for seed in parse_ints(args.seeds):
        for n in parse_ints(args.sizes):
            labeled = sorted(make_rng(seed, "labeled", n).choice(split["target"], size=n, replace=False).tolist())
            for init in ("random", "ssl"):
                run_id = f"{init}_n{n}_seed{seed}"
                cache = work / "runs" / f"{run_id}.json"
                if cache.exists():
                    runs.append(json.loads(cache.read_text()))
                    continue
                start = time.perf_counter()
                seed_everything(seed)  # the new head of the SSL model is initialised from the global RNG
                train_config = TrainConfig(steps=args.ft_steps, batch_size=args.batch_size, seed=seed,
                                           num_threads=args.threads, val_every=10**9, device="cpu")
                trained = train_supervised(spec.subset(labeled), work / run_id, model_config=ModelConfig(),
                                           train_config=train_config,
                                           init_checkpoint=ssl_ckpt if init == "ssl" else None)
                train_s = time.perf_counter() - start
                with silenced():
                    summary = summarize_metrics(evaluate_checkpoint(trained.last, test, inference))
                run = {"run": run_id, "init": init, "n_labeled": n, "seed": seed, "labeled": labeled,
                       "mean_dice": summary["mean_dice"]["mean"],
                       "dice": {k: v["mean"] for k, v in summary["dice"].items()},
                       "mean_hd95": summary["mean_hd95"]["mean"], "train_seconds": train_s,
                       "seconds": time.perf_counter() - start}
                cache.write_text(json.dumps(run, indent=2))
                runs.append(run)
                print(f"{run_id}: Dice {run['mean_dice']:.3f} ({run['seconds']:.0f} s)", flush=True)

    table = []
    for n in parse_ints(args.sizes):
        by_init = {init: {r["seed"]: r["mean_dice"] for r in runs if r["init"] == init and r["n_labeled"] == n}
                   for init in ("random", "ssl")}
        seeds = sorted(set(by_init["random"]) & set(by_init["ssl"]))
        diffs = np.array([by_init["ssl"][s] - by_init["random"][s] for s in seeds])
        table.append({
            "n_labeled": n, "seeds": seeds,
            "random": {"mean": float(np.mean([by_init["random"][s] for s in seeds])),
                       "std": float(np.std([by_init["random"][s] for s in seeds]))},
            "ssl": {"mean": float(np.mean([by_init["ssl"][s] for s in seeds])),
                    "std": float(np.std([by_init["ssl"][s] for s in seeds]))},
            "paired_diff": {"mean": float(diffs.mean()), "std": float(diffs.std()),
                            "ssl_wins": int((diffs > 0).sum())},
        })

    result = {
        **run_provenance(ROOT),
        "split": {k: len(v) for k, v in split.items()}, "split_seed": 0,
        "model": "unet (ModelConfig defaults)",
        "ssl": ssl_info, "finetune": {"steps": args.ft_steps, "batch_size": args.batch_size, "patch": [40, 56, 40]},
        "table": table, "runs": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nfine-tuning {args.ft_steps} steps x batch {args.batch_size}; test = {len(split['test'])} cases; "
          f"mean foreground Dice over seeds {table[0]['seeds'] if table else []}")
    print("| labeled | random init | SSL init | SSL - random (paired) | SSL wins |\n|---|---|---|---|---|")
    for row in table:
        print(f"| {row['n_labeled']} | {row['random']['mean']:.3f} ± {row['random']['std']:.3f} "
              f"| {row['ssl']['mean']:.3f} ± {row['ssl']['std']:.3f} "
              f"| {row['paired_diff']['mean']:+.3f} ± {row['paired_diff']['std']:.3f} "
              f"| {row['paired_diff']['ssl_wins']}/{len(row['seeds'])} |")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
