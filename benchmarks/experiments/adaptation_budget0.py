"""Budget 0: what adaptation without labels buys on every simulated domain (validation and test splits).

For each domain: the supervised source model as is, AdaBN, and TENT (one and three passes) on the domain's pool,
scored on the validation and test splits of the `full` preset, with the seconds each adaptation took; for `multisite`
also the source model's Dice per site (the site's drop). The source model and split are the suite's (cached in
--work). Writes benchmarks/results/adaptation_budget0.json.

Usage: python benchmarks/experiments/adaptation_budget0.py [--domains t2like,multisite] [--work /tmp/assft_suite]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "experiments"))

METHODS = {"adabn": {"method": "adabn"}, "tent": {"method": "tent"},
           "tent-3ep": {"method": "tent", "tent_epochs": 3}, "tent-lr1e-4": {"method": "tent", "tent_lr": 1e-4}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hippocampus")
    parser.add_argument("--domains", default="t2like,bias,lowfield,thickslice,mixed,multisite")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "assft_suite")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "adaptation_budget0.json")
    args = parser.parse_args()
    import yaml

    from assft.adapt import AdaptConfig, adapt_checkpoint
    from assft.data import load_dataset, make_split
    from assft.domains import apply_domain_to_dataset
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.utils.provenance import run_provenance
    from assft.utils.threads import set_thread_policy
    from run_suite import source_model

    set_thread_policy()
    preset = yaml.safe_load((ROOT / "benchmarks" / "configs" / "full.yaml").read_text())
    spec = load_dataset(args.data)
    split = make_split(spec.case_ids, preset["split"], seed=0)
    source = source_model(preset, spec, split, args.work)
    results: dict = {}
    for domain in args.domains.split(","):
        folder = args.work / "full" / "runs" / "_data" / domain
        if not (folder / "dataset.json").exists():
            apply_domain_to_dataset(args.data, folder, domain, 0)
        shifted = load_dataset(folder)
        pool, val, test = (shifted.subset(split[k]) for k in ("pool", "val", "test"))

        def score(checkpoint: Path, data) -> tuple[float, list[dict]]:
            rows = evaluate_checkpoint(checkpoint, data)
            return float(np.mean([r["mean_dice"] for r in rows])), rows

        row: dict = {}
        for name, checkpoint, seconds in [("source", source, 0.0)] + [
                (m, None, None) for m in METHODS]:
            if checkpoint is None:
                out = args.work / "budget0" / domain / f"{name}.pt"
                t = time.perf_counter()
                adapt_checkpoint(source, pool, AdaptConfig(**METHODS[name]), out)
                checkpoint, seconds = out, time.perf_counter() - t
            val_dice, _ = score(checkpoint, val)
            test_dice, test_rows = score(checkpoint, test)
            row[name] = {"val": val_dice, "test": test_dice, "seconds": seconds}
            if domain == "multisite":
                prov = json.loads((folder / "dataset.json").read_text())["assft_provenance"]["cases"]
                sites: dict = {}
                for r in test_rows:
                    sites.setdefault(prov[r["case_id"]]["site"], []).append(r["mean_dice"])
                row[name]["test_by_site"] = {str(k): {"n": len(v), "dice": float(np.mean(v))}
                                             for k, v in sorted(sites.items())}
            print(domain, name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row[name].items()
                                 if k != "test_by_site"}, flush=True)
        if domain == "multisite":
            prov = json.loads((folder / "dataset.json").read_text())["assft_provenance"]["cases"]
            row["sites"] = {str(s): next(v for v in prov.values() if v.get("site") == s) for s in range(5)
                            if any(v.get("site") == s for v in prov.values())}
            row["site_counts"] = {k: {str(s): sum(1 for c in split[k] if prov[c]["site"] == s) for s in range(5)}
                                  for k in ("pool", "val", "test")}
            unshifted = load_dataset(args.data).subset(split["test"])
            row["source_unshifted_test"] = score(source, unshifted)[0]
        results[domain] = row
    args.out.write_text(json.dumps({**run_provenance(ROOT), "split": preset["split"], "results": results}, indent=2))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
