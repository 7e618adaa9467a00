"""Foundation check on real data: `assft train` on 40 hippocampus cases, `assft evaluate` on 20 others, and the
same source model on every simulated target domain (Dice drop per domain). Prints a table, writes JSON.

Usage: python benchmarks/experiments/foundation_hippocampus.py [--data ../shared/data/hippocampus] [--steps 300] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from assft.utils.provenance import run_provenance  # noqa: E402


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hippocampus")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "assft_foundation")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "foundation_hippocampus.json")
    parser.add_argument("--domains", default="t2like,lowfield,bias,thickslice,mixed")
    parser.add_argument("--reuse", action="store_true", help="Reuse a trained model in --work.")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    split = work / "split.json"
    cli = [sys.executable, "-m", "assft.cli.app"]
    run([*cli, "data", "split", str(args.data), "--out", str(split), "--fractions", "source=40,test=20",
         "--seed", str(args.seed)])
    model = work / "source" / "best.pt"
    train_s = None
    if not (args.reuse and model.exists()):
        train_s = run([*cli, "train", "--data", str(args.data), "--split", str(split), "--subset", "source",
                       "--out", str(work / "source"), "--steps", str(args.steps), "--seed", str(args.seed)])
    if train_s is None:  # reused: take the training time the first run logged
        train_s = json.loads((work / "source" / "train_log.json").read_text())["seconds"]
    eval_s = run([*cli, "evaluate", "--data", str(args.data), "--split", str(split), "--subset", "test",
                  "--model", str(model), "--out", str(work / "eval_source")])
    source = json.loads((work / "eval_source" / "summary.json").read_text())

    from assft.data import load_dataset, load_split
    from assft.domains import apply_domain_to_dataset
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.metrics import summarize_metrics

    test_ids = load_split(split)["test"]
    spec = load_dataset(args.data).subset(test_ids)
    subset_dir = work / "test_subset"
    if not subset_dir.exists():  # an MSD folder with only the 20 test cases, so shifts touch only those
        import shutil

        from assft.data.io import write_msd_dataset_json

        for case in spec.cases:
            for folder, path in (("imagesTr", case.image_path), ("labelsTr", case.label_path)):
                (subset_dir / folder).mkdir(parents=True, exist_ok=True)
                shutil.copy(path, subset_dir / folder / path.name)
        write_msd_dataset_json(subset_dir, test_ids, spec.labels, name="hippocampus-test", modality="MRI")
    rows = [{"domain": "none (source)", "mean_dice": source["mean_dice"]["mean"], "drop": 0.0}]
    for domain in args.domains.split(","):
        shifted = apply_domain_to_dataset(subset_dir, work / f"test_{domain}", domain, args.seed)
        result = summarize_metrics(evaluate_checkpoint(model, load_dataset(shifted)))
        dice = result["mean_dice"]["mean"]
        rows.append({"domain": domain, "mean_dice": dice, "drop": source["mean_dice"]["mean"] - dice})

    out = {
        **run_provenance(ROOT),
        "train_cases": 40, "test_cases": 20, "steps": args.steps, "train_seconds": train_s, "eval_seconds": eval_s,
        "source_summary": {"mean_dice": source["mean_dice"], "mean_hd95": source["mean_hd95"],
                           "mean_nsd": source["mean_nsd"]},
        "domains": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"\ntrain {train_s:.0f} s, evaluate {eval_s:.0f} s")
    print("| domain | mean Dice | drop |\n|---|---|---|")
    for row in rows:
        print(f"| {row['domain']} | {row['mean_dice']:.3f} | {row['drop']:.3f} |")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
