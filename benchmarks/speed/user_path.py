"""The user's path, timed step by step through the console script on real hippocampus volumes.

A pool of N volumes (NIfTI, or each exported as a DICOM series), a held-out NIfTI test set, and a source model that is
either trained by assft (`--model assft`) or an nnU-Net v2 results folder built by nnU-Net's own planner,
preprocessor and trainer and brought in with `assft import` (`--model nnunet`, needs the `nnunet` extra). Then the
README's commands: data check, data init, adapt, query, a one-round campaign (init, next, import-labels with the
ground truth as the annotator, finetune, status) and, for nnU-Net, `assft export`. Run it alone on the machine.

Usage: python benchmarks/speed/user_path.py [--model assft|nnunet] [--format nifti|dicom] [--n 20]
       [--steps-per-round 40] [--out benchmarks/results/user_path_<model>_<format>.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HIPPOCAMPUS = ROOT.parent / "shared" / "data" / "hippocampus"
CLASSES = "0:background,1:anterior,2:posterior"


def assft(*args: object, cwd: Path) -> float:
    """Run `assft ARGS` in `cwd`; its wall time in seconds (fails loudly on a non-zero exit)."""
    start = time.perf_counter()
    proc = subprocess.run(["assft", *map(str, args)], cwd=cwd, capture_output=True, text=True, encoding="utf-8")
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"assft {' '.join(map(str, args))} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return round(elapsed, 2)


def make_pool(cases: list[str], work: Path, fmt: str) -> tuple[Path, Path]:
    """(pool folder of images only, folder of their ground-truth labels kept apart for the annotator)."""
    from assft.data.io import read_volume
    from assft.data.synthetic import write_dicom_series

    pool, truth = work / "pool", work / "truth"
    pool.mkdir(parents=True)
    truth.mkdir()
    for case_id in cases:
        image = HIPPOCAMPUS / "imagesTr" / f"{case_id}.nii.gz"
        if fmt == "dicom":
            array, affine = read_volume(image)
            if array.max() > 4095:  # float volumes up to ~1.7e6: stored as 12-bit values, as a scanner exports them
                array = array * (4095.0 / float(array.max()))
            write_dicom_series(pool / case_id, array.round(), affine)
        else:
            shutil.copy(image, pool / image.name)
        shutil.copy(HIPPOCAMPUS / "labelsTr" / f"{case_id}.nii.gz", truth / f"{case_id}.nii.gz")
    return pool, truth


def make_labeled(cases: list[str], folder: Path) -> Path:
    """An MSD-layout copy of `cases` (images and labels) with a dataset.json."""
    from assft.data.io import write_msd_dataset_json

    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
        for case_id in cases:
            shutil.copy(HIPPOCAMPUS / sub / f"{case_id}.nii.gz", folder / sub / f"{case_id}.nii.gz")
    write_msd_dataset_json(folder, cases, {0: "background", 1: "anterior", 2: "posterior"}, name=folder.name,
                           modality="MRI")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("assft", "nnunet"), default="assft")
    parser.add_argument("--format", choices=("nifti", "dicom"), default="nifti")
    parser.add_argument("--n", type=int, default=20, help="pool volumes")
    parser.add_argument("--steps-per-round", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / f"user_path_{args.model}_{args.format}.json"
    cases = sorted(p.name[: -len(".nii.gz")] for p in (HIPPOCAMPUS / "imagesTr").glob("*.nii.gz"))
    source_ids, test_ids, pool_ids = cases[:10], cases[10:20], cases[20:20 + args.n]
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="assft_user_path_") as tmp:
        work = Path(tmp)
        pool, truth = make_pool(pool_ids, work, args.format)
        test = make_labeled(test_ids, work / "test")
        if args.model == "assft":
            make_labeled(source_ids, work / "source")
            times["train (30 steps)"] = assft("train", "--data", work / "source", "--out", "run", "--steps", 30,
                                              cwd=work)
            model = work / "run" / "best.pt"
        else:
            start = time.perf_counter()
            subprocess.run([sys.executable, str(ROOT / "tests" / "models" / "nnunet_reference.py"), "build", str(work / "nn"),
                            "--hippocampus", str(HIPPOCAMPUS)], check=True, capture_output=True)
            times["nnU-Net plan + preprocess + train (not assft)"] = round(time.perf_counter() - start, 2)
            results = next((work / "nn" / "results").rglob("plans.json")).parent
            times["import"] = assft("import", "--format", "nnunetv2", "--weights", results, "--fold", 0,
                                    "--out", "theta0.pt", cwd=work)
            model = work / "theta0.pt"
        times["data check"] = assft("data", "check", pool, "--model", model, cwd=work)
        times["data init"] = assft("data", "init", pool, "--classes", CLASSES, cwd=work)
        times["adapt (auto)"] = assft("adapt", "--model", model, "--images", pool, "--out", "adapted.pt",
                                      "--method", "auto", cwd=work)
        times["query --figures"] = assft("query", "--model", model, "--images", pool, "--budget", 3,
                                         "--out", "query", "--figures", cwd=work)
        times["campaign init"] = assft("campaign", "init", "--model", model, "--images", pool, "--budget", 3,
                                       "--rounds", 1, "--adapt", "auto", "--test", test, "--steps-per-round",
                                       args.steps_per_round, "--out", "camp", cwd=work)
        times["campaign next (round 0 + query + pre-annotations)"] = assft("campaign", "next", "camp", cwd=work)
        picked = json.loads((work / "camp" / "ledger.json").read_text())["rounds"][-1]["selected"]
        (work / "labels").mkdir()
        for case_id in picked:
            shutil.copy(truth / f"{case_id}.nii.gz", work / "labels" / f"{case_id}.nii.gz")
        times["campaign import-labels"] = assft("campaign", "import-labels", "camp", "--labels", "labels", cwd=work)
        times["campaign finetune (+ evaluation)"] = assft("campaign", "finetune", "camp", cwd=work)
        times["campaign status"] = assft("campaign", "status", "camp", cwd=work)
        if args.model == "nnunet":
            finetuned = next((work / "camp").rglob("finetuned.pt"))
            times["export"] = assft("export", finetuned, "--format", "nnunetv2", "--out", "exported", cwd=work)
    record = {"model": args.model, "format": args.format, "pool": args.n, "test": len(test_ids),
              "steps_per_round": args.steps_per_round, "seconds": times, "cpus": os.cpu_count()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
