"""Is the hippocampus data's own intensity encoding a natural domain shift? (real, not simulated)

MSD Task04 stores 205 images as float32 and 55 as uint8 (see the data's README). For each direction, a source UNet
(the suite's recipe: 300 steps) is trained on 40 volumes of one group and scored on held-out volumes of its own
group and on volumes of the other group; the drop is own - other. Writes benchmarks/results/encoding_shift.json.

Usage: python benchmarks/experiments/encoding_shift.py [--data ../shared/data/hippocampus] [--work /tmp/assft_encoding]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hippocampus")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "assft_encoding")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "encoding_shift.json")
    args = parser.parse_args()
    import nibabel as nib

    from assft.config import ModelConfig, TrainConfig
    from assft.data import load_dataset
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.pretrain.supervised import train_supervised
    from assft.utils.provenance import run_provenance
    from assft.utils.seeding import make_rng
    from assft.utils.threads import set_thread_policy

    set_thread_policy()
    spec = load_dataset(args.data)
    groups: dict[str, list[str]] = {"float32": [], "uint8": []}
    for case in spec.cases:
        dtype = str(nib.load(str(case.image_path)).header.get_data_dtype())
        groups["uint8" if dtype == "uint8" else "float32"].append(case.case_id)
    print({k: len(v) for k, v in groups.items()}, flush=True)
    rows = {}
    for train_group, other_group, n_own in (("float32", "uint8", 30), ("uint8", "float32", 15)):
        ids = [groups[train_group][i] for i in make_rng(0, "encoding", train_group).permutation(len(groups[train_group]))]
        train_ids, own_ids = ids[:40], ids[40:40 + n_own]
        other = groups[other_group]
        other_ids = [other[i] for i in make_rng(0, "encoding-other", other_group).permutation(len(other))[:30]]
        out = train_supervised(spec.subset(train_ids), args.work / f"source-{train_group}",
                               model_config=ModelConfig(), train_config=TrainConfig(steps=300, seed=0, val_every=300))

        def dice(case_ids: list[str]) -> list[float]:
            return [r["mean_dice"] for r in evaluate_checkpoint(out.best, spec.subset(case_ids))]

        own, oth = dice(own_ids), dice(other_ids)
        rows[f"train_{train_group}"] = {"n_train": 40, "own_group": train_group, "own_n": len(own),
                                        "own_dice": float(np.mean(own)), "other_group": other_group,
                                        "other_n": len(oth), "other_dice": float(np.mean(oth)),
                                        "drop": float(np.mean(own) - np.mean(oth))}
        print(rows[f"train_{train_group}"], flush=True)
    args.out.write_text(json.dumps({**run_provenance(ROOT), "groups": {k: len(v) for k, v in groups.items()},
                                    "results": rows}, indent=2))


if __name__ == "__main__":
    main()
