"""Which KD source ranks shifted volumes above unshifted ones, for a BatchNorm and an InstanceNorm UNet? (and round 0)

A cheap proxy for choosing `kd_source` on networks without BatchNorm running statistics: for each source (running
statistics where the network has them, the fingerprint reference that uses source images, and the source-free
intensity, pool and consistency), the AUROC of KD for separating shifted from unshifted volumes. The pool of each
domain is the validation split shifted into the domain (multisite's unshifted site counts as unshifted) plus 30
unshifted volumes of the pool split. Two source models, trained briefly with the same recipe on the source split
(the `full` preset's split): MONAI's UNet with BatchNorm (assft's default) and the same UNet with InstanceNorm
(affine, as nnU-Net). AUROC is a proxy: the campaign AUBC on the validation split decides (the tier-2 benchmark).

Round 0 on the same data: Dice of each source model on the shifted validation split as is, after TENT and (BatchNorm
only) after AdaBN, the budget-0 evidence for `adapt: auto`.

Usage: python benchmarks/experiments/kd_sources.py [--steps 150] [--domains multisite,bias] [--work /tmp/assft_kd_sources]
Writes benchmarks/results/kd_sources.json. Run with ASSFT_THREADS=1 on a shared machine (~10 minutes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

NETWORKS = {"unet-batch": {}, "unet-instance": {"norm": ("instance", {"affine": True})}}
SPLIT = {"source": 40, "pool": 60, "test": 30, "val": 30}  # the `full` preset's split sizes
N_UNSHIFTED = 30


def train(name: str, spec, split: dict, work: Path, steps: int) -> Path:
    """The source model of network `name` (cached in `work`)."""
    from assft.config import ModelConfig, TrainConfig
    from assft.pretrain.supervised import train_supervised

    folder = work / f"source-{name}-{steps}"
    if not (folder / "best.pt").exists():
        t0 = time.perf_counter()
        train_supervised(spec.subset(split["source"]), folder, model_config=ModelConfig(params=NETWORKS[name]),
                         train_config=TrainConfig(steps=steps, seed=0, val_every=steps, num_threads=1),
                         val=spec.subset(split["test"][:10]))
        print(f"trained {name} in {time.perf_counter() - t0:.0f} s", flush=True)
    return folder / "best.pt"


def make_pool(spec, split: dict, domain: str, work: Path) -> tuple[Path, dict[str, bool]]:
    """The domain's KD pool folder (shifted validation split + unshifted pool-split volumes) and case -> shifted."""
    from assft.data.io import write_msd_dataset_json
    from assft.domains import apply_domain_to_dataset

    folder = work / "pools" / domain
    shifted_dir = work / "shifted" / domain
    val_ids, clean_ids = list(split["val"]), list(split["pool"][:N_UNSHIFTED])
    if not (folder / "dataset.json").exists():
        raw = work / "raw_val"
        if not (raw / "dataset.json").exists():
            _copy_cases(spec, val_ids, raw)
            write_msd_dataset_json(raw, val_ids, spec.labels, name="val")
        apply_domain_to_dataset(raw, shifted_dir, domain, 0)
        for cid in val_ids:
            _link(shifted_dir, cid, folder, cid)
        for case in spec.subset(clean_ids).cases:
            _copy_cases(spec, [case.case_id], folder)
        write_msd_dataset_json(folder, val_ids + clean_ids, spec.labels, name=f"kd_{domain}")
    provenance = json.loads((shifted_dir / "dataset.json").read_text())["assft_provenance"]["cases"]
    shifted = {cid: bool(provenance[cid]["shifted"]) for cid in val_ids}
    shifted.update({cid: False for cid in clean_ids})
    return folder, shifted


def _copy_cases(spec, ids: list[str], dest: Path) -> None:
    for case in spec.subset(ids).cases:
        for sub, path in (("imagesTr", case.image_path), ("labelsTr", case.label_path)):
            (dest / sub).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / sub / path.name)


def _link(src: Path, cid: str, dest: Path, new: str) -> None:
    for sub in ("imagesTr", "labelsTr"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / sub / f"{cid}.nii.gz", dest / sub / f"{new}.nii.gz")


SOURCES = ("running_stats", "fingerprint", "intensity", "intensity_shape", "pool", "consistency")


def kd_aurocs(model: Path, pool: Path, shifted: dict[str, bool], fingerprint: dict,
              sources: tuple[str, ...] = SOURCES) -> dict[str, dict]:
    """AUROC (and seconds) of each KD source this network supports, on one pool."""
    from sklearn.metrics import roc_auc_score

    from assft.errors import CheckpointError
    from assft.query import QueryConfig, run_query

    out = {}
    for source in sources:
        t0 = time.perf_counter()
        try:
            result = run_query(_shape_only(model) if source == "intensity_shape" else model, pool,
                               QueryConfig(strategy="kd", budget=1, kd={"source": source.replace("_shape", "")}),
                               fingerprint=fingerprint if source == "fingerprint" else None)
        except CheckpointError as exc:  # e.g. running statistics of an InstanceNorm net
            out[source] = {"auroc": None, "why": exc.message}
            continue
        kd = {s.case_id: s.kd for s in result.summaries}
        ids = sorted(shifted)
        y, score = np.array([shifted[c] for c in ids]), np.array([kd[c] for c in ids])
        out[source] = {"auroc": float(roc_auc_score(y, score)), "seconds": round(time.perf_counter() - t0, 1),
                       "kd_shifted": float(score[y].mean()), "kd_unshifted": float(score[~y].mean()),
                       "provenance": result.provenance["kd_source"]}
    return out


