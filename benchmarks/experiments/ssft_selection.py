"""Does selecting pseudo-labels help? SSFT ablation on real hippocampus MRI under a simulated domain shift.

Setting (the shift is simulated: every case comes from one site and one sequence):
- a supervised source model trained on ~40 unshifted cases (cached in benchmarks/.cache/);
- target = the same anatomy shifted by a named domain (default `t2like`, a contrast inversion);
- per seed, 10 labeled + 80 unlabeled target volumes (drawn from a fixed 90-case target pool), and a fixed
  30-case target test set.

Compared, at equal gradient steps on the labeled set (stage 1 + stage 3):
  labeled        stage 1 then `ssft_steps` more labeled-only steps   (SSFT off)
  all            stage 1 then stage 3 with every pseudo-label        (reliability "all")
  both           stage 1 then stage 3 with the reliable set R        (SSFT, the method)
  confidence / distance   (optional variants of R)
Also reported: the source model as is, and stage 1 alone. For each selecting variant the median true Dice of the
selected vs unselected pseudo-labels (the paper's Figure 5 statistic).

Run:  python benchmarks/experiments/ssft_selection.py            (about 30 min on one CPU core)
      python benchmarks/experiments/ssft_selection.py --variants labeled,all,both,confidence,distance --seeds 0
Writes benchmarks/results/ssft_selection.json and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results" / "ssft_selection.json"
DATA = ROOT.parent / "shared" / "data" / "hippocampus"
SELECTING = ("all", "both", "confidence", "distance")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--domain", default="t2like")
    p.add_argument("--severity", type=float, default=None)
    p.add_argument("--source-cases", type=int, default=40)
    p.add_argument("--labeled", type=int, default=10)
    p.add_argument("--unlabeled", type=int, default=80)
    p.add_argument("--test", type=int, default=30)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--source-steps", type=int, default=300)
    p.add_argument("--steps", type=int, default=150, help="stage-1 steps")
    p.add_argument("--ssft-steps", type=int, default=150, help="stage-3 steps")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--variants", default="labeled,all,both")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args()


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def shifted_copy(data: Path, case_ids: list[str], domain: str, severity: float | None, seed: int = 0) -> Path:
    """An MSD folder in the cache holding `case_ids` of `data` shifted into `domain` (built once)."""
    from assft.data import load_dataset
    from assft.domains import apply_domain_to_dataset
    from assft.utils.atomic import atomic_write_json

    out = CACHE / f"hippocampus_{domain}_{_key(sorted(case_ids), severity, seed)}"
    if (out / "dataset.json").exists():
        return out
    spec = load_dataset(data).subset(case_ids)
    with tempfile.TemporaryDirectory() as tmp:  # a dataset.json listing only these cases (absolute paths)
        meta = json.loads((data / "dataset.json").read_text())
        meta["training"] = [{"image": str(c.image_path), "label": str(c.label_path)} for c in spec.cases]
        atomic_write_json(Path(tmp) / "dataset.json", meta)
        apply_domain_to_dataset(tmp, out.with_suffix(".part"), domain, seed=seed, severity=severity)
    out.with_suffix(".part").rename(out)
    return out


def source_model(source_dir: Path, steps: int, batch_size: int, patch: tuple[int, int, int]) -> Path:
    """Train (once) the supervised source model on the unshifted source cases; cached by its settings."""
    from assft.config import TrainConfig
    from assft.data import load_dataset
    from assft.pretrain.supervised import train_supervised

    path = CACHE / f"source_{_key(source_dir.name, steps, batch_size, patch)}.pt"
    if path.exists():
        return path
    with tempfile.TemporaryDirectory() as tmp:
        out = train_supervised(load_dataset(source_dir), tmp,
                               train_config=TrainConfig(steps=steps, batch_size=batch_size, patch_size=patch))
        shutil.copyfile(out.last, path)
    return path


def test_dice(checkpoint: Path, test_spec, patch) -> float:
    from assft.config import InferenceConfig
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.utils.progress import silenced

    with silenced():
        rows = evaluate_checkpoint(checkpoint, test_spec, InferenceConfig(roi_size=patch))
    return float(statistics.mean(r["mean_dice"] for r in rows))


def run_seed(seed: int, args: argparse.Namespace, target, test_spec, pool_ids: list[str], source: Path,
             patch: tuple[int, int, int], work: Path) -> dict:
    from assft.config import TrainConfig
    from assft.data import make_split
    from assft.finetune.config import FinetuneConfig
    from assft.finetune.pseudo_labels import summarize_pseudo_label_dice
    from assft.finetune.ssft import run_ssft
    from assft.models import Checkpoint, load_checkpoint, save_checkpoint

    split = make_split(pool_ids, {"labeled": args.labeled, "unlabeled": args.unlabeled}, seed=seed)
    labeled, unlabeled = target.subset(split["labeled"]), target.subset(split["unlabeled"])

    def config(reliability: str, steps: int) -> FinetuneConfig:
        train = TrainConfig(steps=steps, batch_size=args.batch_size, patch_size=patch, num_threads=args.threads)
        return FinetuneConfig(train=train, ssft_steps=args.ssft_steps, pseudo={"reliability": reliability},
                              seed=seed)

    out: dict = {"labeled_ids": split["labeled"], "variants": {}}
    variants = args.variants.split(",")
    # The method's full call from the source model; its stage-1 weights are shared by the other variants.
    first = "both" if "both" in variants else variants[0]
    t = time.perf_counter()
    result = run_ssft(source, labeled, unlabeled, work / first, config(first if first != "labeled" else "none",
                                                                       args.steps))
    stage1 = save_checkpoint(work / "stage1.pt", Checkpoint(
        result.stage1_state, result.model_config, result.labels, "supervised", load_checkpoint(source).preprocess,
        {"train_config": {"patch_size": list(patch)}, "which": "stage1"}))
    out["stage1_dice"] = test_dice(stage1, test_spec, patch)
    out["stage1_seconds"] = result.timings["stage1"]
    results = {first: (result, time.perf_counter() - t)}
    for variant in variants:
        if variant in results:
            continue
        t = time.perf_counter()
        cfg = config("none", args.ssft_steps) if variant == "labeled" else config(variant, 0)
        results[variant] = (run_ssft(stage1, labeled, unlabeled, work / variant, cfg), time.perf_counter() - t)
    for variant, (res, seconds) in results.items():
        row = {"test_dice": test_dice(res.checkpoint, test_spec, patch), "seconds": seconds,
               "n_selected": len(res.selected_ids), "thresholds": res.reliable.to_dict()}
        if variant in SELECTING:
            row["pseudo_label_dice"] = summarize_pseudo_label_dice(res.table)
            row["table"] = [{"case_id": s.case_id, "conf": s.conf, "sd": s.sd, "selected": s.selected,
                             "true_dice": s.true_dice} for s in res.table]
        out["variants"][variant] = row
        print(f"  seed {seed} {variant:<10} test Dice {row['test_dice']:.3f}  ({seconds:.0f} s)", flush=True)
    return out


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from assft.data import load_dataset, make_split

    if not (args.data / "dataset.json").exists():
        sys.exit(f"no dataset at {args.data}")
    start = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    patch = (40, 56, 40)
    all_ids = load_dataset(args.data).case_ids
    n_target = args.labeled + args.unlabeled + args.test
    split = make_split(all_ids, {"source": args.source_cases, "target": n_target}, seed=0)
    target_ids = split["target"]
    test_ids = make_split(target_ids, {"test": args.test, "pool": n_target - args.test}, seed=0)
    source_dir = shifted_copy(args.data, split["source"], "identity", None)
    target_dir = shifted_copy(args.data, target_ids, args.domain, args.severity)
    t = time.perf_counter()
    source = source_model(source_dir, args.source_steps, args.batch_size, patch)
    print(f"source model {source.name} ready ({time.perf_counter() - t:.0f} s)", flush=True)
    target = load_dataset(target_dir)
    test_spec = target.subset(test_ids["test"])
    source_on_target = test_dice(source, test_spec, patch)
    source_on_source = test_dice(source, load_dataset(source_dir), patch)
    print(f"source model: Dice {source_on_source:.3f} on its training cases, {source_on_target:.3f} on the "
          f"{args.domain} target test set", flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {}
    partial = args.out.with_suffix(".partial.json")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            work = Path(tmp) / f"seed{seed}"
            runs[seed] = run_seed(seed, args, target, test_spec, test_ids["pool"], source, patch, work)
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({str(k): v for k, v in runs.items()}) + "\n")  # survives a crash
    summary = summarize(runs, args.variants.split(","))
    report = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "note": "simulated domain shift on single-site MSD hippocampus data",
              "source_dice_on_source_train": source_on_source, "source_dice_on_target_test": source_on_target,
              "summary": summary, "runs": {str(k): v for k, v in runs.items()},
              "seconds": time.perf_counter() - start}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    partial.unlink(missing_ok=True)
    print_table(report, args)
    print(f"wrote {args.out} ({report['seconds'] / 60:.1f} min)")


def summarize(runs: dict, variants: list[str]) -> dict:
    def stats(values: list[float]) -> dict:
        return {"mean": statistics.mean(values), "std": statistics.pstdev(values), "values": values}

    out = {"stage1": stats([r["stage1_dice"] for r in runs.values()])}
    for v in variants:
        rows = [r["variants"][v] for r in runs.values()]
        entry = {"test_dice": stats([row["test_dice"] for row in rows]),
                 "n_selected": [row["n_selected"] for row in rows]}
        if v in SELECTING:
            for group in ("selected", "unselected"):
                meds = [row["pseudo_label_dice"][group]["median"] for row in rows
                        if row["pseudo_label_dice"][group]["median"] is not None]
                entry[f"median_true_dice_{group}"] = statistics.mean(meds) if meds else None
        out[v] = entry
    return out


def print_table(report: dict, args: argparse.Namespace) -> None:
    s = report["summary"]
    print(f"\nSSFT selection on hippocampus -> {args.domain} (simulated shift), {args.labeled} labeled / "
          f"{args.unlabeled} unlabeled, {args.test} test, seeds {args.seeds}, steps {args.steps}+{args.ssft_steps}")
    print(f"{'variant':<26}{'test Dice (mean ± sd)':>24}{'|R|':>10}{'med Dice sel / unsel':>24}")
    print(f"{'source model, no adapt.':<26}{report['source_dice_on_target_test']:>24.3f}")
    print(f"{'stage 1 only':<26}{s['stage1']['mean']:>17.3f} ± {s['stage1']['std']:.3f}")
    names = {"labeled": "(a) labeled only", "all": "(b) all pseudo-labels", "both": "(c) SSFT selected (both)",
             "confidence": "    confidence only", "distance": "    distance only"}
    for v in args.variants.split(","):
        e = s[v]
        sel = ""
        if v in SELECTING:
            a, b = e["median_true_dice_selected"], e["median_true_dice_unselected"]
            sel = f"{a:.3f} / {b:.3f}" if b is not None else f"{a:.3f} / -"
        n = "/".join(str(x) for x in e["n_selected"]) if v in SELECTING else "0"
        print(f"{names.get(v, v):<26}{e['test_dice']['mean']:>17.3f} ± {e['test_dice']['std']:.3f}{n:>10}{sel:>24}")


if __name__ == "__main__":
    main()
