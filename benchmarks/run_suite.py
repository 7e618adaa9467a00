"""Strategy comparison on real volumes: source model, simulated target domains, campaigns, bounds, report.

Presets live in benchmarks/configs/{quick,full}.yaml. Everything is cached in --work and resumes after an
interruption (campaign ledgers, bounds, the source model). Results (report.md/html, summary.json, PNGs, and a
provenance.json with date, machine, versions and git SHA) are written to benchmarks/results/<preset>/.

Usage: python benchmarks/run_suite.py --preset quick [--data ../shared/data/hippocampus] [--domains bias,t2like]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

from assft.utils.provenance import run_provenance  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", choices=["quick", "full"])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hippocampus")
    parser.add_argument("--domains", default=None, help="Comma-separated subset of the preset's domains.")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "assft_suite")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    preset = yaml.safe_load((ROOT / "benchmarks" / "configs" / f"{args.preset}.yaml").read_text())
    domains = args.domains.split(",") if args.domains else preset["domains"]

    from assft.campaign.simulate import SimulationConfig, run_simulation
    from assft.config import ModelConfig, TrainConfig
    from assft.data import load_dataset, make_split, save_split
    from assft.finetune.supervised import train_supervised
    from assft.reporting import write_report

    start = time.perf_counter()
    work = args.work / args.preset
    work.mkdir(parents=True, exist_ok=True)
    spec = load_dataset(args.data)
    split = make_split(spec.case_ids, preset["split"], seed=0)
    save_split(work / "split.json", split, seed=0, fractions=preset["split"], dataset=args.data)
    model = work / "source" / "best.pt"
    if not model.exists():
        print(f"training the source model on {len(split['source'])} unshifted cases", flush=True)
        train_supervised(spec.subset(split["source"]), work / "source", model_config=ModelConfig(),
                         train_config=TrainConfig(steps=preset["source_steps"], seed=0,
                                                  val_every=preset["source_steps"]))
    experiment = SimulationConfig(
        out=str(work / "runs"), model=str(model), data=str(args.data), split=str(work / "split.json"),
        domains=domains, strategies=preset["strategies"], seeds=preset["seeds"], budget=preset["budget"],
        rounds=preset["rounds"], finetune=preset["finetune"])
    run_simulation(experiment, on_campaign=lambda d: print(f"finished {d.relative_to(work)} "
                                                            f"({time.perf_counter() - start:.0f} s)", flush=True))
    out = args.results / args.preset
    report = write_report(work / "runs", out)

    provenance = {
        **run_provenance(ROOT),
        "preset": preset, "domains": domains, "seconds": time.perf_counter() - start,
        "note": "target domains are simulated shifts of single-site MSD hippocampus data",
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2))
    print(f"done in {provenance['seconds']:.0f} s; report {report.markdown}")


if __name__ == "__main__":
    main()
