"""Thread policy under contention: a UNet train step (the default MONAI UNet, 2 x 40x56x40 patches) on an idle
machine, beside one busy process, and beside one light process (30 % of a core), for four policies:
torch's default (2 threads, OpenMP's active wait), OMP_WAIT_POLICY=PASSIVE, one thread, and assft's default
(`auto`: the load-following governor of assft.utils.threads, ticked once per step as `fit` does).

Each configuration runs in a fresh interpreter (OpenMP reads its environment when torch loads); steps are timed for
`--seconds` after a 5 s warm-up (long enough for the governor to take its first reading), and the median is kept.
Writes benchmarks/results/thread_policy.json. Run it alone.

Usage: python benchmarks/speed/thread_policy.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import statistics, sys, time
import torch
policy, seconds = sys.argv[1], float(sys.argv[2])
if policy == "auto":
    from assft.utils.threads import set_thread_policy, tick
    set_thread_policy(None)
else:
    torch.set_num_threads(int(policy))
    tick = lambda: None
from assft.config import ModelConfig
from assft.models.zoo import build_model
torch.manual_seed(0)
net = build_model(ModelConfig())
opt = torch.optim.AdamW(net.parameters(), 1e-3)
x, y = torch.randn(2, 1, 40, 56, 40), torch.randint(0, 3, (2, 40, 56, 40))
def step():
    tick()
    t = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    return time.perf_counter() - t
start = time.perf_counter()
while time.perf_counter() - start < 5.0:
    step()
times, start = [], time.perf_counter()
while time.perf_counter() - start < seconds:
    times.append(step())
print(statistics.median(times) * 1000, torch.get_num_threads())
"""

HOGS = {
    "idle": None,
    "busy": "while True: pass",
    "light": "import time\nwhile True:\n    t = time.perf_counter()\n    while time.perf_counter() - t < 0.003: pass\n"
             "    time.sleep(0.007)",
}
POLICIES = (("torch default: 2 threads, OpenMP active wait", "2", None),
            ("2 threads, OMP_WAIT_POLICY=PASSIVE", "2", "PASSIVE"),
            ("1 thread", "1", None),
            ("assft default: auto (load-following)", "auto", None))


def measure(policy: str, wait: str | None, hog: str | None, seconds: float) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "ASSFT_THREADS")}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    if wait:
        env["OMP_WAIT_POLICY"] = wait
    process = subprocess.Popen([sys.executable, "-c", hog]) if hog else None
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, policy, str(seconds)], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
    finally:
        if process is not None:
            process.kill()
            process.wait()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "thread_policy.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from assft.utils.provenance import run_provenance

    rows = []
    for label, policy, wait in POLICIES:
        row: dict = {"policy": label}
        for load, hog in HOGS.items():
            ms, threads = measure(policy, wait, hog, args.seconds)
            row[f"{load}_ms"], row[f"{load}_threads"] = round(ms, 1), threads
        rows.append(row)
        print(row, flush=True)
    args.out.write_text(json.dumps({**run_provenance(ROOT), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
