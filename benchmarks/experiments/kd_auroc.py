"""Does KD measure the knowledge gap? AUROC of KD for separating shifted from unshifted volumes in a `mixed` pool.

The `mixed` domain leaves ~20 % of cases unshifted and moves the rest into t2like/lowfield/bias/thickslice at varying
severity. KD of each volume comes from one pass of the source model θ0 (BatchNorm running statistics vs the
volume's norm-layer input moments). An AUROC well above 0.5 means KD ranks shifted volumes as further from what θ0
knows. Also reported per sub-domain. Prints a table, writes JSON.

Usage: python benchmarks/experiments/kd_auroc.py --model SOURCE.pt [--data ../shared/data/hippocampus] [--n 120]
(SOURCE.pt: e.g. the model benchmarks/experiments/foundation_hippocampus.py trains, /tmp/assft_foundation/source/best.pt.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

from assft.utils.provenance import run_provenance  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(tempfile.gettempdir()) / "assft_foundation/source/best.pt")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hippocampus")
    parser.add_argument("--n", type=int, default=120, help="Pool volumes (not used to train the model).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "kd_auroc.json")
    args = parser.parse_args()
    from sklearn.metrics import roc_auc_score

    from assft.data import load_dataset
    from assft.data.io import write_msd_dataset_json
    from assft.domains import apply_domain_to_dataset
    from assft.models import load_checkpoint
    from assft.query import QueryConfig, run_query

    ckpt = load_checkpoint(args.model)
    trained_on = set(ckpt.metadata.get("train_cases", []))
    spec = load_dataset(args.data)
    ids = [c for c in spec.case_ids if c not in trained_on][: args.n]
    work = Path(tempfile.mkdtemp(prefix="assft_kd_"))
    try:
        for case in spec.subset(ids).cases:
            for sub, path in (("imagesTr", case.image_path), ("labelsTr", case.label_path)):
                (work / "pool" / sub).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, work / "pool" / sub / path.name)
        write_msd_dataset_json(work / "pool", ids, spec.labels, name="pool")
        mixed = apply_domain_to_dataset(work / "pool", work / "mixed", "mixed", args.seed)
        provenance = json.loads((mixed / "dataset.json").read_text())["assft_provenance"]["cases"]
        result = run_query(args.model, mixed, QueryConfig(strategy="kd", budget=1), seed=args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kd = {s.case_id: s.kd for s in result.summaries}
    shifted = np.array([provenance[c]["shifted"] for c in ids])
    scores = np.array([kd[c] for c in ids])
    rows = [{"sub_domain": "all shifted", "n": int(shifted.sum()), "auroc": float(roc_auc_score(shifted, scores))}]
    subs = np.array([provenance[c]["sub_domain"] for c in ids])
    for sub in sorted(set(subs) - {"identity"}):
        keep = (subs == sub) | ~shifted
        rows.append({"sub_domain": sub, "n": int((subs == sub).sum()),
                     "auroc": float(roc_auc_score(shifted[keep], scores[keep]))})

    out = {**run_provenance(ROOT),
           "model": str(args.model), "n_pool": len(ids), "n_unshifted": int((~shifted).sum()),
           "note": "simulated shifts on single-site MSD hippocampus", "rows": rows,
           "kd_mean_shifted": float(scores[shifted].mean()), "kd_mean_unshifted": float(scores[~shifted].mean())}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"pool {len(ids)} volumes, {int((~shifted).sum())} unshifted")
    print("| shifted cases | n | AUROC of KD |\n|---|---|---|")
    for row in rows:
        print(f"| {row['sub_domain']} | {row['n']} | {row['auroc']:.3f} |")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
