"""Scale-out benchmark (a script, not a test): a small simulation grid with `--jobs 1`, `--jobs 2` and
`--executor ray` (a local Ray on 2 CPUs), and pool scoring of 100 hippocampus volumes with 1 process vs 2 torchrun
processes. Run it alone on the machine (timings).

    python benchmarks/speed/scale_out.py [--model CKPT]   # CKPT: a trained hippocampus UNet (default: a random one)

Writes benchmarks/results/scale_out.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HIPPOCAMPUS = ROOT.parent / "shared" / "data" / "hippocampus"
RESULTS = ROOT / "benchmarks" / "results" / "scale_out.json"
ASSFT = [sys.executable, "-m", "assft"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _timed(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def grid(tmp: Path) -> dict:
    """8 campaigns (2 strategies x 4 seeds, 2 rounds, 20 steps a round) on 24^3 phantoms, three ways."""
    from assft.config import ModelConfig, TrainConfig
    from assft.data import load_dataset, make_split, save_split
    from assft.data.synthetic import make_phantom_dataset
    from assft.pretrain.supervised import train_supervised

    data = make_phantom_dataset(tmp / "data", 24, shape=(24, 24, 24), seed=0)
    spec = load_dataset(data)
    split = make_split(spec.case_ids, {"source": 4, "pool": 12, "test": 8}, 0)
    save_split(tmp / "split.json", split, seed=0, fractions={}, dataset=data)
    model = train_supervised(spec.subset(split["source"]), tmp / "source",
                             model_config=ModelConfig(out_channels=5, params={"channels": (8, 16, 32),
                                                                              "strides": (2, 2)}),
                             train_config=TrainConfig(steps=20, batch_size=2, patch_size=(24, 24, 24))).best
    seconds = {}
    for name, extra in (("jobs1", ["--jobs", "1"]), ("jobs2", ["--jobs", "2"]), ("ray", ["--executor", "ray"])):
        experiment = {"out": str(tmp / name), "model": str(model), "data": str(data), "split": str(tmp / "split.json"),
                      "strategies": ["assft", "random"], "seeds": [0, 1, 2, 3], "budget": "4", "rounds": 2,
                      "bounds": False, "finetune": {"steps_per_round": 20,
                                                    "train": {"batch_size": 2, "patch_size": [24, 24, 24]}},
                      "inference": {"roi_size": [24, 24, 24]}}
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(experiment))
        # --jobs 1 and the Ray driver follow the load; the process pool gives each worker cores / jobs threads
        seconds[name] = _timed([*ASSFT, "simulate", "--config", str(path), *extra])
    ledgers = {name: {p.relative_to(tmp / name).as_posix(): [r["selected"] for r in json.loads(p.read_text())["rounds"]]
                      for p in (tmp / name).glob("*/*/seed*/ledger.json")} for name in seconds}
    return {"campaigns": 8, "seconds": seconds, "same_selections": ledgers["jobs1"] == ledgers["jobs2"] == ledgers["ray"]}


def scoring(tmp: Path, model: Path | None, n: int = 100) -> dict:
    """`assft query` over n hippocampus volumes: one process (2 threads) vs torchrun with 2 processes (1 thread each)."""
    from assft.data import load_dataset

    pool = tmp / "pool"
    pool.mkdir(parents=True)
    for case in load_dataset(HIPPOCAMPUS).cases[:n]:
        os.symlink(case.image_path, pool / case.image_path.name)
    if model is None:
        sys.path.insert(0, str(ROOT / "benchmarks" / "speed"))
        from query_speed import _checkpoint

        model = _checkpoint(tmp / "theta0.pt", 0)
    args = ["query", "--model", str(model), "--pool", str(tmp / "pool"), "--budget", "10", "--seed", "0"]
    one = _timed([*ASSFT, *args, "--out", str(tmp / "q1")], {"OMP_NUM_THREADS": "2"})
    two = _timed([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                  "--master-port", str(_free_port()), "-m", "assft", *args, "--out", str(tmp / "q2")],
                 {"OMP_NUM_THREADS": "1"})
    picks = [json.loads((tmp / q / "selection.json").read_text())["selected"] for q in ("q1", "q2")]
    inner = [json.loads((tmp / q / "selection.json").read_text())["timings"]["pool_scoring_s"] for q in ("q1", "q2")]
    return {"volumes": n, "model": str(model), "seconds": {"one_process": one, "torchrun_2": two},
            "pool_scoring_s_rank0": {"one_process": inner[0], "torchrun_2": inner[1]},
            "same_selection": picks[0] == picks[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="Trained checkpoint for the scoring run.")
    args = parser.parse_args()
    import platform

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        result = {"grid": grid(Path(tmp) / "grid"), "scoring": scoring(Path(tmp) / "scoring", args.model),
                  "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                  "torch": torch.__version__}
    RESULTS.write_text(json.dumps(result, indent=2))
    g, s = result["grid"]["seconds"], result["scoring"]["seconds"]
    print("| run | wall s | speed-up |\n|---|---|---|")
    for name in ("jobs1", "jobs2", "ray"):
        print(f"| grid of 8 campaigns, {name} | {g[name]:.0f} | {g['jobs1'] / g[name]:.2f}x |")
    print(f"| query 100 volumes, 1 process | {s['one_process']:.1f} | 1.00x |")
    print(f"| query 100 volumes, torchrun x2 | {s['torchrun_2']:.1f} | {s['one_process'] / s['torchrun_2']:.2f}x |")
    print(f"same selections: grid {result['grid']['same_selections']}, query {result['scoring']['same_selection']}")


if __name__ == "__main__":
    main()
