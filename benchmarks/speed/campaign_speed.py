"""Campaign wall time before/after a change (a script, not a test): the `full` preset's schedule on one domain.

Runs a grid of `full` campaigns (one domain, the given arms and seeds, no bounds, no reference adaptations) from
scratch with whatever `assft` is importable, and records the wall time of the whole grid, each campaign's round
timings, and every round's selected ids and test Dice, so that two code trees can be compared: same ids for every
(arm, seed, round) at fp32, or each difference explained.

    PYTHONPATH=<tree>/src python benchmarks/speed/campaign_speed.py --label after --out benchmarks/results/campaign_speed
    python benchmarks/speed/campaign_speed.py --compare benchmarks/results/campaign_speed/before.json \
        benchmarks/results/campaign_speed/after.json

The source model is trained once (cached in --work, shared by both runs: `run_suite.source_model`), so the timed part
is the campaigns only. Time it alone: a busy machine makes the numbers meaningless.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "experiments"))


def run(label: str, domain: str, arms: list[str], seeds: list[int], work: Path, out: Path, jobs: int) -> dict:
    """Run the grid into work/<label> and write out/<label>.json (wall time, timings, selections, Dice)."""
    import run_suite

    import assft
    from assft.campaign.experiment import SimulationConfig
    from assft.campaign.simulate import run_simulation
    from assft.data import load_dataset, make_split, save_split
    from assft.utils.provenance import run_provenance

    preset = yaml.safe_load((ROOT / "benchmarks" / "configs" / "full.yaml").read_text())
    data = ROOT.parent / "shared" / "data" / "hippocampus"
    spec = load_dataset(data)
    split = make_split(spec.case_ids, preset["split"], seed=0)
    work.mkdir(parents=True, exist_ok=True)
    save_split(work / "split.json", split, seed=0, fractions=preset["split"], dataset=data)
    model = run_suite.source_model(preset, spec, split, work)
    strategies = [a for a in arms if a in preset["strategies"]]
    named = {k: v for k, v in preset["arms"].items() if k in arms}
    runs = work / label
    if runs.exists():
        raise SystemExit(f"{runs} exists: this benchmark times a grid from scratch (remove it first)")
    config = SimulationConfig(out=str(runs), model=str(model), data=str(data), split=str(work / "split.json"),
                              test_subset="test", domains=[domain], strategies=strategies, arms=named, seeds=seeds,
                              budget=preset["budget"], rounds=preset["rounds"], query={},
                              finetune=preset["finetune"], adapt=preset["adapt"], reference_adaptations=[],
                              bounds=False)
    start = time.perf_counter()
    run_simulation(config, jobs=jobs)
    wall = time.perf_counter() - start
    campaigns = {}
    for ledger in sorted(runs.glob(f"{domain}/*/seed*/ledger.json")):
        rounds = json.loads(ledger.read_text())["rounds"]
        campaigns[f"{ledger.parent.parent.name}/{ledger.parent.name}"] = {
            "selected": [r["selected"] for r in rounds],
            "dice": [r["metrics"]["mean_dice"] for r in rounds],
            "timings": [r["timings"] for r in rounds],
        }
    result = {"label": label, "assft": str(Path(assft.__file__).parent), "domain": domain, "arms": arms,
              "seeds": seeds, "jobs": jobs, "wall_s": wall, "campaigns": campaigns, **run_provenance(ROOT)}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{label}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{label}: {len(campaigns)} campaigns in {wall:.0f} s")
    return result


def compare(before_path: Path, after_path: Path) -> None:
    """Print the wall-time ratio and every (campaign, round) whose selection or Dice differs."""
    before, after = (json.loads(Path(p).read_text()) for p in (before_path, after_path))
    print(f"wall: {before['wall_s']:.0f} s -> {after['wall_s']:.0f} s ({before['wall_s'] / after['wall_s']:.2f}x)")
    for phase in ("query_s", "finetune_s", "evaluate_s"):
        b = sum(t.get(phase, 0.0) for c in before["campaigns"].values() for t in c["timings"])
        a = sum(t.get(phase, 0.0) for c in after["campaigns"].values() for t in c["timings"])
        print(f"  {phase}: {b:.0f} s -> {a:.0f} s ({b / max(a, 1e-9):.2f}x)")
    same = differ = 0
    for name, b in before["campaigns"].items():
        a = after["campaigns"].get(name)
        if a is None:
            print(f"  {name}: missing after")
            continue
        for k, (sb, sa) in enumerate(zip(b["selected"], a["selected"])):
            if sb == sa:
                same += 1
            else:
                differ += 1
                print(f"  {name} round {k + 1}: {sb} -> {sa}")
        drift = max(abs(x - y) for x, y in zip(b["dice"], a["dice"]))
        print(f"  {name}: max |Dice after - before| over rounds {drift:.2e}")
    print(f"selections identical in {same} of {same + differ} (campaign, round) pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after")
    parser.add_argument("--domain", default="bias")
    parser.add_argument("--arms", default="assft,fg-random,assft+ssft")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/assft_campaign_speed"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "campaign_speed")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    run(args.label, args.domain, args.arms.split(","), [int(s) for s in args.seeds.split(",")], args.work,
        args.out, args.jobs)


if __name__ == "__main__":
    main()
