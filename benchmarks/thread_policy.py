"""Thread policy under contention: a MONAI UNet train step (batch 2, 32^3) idle and beside one busy process.

Each configuration runs in a fresh interpreter (OpenMP reads OMP_WAIT_POLICY when torch loads), timing the median
of `--steps` steps after warm-up; "busy" starts one pure-Python busy loop on another process for the measurement.
Writes benchmarks/results/thread_policy.json.

Usage: python benchmarks/thread_policy.py [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import statistics, sys, time
import torch
from monai.networks.nets import UNet
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
net = UNet(3, 1, 3, (16, 32, 64, 128), (2, 2, 2), num_res_units=2)
opt = torch.optim.AdamW(net.parameters(), 1e-3)
x, y = torch.randn(2, 1, 32, 32, 32), torch.randint(0, 3, (2, 32, 32, 32))
times = []
for i in range(int(sys.argv[2]) + 3):
    t = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    if i >= 3:
        times.append(time.perf_counter() - t)
print(statistics.median(times) * 1000)
"""

BUSY = "while True: pass"


def measure(threads: int, policy: str | None, busy: bool, steps: int) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps)], env=env, check=True,
                             capture_output=True, text=True).stdout
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "thread_policy.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from assft.utils.provenance import run_provenance

    rows = []
    for threads, policy, label in ((2, None, "2 threads, OpenMP default (active)"),
                                   (2, "PASSIVE", "2 threads, OMP_WAIT_POLICY=PASSIVE (assft default)"),
                                   (1, None, "1 thread")):
        row = {"config": label, "threads": threads, "policy": policy or "default"}
        for busy in (False, True):
            row["busy_ms" if busy else "idle_ms"] = round(measure(threads, policy, busy, args.steps), 1)
        rows.append(row)
        print(row, flush=True)
    args.out.write_text(json.dumps({**run_provenance(ROOT), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
