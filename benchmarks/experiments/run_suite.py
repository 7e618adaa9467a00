"""Strategy comparison on real volumes: source model, simulated target domains, campaigns, bounds, report.

Presets live in benchmarks/configs/<preset>.yaml: `quick` (<= 10 min), `full` (one domain <= 60 min; pass
--domains to run one at a time), `ablations` (method.md's ablations as named arms, scored on a validation split, never
on the test split) and `ssl` (the SSL-pretrained source-model arm). Everything is cached in --work and resumes after
an interruption (campaign ledgers, bounds, the source model, shared by presets with the same source split). Results
(report.md/html, summary.json, PNGs, and a provenance.json with date, machine, versions and git SHA) are written to
benchmarks/results/<preset>/ from every campaign found in the preset's work folder.

Replicates: by default (`replicate: seed`) every seed reuses one split (seed 0) and one source model, so the seeds
vary the fine-tuning and the query's random choices. `replicate: draw` makes each seed a *pool draw*: the split
(source, pool, validation, test) is drawn again from the whole dataset with that seed, and the draw gets its own
source model, AdaBN start and bounds; its campaigns run with the same seed, so arms are paired by draw. Draw 0 is the
seed-0 split of the other presets (its source model is reused from the cache). Layout: WORK/PRESET/draws/draw{D}/
{domain}/{arm}/seed{D}; the shifted datasets and the volume cache are shared by the draws (a volume's shift does not
depend on the split). A preset's `comparisons: [[arm, reference], ...]` are reported as one Holm family.

Usage: python benchmarks/experiments/run_suite.py --preset quick [--data ../shared/data/hippocampus] [--domains bias,t2like]
       [--only assft,random] [--threads 1] [--jobs 2] [--report-only]
       (--preset also takes the path of a preset YAML)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "benchmarks" / "configs"

from assft.utils.provenance import run_provenance  # noqa: E402


SOURCE_THREADS = 2  # torch threads the source model trains with (see source_model)


def source_model(preset: dict, spec, split: dict, work: Path) -> Path:
    """The start model θ: supervised on the source split, or SSL-pretrained on its images (cached by recipe)."""
    source = preset.get("source", {"kind": "supervised", "steps": 300})
    kind, steps = source["kind"], int(source["steps"])
    # `model` / `train`: overrides of ModelConfig / TrainConfig (tiny nets in tests); in the key only when given,
    # so the presets' cached models keep their keys.
    overrides = {k: source[k] for k in ("model", "train") if k in source}
    # A fixed thread count: float sums in training depend on it, so a load-following count would make the source
    # model impossible to retrain bit for bit. Part of the cache key, so a model trained otherwise is never reused.
    identity = [kind, steps, sorted(split["source"]), SOURCE_THREADS] + ([overrides] if overrides else [])
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    folder = work / f"source-{kind}-{key}"
    path = folder / ("best.pt" if kind == "supervised" else "ssl.pt")
    if not path.exists():
        train_source_model(kind, steps, overrides, spec, split, folder, path)
    if source.get("fingerprint"):
        return with_source_fingerprint(path, spec.subset(split["source"]))
    return path


def with_source_fingerprint(path: Path, source_cases) -> Path:
    """A copy of θ0 carrying the fingerprint of its own source split (`source: {fingerprint: true}`), for the arms
    that set `kd: {source: fingerprint}`: the "with source data" reference. Cached beside θ0; every other arm of such a
    preset must name its KD source, since `auto` prefers an attached fingerprint."""
    from assft.models.checkpoint import build_from_checkpoint
    from assft.models.source_stats import attach_fingerprint
    from assft.pretrain.fingerprint import compute_fingerprint

    out = path.with_name(f"{path.stem}_fingerprint.pt")
    if out.exists():
        return out
    net, ckpt, _ = build_from_checkpoint(path, allow_partial=True)
    fingerprint = compute_fingerprint(net, source_cases.cases, ckpt.preprocess, ckpt.inference_config(None),
                                      model_config=ckpt.model_config)
    tmp = out.with_suffix(".tmp.pt")
    attach_fingerprint(path, fingerprint, tmp)
    tmp.replace(out)  # atomic: a half-written copy is never mistaken for the cached one
    return out


def train_source_model(kind: str, steps: int, overrides: dict, spec, split: dict, folder: Path, path: Path) -> None:
    """Train θ0 into `folder` (supervised: best.pt; ssl: ssl.pt) with the fixed source thread count."""
    print(f"{kind} source model on {len(split['source'])} unshifted cases, {steps} steps", flush=True)
    if kind == "supervised":
        from assft.config import ModelConfig, TrainConfig
        from assft.pretrain.supervised import train_supervised

        train = {**overrides.get("train", {}), "steps": steps, "seed": 0, "val_every": steps,
                 "num_threads": SOURCE_THREADS}
        train_supervised(spec.subset(split["source"]), folder, model_config=ModelConfig(**overrides.get("model", {})),
                         train_config=TrainConfig(**train))
    elif kind == "ssl":
        from assft.config import ModelConfig
        from assft.pretrain import PretrainConfig, pretrain_ssl

        pretrain_ssl(spec.subset(split["source"]), path, model_config=ModelConfig(**overrides.get("model", {})),
                     config=PretrainConfig(steps=steps, seed=0, num_threads=SOURCE_THREADS), resume=True)
    else:
        raise SystemExit(f"unknown source kind {kind!r} (supervised or ssl)")


def copy_ledgers(runs: Path, dest: Path) -> int:
    """Copy every campaign's ledger.json and campaign.yaml, and each domain's bounds.json, into `dest` (same tree),
    so the committed results can be recomputed with `assft report DEST`; returns the number of ledgers."""
    import shutil

    count = 0
    ledgers = sorted(runs.glob("*/*/seed*/ledger.json")) + sorted(runs.glob("draw*/*/*/seed*/ledger.json"))
    for ledger in ledgers:
        target = dest / ledger.parent.relative_to(runs)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("ledger.json", "campaign.yaml"):
            if (ledger.parent / name).exists():
                shutil.copyfile(ledger.parent / name, target / name)
        count += 1
    for bounds in list(runs.glob("*/bounds.json")) + list(runs.glob("draw*/*/bounds.json")):
        target = dest / bounds.parent.relative_to(runs)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bounds, target / "bounds.json")
    return count


def read_preset(name: str) -> dict:
    """A preset by name (benchmarks/configs/NAME.yaml) or by the path of a YAML file."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PRESETS / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
        raise SystemExit(f"--preset {name!r}: no such preset ({names}) or YAML file")
    preset = yaml.safe_load(path.read_text())
    replicate = preset.get("replicate", "seed")
    if replicate not in ("seed", "draw"):
        raise SystemExit(f"{path}: replicate: {replicate!r} is not 'seed' or 'draw'")
    if preset.get("source", {}).get("fingerprint"):
        check_kd_sources_named(preset, path)
    for pair in preset.get("comparisons", []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(a, str) for a in pair)):
            raise SystemExit(f"{path}: comparisons: {pair!r} is not an [arm, reference] pair")
    return preset


