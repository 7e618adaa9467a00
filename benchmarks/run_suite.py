"""Strategy comparison on real volumes: source model, simulated target domains, campaigns, bounds, report.

Presets live in benchmarks/configs/<preset>.yaml: `quick` (<= 10 min), `full` (one domain <= 60 min; pass
--domains to run one at a time), `ablations` (method.md's ablations as named arms, scored on a validation split, never
on the test split) and `ssl` (the SSL-pretrained source-model arm). Everything is cached in --work and resumes after
an interruption (campaign ledgers, bounds, the source model, shared by presets with the same source split). Results
(report.md/html, summary.json, PNGs, and a provenance.json with date, machine, versions and git SHA) are written to
benchmarks/results/<preset>/ from every campaign found in the preset's work folder.

Usage: python benchmarks/run_suite.py --preset quick [--data ../shared/data/hippocampus] [--domains bias,t2like]
       [--only assft,random] [--threads 1] [--jobs 2] [--report-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "benchmarks" / "configs"

from assft.utils.provenance import run_provenance  # noqa: E402


SOURCE_THREADS = 2  # torch threads the source model trains with (see source_model)


def source_model(preset: dict, spec, split: dict, work: Path) -> Path:
    """The start model θ: supervised on the source split, or SSL-pretrained on its images (cached by recipe)."""
    source = preset.get("source", {"kind": "supervised", "steps": 300})
    kind, steps = source["kind"], int(source["steps"])
    network = source.get("model")  # a ModelConfig dict (e.g. tier 2's InstanceNorm network); None: assft's UNet
    # A fixed thread count: float sums in training depend on it, and a load-following count made the 2026-11-30
    # source model impossible to retrain bit for bit (its test Dice: 0.531; retrained with 1 / 2 threads: 0.530 /
    # 0.528 on multisite). Part of the cache key, so a model trained otherwise is never reused.
    recipe = [kind, steps, sorted(split["source"]), SOURCE_THREADS] + ([network] if network else [])
    key = hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:10]
    folder = work / f"source-{kind}-{key}"
    path = folder / ("best.pt" if kind == "supervised" else "ssl.pt")
    if path.exists():
        return path
    print(f"{kind} source model on {len(split['source'])} unshifted cases, {steps} steps", flush=True)
    if kind == "supervised":
        from assft.config import ModelConfig, TrainConfig
        from assft.pretrain.supervised import train_supervised

        train_supervised(spec.subset(split["source"]), folder, model_config=ModelConfig(**(network or {})),
                         train_config=TrainConfig(steps=steps, seed=0, val_every=steps, num_threads=SOURCE_THREADS))
    elif kind == "ssl":
        from assft.pretrain import PretrainConfig, pretrain_ssl

        pretrain_ssl(spec.subset(split["source"]), path, config=PretrainConfig(steps=steps, seed=0, num_threads=SOURCE_THREADS), resume=True)
    else:
        raise SystemExit(f"unknown source kind {kind!r} (supervised or ssl)")
    return path


def copy_ledgers(runs: Path, dest: Path) -> int:
    """Copy every campaign's ledger.json and campaign.yaml, and each domain's bounds.json, into `dest` (same tree),
    so the committed results can be recomputed with `assft report DEST`; returns the number of ledgers."""
    import shutil

    count = 0
    for ledger in sorted(runs.glob("*/*/seed*/ledger.json")):
        target = dest / ledger.parent.relative_to(runs)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("ledger.json", "campaign.yaml"):
            if (ledger.parent / name).exists():
                shutil.copyfile(ledger.parent / name, target / name)
        count += 1
    for bounds in runs.glob("*/bounds.json"):
        (dest / bounds.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bounds, dest / bounds.parent.name / "bounds.json")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", choices=sorted(p.stem for p in PRESETS.glob("*.yaml")))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hippocampus")
    parser.add_argument("--domains", default=None, help="Comma-separated subset of the preset's domains.")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "assft_suite")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--only", default=None, help="Comma-separated subset of the preset's strategies and arms.")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: follow the load, as the assft command does).")
    parser.add_argument("--jobs", type=int, default=1,
                        help="Campaigns at once in worker processes, sharing the threads (2 on the 2-core machine).")
    parser.add_argument("--report-only", action="store_true", help="Only rebuild the report from the work folder.")
    args = parser.parse_args()
    preset = yaml.safe_load((PRESETS / f"{args.preset}.yaml").read_text())
    domains = args.domains.split(",") if args.domains else preset["domains"]
    strategies, arms = preset.get("strategies", []), preset.get("arms", {})
    if args.only:
        only = args.only.split(",")
        unknown = sorted(set(only) - set(strategies) - set(arms))
        if unknown:
            raise SystemExit(f"--only: {unknown} are not strategies or arms of the {args.preset} preset")
        strategies, arms = [s for s in strategies if s in only], {k: v for k, v in arms.items() if k in only}

    import torch  # noqa: F401

    from assft.utils.threads import set_thread_policy

    set_thread_policy(args.threads)  # None: follow the load (assft's default)
    # split_draws (tier 2): each replicate is a fresh split draw with its own source model, in draw<k>/ folders, so
    # the draw, not the fine-tuning seed, is the unit of replication; without it one split, seed 0, as before
    draws = preset.get("split_draws")
    for draw in draws or [None]:
        suffix = Path(f"draw{draw}") if draw is not None else Path()
        run_preset(preset, args, args.work / args.preset / suffix, args.results / args.preset / suffix,
                   0 if draw is None else int(draw), domains, strategies, arms)


def run_preset(preset: dict, args: argparse.Namespace, work: Path, out: Path, split_seed: int, domains: list[str],
               strategies: list[str], arms: dict) -> None:
    """One split draw of a preset: the split, its source model, the campaigns, the report and the provenance."""
    from assft.campaign.simulate import SimulationConfig, run_simulation
    from assft.data import load_dataset, make_split, save_split
    from assft.reporting import write_report

    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        spec = load_dataset(args.data)
        split = make_split(spec.case_ids, preset["split"], seed=split_seed)
        save_split(work / "split.json", split, seed=split_seed, fractions=preset["split"], dataset=args.data)
        model = source_model(preset, spec, split, args.work)
        experiment = SimulationConfig(
            out=str(work / "runs"), model=str(model), data=str(args.data), split=str(work / "split.json"),
            test_subset=preset.get("test_subset", "test"), domains=domains, strategies=strategies,
            arms=arms, seeds=preset["seeds"], budget=preset["budget"], rounds=preset["rounds"],
            query=preset.get("query", {}), finetune=preset["finetune"],
            **{k: preset[k] for k in ("adapt", "reference_adaptations", "upper_seeds", "bounds") if k in preset})
        run_simulation(experiment, on_campaign=lambda d: print(f"finished {d.relative_to(work)} "
                                                                f"({time.perf_counter() - start:.0f} s)", flush=True),
                       jobs=args.jobs)
    copy_ledgers(work / "runs", out / "ledgers")
    report = write_report(work / "runs", out)
    provenance = {
        **run_provenance(ROOT), "split_seed": split_seed,
        "preset": preset, "domains": domains, "only": args.only, "seconds": time.perf_counter() - start,
        "threads": args.threads, "jobs": args.jobs,
        "note": "target domains are simulated shifts of single-site MSD hippocampus data",
    }
    parts = ([args.domains] if args.domains else []) + ([args.only] if args.only else [])  # one file per partial run
    name = "provenance.json" if not parts else f"provenance_{'_'.join(parts).replace(',', '_')}.json"
    (out / name).write_text(json.dumps(provenance, indent=2))
    print(f"done in {provenance['seconds']:.0f} s; report {report.markdown}")


if __name__ == "__main__":
    main()