def _shape_only(model: Path) -> Path:
    """A copy of the checkpoint whose intensity record is marked raw and has no non-zero region, as an nnU-Net
    fingerprint's: only the scale-free shape term over the foreground applies (intensity_shape). The numbers are
    still assft's input-space ones, not raw intensities pooled over volumes of different encodings."""
    from assft.models.checkpoint import load_checkpoint, save_checkpoint
    from assft.models.source_stats import SOURCE_INTENSITY_KEY

    ckpt = load_checkpoint(model)
    ckpt.metadata[SOURCE_INTENSITY_KEY] = [{k: v for k, v in c.items() if k != "nonzero"} | {"space": "raw"}
                                           for c in ckpt.metadata[SOURCE_INTENSITY_KEY]]
    return save_checkpoint(model.with_name("shape_only.pt"), ckpt)


def round0(model: Path, name: str, shifted_dir: Path, work: Path, domain: str) -> dict[str, float]:
    """Mean Dice on the shifted validation volumes: as is, after TENT, and after AdaBN (BatchNorm only)."""
    from assft.adapt import AdaptConfig, adapt_checkpoint
    from assft.data import load_dataset
    from assft.inference.evaluate import evaluate_checkpoint

    data = load_dataset(shifted_dir)
    dice = {"none": float(np.mean([r["mean_dice"] for r in evaluate_checkpoint(model, data)]))}
    for method in ("tent", "adabn") if name == "unet-batch" else ("tent",):
        out = work / "round0" / domain / f"{name}-{method}.pt"
        adapt_checkpoint(model, data, AdaptConfig(method=method), out)
        dice[method] = float(np.mean([r["mean_dice"] for r in evaluate_checkpoint(out, data)]))
    return dice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hippocampus")
    parser.add_argument("--domains", default="multisite,bias")
    parser.add_argument("--steps", type=int, default=150, help="Training steps of each source model.")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "assft_kd_sources")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "kd_sources.json")
    parser.add_argument("--sources", default=",".join(SOURCES), help="KD sources to (re)measure.")
    parser.add_argument("--update", action="store_true",
                        help="Replace only these sources' rows in an existing --json (no round 0, no training).")
    args = parser.parse_args()
    sources = tuple(args.sources.split(","))
    if args.update and "fingerprint" in sources:
        raise SystemExit("--update keeps the first run's fingerprints: rerun without --update to remeasure them")
    from assft.data import load_dataset, make_split
    from assft.data.volume_cache import use_volume_cache
    from assft.config import InferenceConfig
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.models.checkpoint import build_from_checkpoint
    from assft.pretrain.fingerprint import compute_fingerprint
    from assft.utils.provenance import run_provenance

    start = time.perf_counter()
    spec = load_dataset(args.data)
    split = make_split(spec.case_ids, SPLIT, seed=0)
    previous = json.loads(args.json.read_text()) if args.update else None
    results: dict = {"networks": {}, "domains": {}} if previous is None else \
        {"networks": previous["networks"], "domains": previous["domains"]}
    with use_volume_cache(args.work / "volumes"):
        models = {name: train(name, spec, split, args.work, args.steps) for name in NETWORKS}
        fingerprints = {}
        for name, path in models.items():
            if previous is not None:
                break
            net, ckpt, _ = build_from_checkpoint(path)
            fingerprints[name] = compute_fingerprint(net, spec.subset(split["source"]).cases, ckpt.preprocess,
                                                     InferenceConfig(roi_size=ckpt.training_patch),
                                                     model_config=ckpt.model_config)
            clean = spec.subset(split["test"])
            results["networks"][name] = {
                "params": NETWORKS[name], "steps": args.steps,
                "unshifted_test_dice": float(np.mean([r["mean_dice"] for r in evaluate_checkpoint(path, clean)]))}
        for domain in args.domains.split(","):
            pool, shifted = make_pool(spec, split, domain, args.work)
            row = {"n_shifted": int(sum(shifted.values())), "n_unshifted": int(sum(not v for v in shifted.values()))}
            for name, path in models.items():
                if previous is not None:
                    row[name] = previous["domains"][domain][name]
                    row[name]["kd"].update(kd_aurocs(path, pool, shifted, {}, sources))
                    continue
                row[name] = {"kd": kd_aurocs(path, pool, shifted, fingerprints[name], sources),
                             "round0_dice": round0(path, name, args.work / "shifted" / domain, args.work, domain)}
                print(domain, name, json.dumps(row[name]), flush=True)
            results["domains"][domain] = row
    results["seconds"] = round(time.perf_counter() - start, 1)
    if previous is not None:
        before = previous["seconds"] if isinstance(previous["seconds"], dict) else {"first run": previous["seconds"]}
        results["seconds"] = {**before, f"update {args.sources}": results["seconds"]}
    out = {**run_provenance(ROOT), "split": SPLIT, "note": "simulated shifts on single-site MSD hippocampus; AUROC "
           "of KD for shifted vs unshifted volumes is a proxy, not the campaign AUBC", **results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print_table(out)
    print(f"wrote {args.json}")


def print_table(out: dict) -> None:
    """The markdown table of docs/method.md: AUROC per network, source and domain."""
    domains = list(out["domains"])
    print("| network | KD source | " + " | ".join(domains) + " |\n|---|---|" + "---|" * len(domains))
    for name in NETWORKS:
        for source in SOURCES:
            cells = [out["domains"][d][name]["kd"][source].get("auroc") for d in domains]
            print(f"| {name} | {source} | " + " | ".join("n/a" if c is None else f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