def check_kd_sources_named(preset: dict, path: Path) -> None:
    """With a fingerprint attached to θ0, `kd.source: auto` would pick it: every KD arm must name its source."""
    from assft.query.config import Need
    from assft.query.strategies import STRATEGIES

    def uses_kd(strategy: str) -> bool:
        return Need.NORM_STATS in STRATEGIES.get(strategy).requires

    shared = preset.get("query", {}).get("kd", {}).get("source")
    unnamed = [s for s in preset.get("strategies", []) if uses_kd(s) and not shared]
    unnamed += [name for name, arm in preset.get("arms", {}).items() if uses_kd(arm["strategy"])
                and not (arm.get("query", {}).get("kd", {}).get("source") or shared)]
    if unnamed:
        raise SystemExit(f"{path}: source.fingerprint attaches a fingerprint to θ0, so {', '.join(unnamed)} would "
                         "measure KD against it under kd.source auto; give each `query: {kd: {source: ...}}`")


def share_with_draws(folder: Path, shared: Path) -> None:
    """Point a draw's shifted-data folder and volume cache at the ones all draws share (created once)."""
    from assft.campaign.simulate import GRID_VOLUME_CACHE

    for name in ("_data", GRID_VOLUME_CACHE):
        (shared / name).mkdir(parents=True, exist_ok=True)
        link = folder / name
        if not link.is_symlink():
            link.symlink_to((shared / name).resolve(), target_is_directory=True)


