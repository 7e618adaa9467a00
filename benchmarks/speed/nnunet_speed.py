"""An imported nnU-Net v2 model: assft's passes vs nnU-Net's own predictor on the same hippocampus volumes.

A results folder is built with nnU-Net's own planning, preprocessing and trainer (tests/models/nnunet_reference.py; 8
hippocampus cases, a few training steps: timing does not depend on the weights), imported with `assft import
--format nnunetv2`, then, on the next `--cases` hippocampus volumes, side by side in one process, alternating, minimum of `--repeats` (1 torch thread):

- nnU-Net: `nnUNetPredictor.predict_single_npy_array` per volume (read, preprocess, sliding window, back to the
  original grid), model loading excluded; mirroring off on every volume, its default mirroring (all three axes, 8
  forwards a window) on the first `--mirror-cases` volumes (reported per volume);
- assft predict pass: `load_case` (nnU-Net's preprocessing) + the engine + `to_original_grid`, in process;
- `assft query --strategy entropy` (console script): the scoring time it reports, and its whole wall time.

Also records the voxel agreement / max probability difference of assft's predictions vs nnU-Net's (mirroring off).
Writes benchmarks/results/nnunet_speed.json. The machine is shared: numbers are indicative.

    python benchmarks/speed/nnunet_speed.py [--cases 40] [--mirror-cases 10]   # ~15 min on 2 shared cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HIPPOCAMPUS = ROOT.parent / "shared" / "data" / "hippocampus"
REFERENCE = ROOT / "tests" / "models" / "nnunet_reference.py"
ENV = {**os.environ, "ASSFT_THREADS": "1", "OMP_NUM_THREADS": "1"}


def run(*args: str | Path) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def assft_predict_pass(ckpt: Path, pool: Path, out: Path) -> float:
    """Seconds of assft's pass over the pool (preprocess, engine, back to the grid); probabilities saved for the check."""
    import torch

    from assft.config import InferenceConfig
    from assft.data.layout import load_dataset
    from assft.data.preprocess import to_original_grid
    from assft.inference.engine import iter_probs
    from assft.inference.predict import iter_loaded, prepare_model
    from assft.models.checkpoint import build_from_checkpoint

    torch.set_num_threads(1)
    model, ckpt_data, _ = build_from_checkpoint(ckpt)
    inference = InferenceConfig(roi_size=ckpt_data.training_patch, device="cpu")
    model = prepare_model(model, inference)
    cases = load_dataset(pool).cases
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {}
    for loaded, probs in iter_probs(model, iter_loaded(cases, ckpt_data.preprocess), inference):
        results[loaded.case_id] = to_original_grid(probs, loaded).numpy()
    seconds = time.perf_counter() - start
    for case_id, probs in results.items():
        np.save(out / f"{case_id[: -len('_0000')]}.npy", probs)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--mirror-cases", type=int, default=10, help="Volumes nnU-Net predicts with mirroring.")
    parser.add_argument("--repeats", type=int, default=2, help="Alternating repetitions of both passes (minimum).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "nnunet_speed.json")
    args = parser.parse_args()
    if not HIPPOCAMPUS.is_dir():
        raise SystemExit(f"{HIPPOCAMPUS} is absent")
    work = Path(tempfile.mkdtemp(prefix="nnunet_speed_"))
    start = time.perf_counter()
    run(sys.executable, REFERENCE, "build", work, "--hippocampus", HIPPOCAMPUS)
    build_s = time.perf_counter() - start
    results = Path((work / "results_dir.txt").read_text())
    ckpt = work / "imported.pt"
    run("assft", "import", "--format", "nnunetv2", "--weights", results, "--out", ckpt)
    pool = work / "pool"
    pool.mkdir()
    for image in sorted((HIPPOCAMPUS / "imagesTr").glob("*.nii.gz"))[8: 8 + args.cases]:  # after the 8 trained on
        (pool / f"{image.name[: -len('.nii.gz')]}_0000.nii.gz").symlink_to(image.resolve())

    mirror_pool = work / "mirror_pool"  # mirroring runs 8 forwards a window: timed on the first volumes only
    mirror_pool.mkdir()
    for image in sorted(pool.iterdir())[: args.mirror_cases]:
        (mirror_pool / image.name).symlink_to(image.resolve())

    sys.path.insert(0, str(REFERENCE.parent))
    from nnunet_reference import predict as nnunet_predict

    # Both in this process, alternating, minimum over repetitions: other jobs on the machine load both alike.
    runs: dict[str, list[float]] = {"assft_predict_pass_s": [], "nnunet_no_mirroring_s": []}
    for rep in range(args.repeats):
        order = ["assft", "nnunet"] if rep % 2 == 0 else ["nnunet", "assft"]
        for which in order:
            if which == "assft":
                runs["assft_predict_pass_s"].append(assft_predict_pass(ckpt, pool, work / "assft"))
            else:
                runs["nnunet_no_mirroring_s"].append(nnunet_predict(results, pool, work / "nnunet_no_mirroring_s"))
    timings: dict[str, float] = {k: min(v) for k, v in runs.items()}
    timings["nnunet_mirroring_s_per_volume"] = nnunet_predict(results, mirror_pool, work / "mirror",
                                                              mirror=True) / args.mirror_cases
    timings["nnunet_no_mirroring_s_per_volume"] = timings["nnunet_no_mirroring_s"] / args.cases
    start = time.perf_counter()
    text = run("assft", "query", "--model", ckpt, "--pool", pool, "--budget", "1", "--out", work / "query",
               "--strategy", "entropy")
    timings["assft_query_entropy_wall_s"] = time.perf_counter() - start
    scored = re.search(r"scored \d+ volumes in ([\d.]+) s", " ".join(text.split()))
    timings["assft_query_entropy_scoring_s"] = float(scored.group(1)) if scored else float("nan")

    equal, total, max_diff = 0, 0, 0.0
    for ref_file in sorted((work / "nnunet_no_mirroring_s").glob("*.npz")):
        ref = np.load(ref_file)
        probs = np.load(work / "assft" / f"{ref_file.stem}.npy")
        equal += int((probs.argmax(0) == ref["seg"]).sum())
        total += ref["seg"].size
        max_diff = max(max_diff, float(np.abs(probs - ref["probabilities"]).max()))
    report = {
        "cases": args.cases, "torch_threads": 1, "build_results_folder_s": round(build_s, 1),
        **{k: round(v, 2) for k, v in timings.items()},
        "nnunet_mirroring_cases": args.mirror_cases, "repeats": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "assft_pass_over_nnunet_no_mirroring": round(timings["assft_predict_pass_s"] / timings["nnunet_no_mirroring_s"], 3),
        "voxel_agreement": equal / total, "max_probability_difference": max_diff,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared with other jobs",
        "patch_size": json.loads(json.dumps(__import__("torch").load(ckpt, weights_only=True)["model_config"]
                                            ["params"]["patch_size"])),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
