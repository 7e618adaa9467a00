"""Does a refactor keep behaviour? A small AdaBN + SSFT campaign on 16^3 phantoms, simulated and driven step by step,
plus one standalone query: picks, Dice and sha256 of every checkpoint's state dict, as JSON.

    python benchmarks/checks/identity.py OUT.json      # ~1 min on 2 cores; compare two runs' files with `diff`
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("ASSFT_THREADS", "1")  # one thread: float sums in a fixed order, so two runs agree bit for bit
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from assft.campaign.config import CampaignConfig  # noqa: E402
from assft.campaign.ledger import Ledger
from assft.config import ModelConfig, TrainConfig
from assft.data import load_dataset, make_split
from assft.data.synthetic import make_phantom_dataset
from assft.pretrain.supervised import train_supervised

FINETUNE = {"train": {"steps": 2, "batch_size": 1, "patch_size": [16, 16, 16]}, "ssft_steps": 2}
INFERENCE = {"roi_size": [16, 16, 16], "channels_last": False}


def weight_hash(path: Path) -> str:
    """sha256 over the state dict's names and tensor bytes, in name order."""
    raw = torch.load(path, map_location="cpu", weights_only=False)
    state = raw["state_dict"] if "state_dict" in raw else raw
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def campaign_facts(campaign_dir: Path) -> dict:
    """Picks, Dice, pseudo-label choices and weight hashes of every round, and the adapted start model."""
    ledger = Ledger.load(campaign_dir)
    rounds = []
    for record in ledger.records():
        rounds.append({"round": record.round, "status": record.status, "selected": record.selected,
                       "mean_dice": (record.metrics or {}).get("mean_dice"),
                       "pseudo_selected": [p["case_id"] for p in record.pseudo_labels if p.get("selected")],
                       "weights": weight_hash(campaign_dir / record.checkpoint) if record.checkpoint else None,
                       "selection_csv": hashlib.sha256((campaign_dir / "rounds" / f"r{record.round:03d}" / "query" /
                                                        "selection.csv").read_bytes()).hexdigest()})
    adapted = campaign_dir / "round0" / "adapted.pt"
    meta = ledger.canonical()["meta"]
    return {"rounds": rounds, "adapted_weights": weight_hash(adapted) if adapted.exists() else None,
            "baseline_dice": (meta.get("baseline_metrics") or {}).get("mean_dice"),
            "files": sorted(str(p.relative_to(campaign_dir)) for p in campaign_dir.rglob("*")
                            if p.is_file() and "volumes" not in p.parts and p.name != ".lock")}


def main(out: Path) -> None:
    """Build the phantoms and the source model, run the three checks, write `out`."""
    try:
        from assft.campaign.simulate import run_campaign
    except ImportError:
        from assft.campaign.engine import run_campaign
    from assft.campaign.engine import finetune_round, import_labels, init_campaign, next_round
    from assft.utils.progress import reporting
    from assft.query.api import run_query

    root = Path(tempfile.mkdtemp(prefix="assft_identity_"))
    try:
        data = make_phantom_dataset(root / "data", 10, shape=(16, 16, 16), seed=0)
        spec = load_dataset(data)
        split = make_split(spec.case_ids, {"pool": 6, "test": 4}, 0)
        model = train_supervised(spec.subset(split["pool"][:2]), root / "src",
                                 model_config=ModelConfig(out_channels=5, params={"channels": (4, 8, 16),
                                                                                  "strides": (2, 2)}),
                                 train_config=TrainConfig(steps=3, batch_size=2, patch_size=(16, 16, 16))).best
        raw = {"model": str(model), "pool": str(data), "pool_ids": split["pool"], "test": str(data),
               "test_ids": split["test"], "budget": "2", "rounds": 2, "strategy": "assft", "finetune": FINETUNE,
               "inference": INFERENCE, "adapt": {"method": "adabn", "inference": INFERENCE}, "seed": 3}
        facts: dict = {"source_weights": weight_hash(model)}

        simulated = init_campaign(root / "sim", CampaignConfig.model_validate({**raw, "oracle": "ground_truth"}))
        with reporting(False):
            run_campaign(simulated)
        facts["simulated"] = campaign_facts(simulated)

        human = init_campaign(root / "human", CampaignConfig.model_validate(raw))
        for _ in range(2):
            with reporting(False):
                record = next_round(human)
            picked = record.selected if hasattr(record, "selected") else record["selected"]
            labels = root / f"labels_{len(picked)}_{picked[0]}"
            labels.mkdir()
            for case_id in picked:
                shutil.copyfile(spec.get(case_id).label_path, labels / f"{case_id}.nii.gz")
            import_labels(human, labels)
            with reporting(False):
                finetune_round(human)
        facts["human"] = campaign_facts(human)

        result = run_query(model, spec.subset(split["pool"]), None, seed=5)
        facts["query"] = {"selected": result.selected, "ranking": list(result.selection.ranking)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out.write_text(json.dumps(facts, indent=1, sort_keys=True))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