def run_draw(preset: dict, spec, data: Path, work: Path, cache: Path, draw: int, settings: dict, *,
             jobs: int, on_campaign) -> None:
    """One pool draw: the split drawn with seed `draw`, its source model, and every campaign of the grid seeded
    `draw` into WORK/draws/draw{draw} (AdaBN start and bounds per domain, as in any simulation)."""
    from assft.campaign.experiment import SimulationConfig
    from assft.campaign.simulate import run_simulation
    from assft.data import make_split, save_split
    from assft.utils.paths import check_generated_folder, mark_generated_folder

    folder = work / "draws" / f"draw{draw}"
    folder.mkdir(parents=True, exist_ok=True)
    split = make_split(spec.case_ids, preset["split"], seed=draw)
    split_file = work / "draws" / f"split_draw{draw}.json"  # beside the draw's folder: a simulation never holds its inputs
    split_file.parent.mkdir(parents=True, exist_ok=True)
    save_split(split_file, split, seed=draw, fractions=preset["split"], dataset=data)
    model = source_model(preset, spec, split, cache)
    # The draw's folder is a simulation folder that also links the caches all draws share: mark it as one first, so
    # the simulation's guard (never write into a folder of someone else's files) recognises it.
    check_generated_folder(folder, "simulation", "draw folder", signatures=("experiment.json",))
    mark_generated_folder(folder, "simulation")
    share_with_draws(folder, work / "draws" / "_shared")
    experiment = SimulationConfig(out=str(folder), model=str(model), data=str(data), split=str(split_file),
                                  seeds=[draw], **settings)
    run_simulation(experiment, on_campaign=on_campaign, jobs=jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick",
                        help=f"{', '.join(sorted(p.stem for p in PRESETS.glob('*.yaml')))}, or a preset YAML path")
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
    preset = read_preset(args.preset)
    name = preset.get("preset") or Path(args.preset).stem
    domains = args.domains.split(",") if args.domains else preset["domains"]
    strategies, arms = preset.get("strategies", []), preset.get("arms", {})
    if args.only:
        only = args.only.split(",")
        unknown = sorted(set(only) - set(strategies) - set(arms))
        if unknown:
            raise SystemExit(f"--only: {unknown} are not strategies or arms of the {name} preset")
        strategies, arms = [s for s in strategies if s in only], {k: v for k, v in arms.items() if k in only}

    import torch

    from assft.campaign.experiment import SimulationConfig
    from assft.campaign.simulate import run_simulation
    from assft.data import load_dataset, make_split, save_split
    from assft.reporting import write_report

    from assft.utils.threads import set_thread_policy

    set_thread_policy(args.threads)  # None: follow the load (assft's default)
    start = time.perf_counter()
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    by_draw = preset.get("replicate", "seed") == "draw"
    runs = work / ("draws" if by_draw else "runs")
    if not args.report_only:
        spec = load_dataset(args.data)
        settings = dict(test_subset=preset.get("test_subset", "test"), domains=domains, strategies=strategies,
                        arms=arms, budget=preset["budget"], rounds=preset["rounds"], query=preset.get("query", {}),
                        finetune=preset["finetune"],
                        **{k: preset[k] for k in ("adapt", "reference_adaptations", "upper_seeds", "bounds",
                                                  "inference") if k in preset})

        def finished(d: Path) -> None:
            print(f"finished {d.relative_to(work)} ({time.perf_counter() - start:.0f} s)", flush=True)

        if by_draw:
            for draw in preset["seeds"]:
                run_draw(preset, spec, args.data, work, args.work, int(draw), settings, jobs=args.jobs,
                         on_campaign=finished)
        else:
            split = make_split(spec.case_ids, preset["split"], seed=0)
            save_split(work / "split.json", split, seed=0, fractions=preset["split"], dataset=args.data)
            model = source_model(preset, spec, split, args.work)
            experiment = SimulationConfig(out=str(runs), model=str(model), data=str(args.data),
                                          split=str(work / "split.json"), seeds=preset["seeds"], **settings)
            run_simulation(experiment, on_campaign=finished, jobs=args.jobs)
    out = args.results / name
    copy_ledgers(runs, out / "ledgers")
    comparisons = [tuple(pair) for pair in preset.get("comparisons", [])]
    report = write_report(runs, out, comparisons=comparisons or None)
    provenance = {
        **run_provenance(ROOT),
        "preset": preset, "domains": domains, "only": args.only, "seconds": time.perf_counter() - start,
        "threads": args.threads, "jobs": args.jobs,
        "note": "target domains are simulated shifts of single-site MSD hippocampus data",
    }
    parts = ([args.domains] if args.domains else []) + ([args.only] if args.only else [])  # one file per partial run
    filename = "provenance.json" if not parts else f"provenance_{'_'.join(parts).replace(',', '_')}.json"
    (out / filename).write_text(json.dumps(provenance, indent=2))
    print(f"done in {provenance['seconds']:.0f} s; report {report.markdown}")


if __name__ == "__main__":
    main()
