"""Query speed benchmark (a script, not a test): one-pass scoring cost, BALD cost, memory vs pool size, selection.

Measures on the real hippocampus volumes (../shared/data/hippocampus) with a randomly initialised default
ModelConfig() UNet (3 classes) and the default InferenceConfig():

1. `assft` scoring time (KD + embedding + probability statistics, one pass) / one plain MONAI sliding-window pass
   over the same pool (target <= 1.15 when θ = θ0); and the same with θ != θ0 (two passes, reported separately).
2. `bald` (T = 10 MC-dropout samples) scoring time / `assft` scoring time on the same volumes.
3. Peak RSS of `run_query` over pools of 100 and 1,000 volumes (volumes repeated), each in a fresh subprocess.
4. Greedy `assft` and `coreset` selection time over 100k random 256-d embeddings (target <= 5 s).

Prints a markdown table and writes benchmarks/results/query_speed.json.

    python benchmarks/speed/query_speed.py            # ~5 min on 2 shared CPU cores (1 torch thread)
    python benchmarks/speed/query_speed.py --quick    # fewer volumes, tiny net for the 1,000-volume memory run

`--strategies entropy,clasp-pe [--cases 40]` instead compares the scoring cost of strategies (each one's needs from
one pass, θ = θ0, same volumes, rotating order, minimum over repetitions), relative to the first one, and writes
benchmarks/results/query_speed_strategies.json.

`--pool-strategies bald,badge [--cases 40]` times each strategy's whole-pool scoring with one volume per forward
call against four (the default `batch_volumes`), alternating, minimum of 2 repetitions, and writes
query_speed_pool_strategies.json (did packing volumes into one call pay for this strategy?).

`--figures [--cases 100] [--pool-model CKPT]` measures `run_query` with the query figures against without (the
slices cut in the pass, five pick PNGs and the contact sheet rendered) and writes query_figures_cost.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HIPPOCAMPUS = ROOT.parent / "shared" / "data" / "hippocampus"
RESULTS = ROOT / "benchmarks" / "results" / "query_speed.json"
TINY_PARAMS = {"channels": (8, 16, 32, 64), "strides": (2, 2, 2)}


def _checkpoint(path: Path, seed: int, params: dict | None = None) -> Path:
    import torch

    from assft.config import ModelConfig
    from assft.models import build_model, make_checkpoint, save_checkpoint

    config = ModelConfig(out_channels=3, params=params or {})
    torch.manual_seed(seed)
    labels = {0: "background", 1: "anterior", 2: "posterior"}
    return save_checkpoint(path, make_checkpoint(build_model(config), config, labels,
                                                 metadata={"train_config": {"patch_size": [40, 56, 40]}}))


def _plain_pass(model, image, inference) -> None:
    """One plain MONAI sliding-window pass with softmax: the reference cost."""
    import torch
    from monai.inferers import SlidingWindowInferer

    inferer = SlidingWindowInferer(roi_size=inference.roi_size, sw_batch_size=inference.sw_batch_size,
                                   overlap=inference.overlap, mode=inference.mode)
    x = torch.as_tensor(image)[None]

    def predict(window):
        if inference.channels_last:
            window = window.contiguous(memory_format=torch.channels_last_3d)
        return torch.softmax(model(window).float(), 1)

    with torch.inference_mode():
        inferer(x, predict)


def _feed(box: list):
    """Yield whatever is put in `box`, one item per request (lets a streaming scorer be timed volume by volume)."""
    while box:
        yield box.pop()


def bench_scoring(n_cases: int, n_bald: int, tmp: Path, reps: int = 3) -> dict:
    """Per volume, `reps` rounds of (plain, assft, assft θ != θ0) in rotating order; each variant's time is its
    minimum over the rounds (the usual estimator on a machine shared with other jobs), summed over volumes."""
    import torch

    from assft.config import InferenceConfig
    from assft.data import load_case, load_dataset
    from assft.inference import prepare_model
    from assft.query import (
        Need,
        QueryConfig,
        iter_summaries,
        load_query_model,
        make_strategy,
        score_cases,
    )
    from assft.models.source_stats import resolve_source_stats
    from assft.utils.timing import timing_record

    spec = load_dataset(HIPPOCAMPUS)
    loaded = [load_case(c, with_label=False) for c in spec.cases[:n_cases]]
    inference = InferenceConfig(batch_volumes=1)  # per-volume streaming: one volume per call by design
    theta0 = load_query_model(_checkpoint(tmp / "theta0.pt", 0))
    theta = load_query_model(_checkpoint(tmp / "theta.pt", 1))
    config = QueryConfig()
    needs = make_strategy("assft").resolve_needs(True)
    stats0, _ = resolve_source_stats(theta0.model, theta0.checkpoint)
    plain_model = prepare_model(theta0.model, inference)
    for case in loaded[:2]:  # warm-up
        _plain_pass(plain_model, case.image, inference)
        score_cases([case], theta0, needs, config, inference, source_stats=stats0)
    times = {"plain": 0.0, "assft": 0.0, "assft_two_models": 0.0, "bald": 0.0, "assft_bald_subset": 0.0}
    split = {"pass_current_s": 0.0, "pass_pretrained_s": 0.0, "reduce_s": 0.0}
    # one long-lived streaming scorer per variant, fed one volume at a time (models prepared once, as for a pool)
    boxes: dict[str, list] = {"assft": [], "assft_two_models": []}
    timings: dict[str, dict[str, float]] = {name: {} for name in boxes}  # each scorer's own seconds
    scorers = {
        "assft": iter_summaries(_feed(boxes["assft"]), theta0, needs, config, inference, source_stats=stats0),
        "assft_two_models": iter_summaries(_feed(boxes["assft_two_models"]), theta, needs, config, inference,
                                           pretrained=theta0, source_stats=stats0),
    }

    def score(name: str, case) -> None:
        boxes[name].append(case)
        with torch.inference_mode(), timing_record(timings[name]):
            next(scorers[name])

    runs = {
        "plain": lambda case: _plain_pass(plain_model, case.image, inference),
        "assft": lambda case: score("assft", case),
        "assft_two_models": lambda case: score("assft_two_models", case),
    }
    best = {name: np.full(n_cases, np.inf) for name in runs}  # min over repetitions: robust to a busy machine
    first = {name: np.zeros(n_cases) for name in runs}
    for i, case in enumerate(loaded):
        for rep in range(reps):
            names = list(runs)
            k = (i + rep) % len(names)
            for name in names[k:] + names[:k]:  # rotate the order: no variant always runs first
                t0 = time.perf_counter()
                runs[name](case)
                dt = time.perf_counter() - t0
                best[name][i] = min(best[name][i], dt)
                if rep == 0:
                    first[name][i] = dt
        if i < n_bald:
            times["assft_bald_subset"] += best["assft"][i]
            t0 = time.perf_counter()
            score_cases([case], theta0, {Need.MC_PROBS}, QueryConfig(mc_samples=10), inference)
            times["bald"] += time.perf_counter() - t0
    for name in runs:
        times[name] = float(best[name].sum())
        times[f"{name}_first_run"] = float(first[name].sum())
    split.update({key: timings["assft_two_models"][key] / reps for key in split})
    return {
        "n_cases": n_cases, "n_bald_cases": n_bald, "seconds": times, "two_model_split_s": split,
        "ratio_assft_over_plain": times["assft"] / times["plain"],
        "ratio_assft_two_models_over_plain": times["assft_two_models"] / times["plain"],
        "ratio_bald_T10_over_assft": times["bald"] / max(times["assft_bald_subset"], 1e-9),
        "ratio_assft_over_plain_median_per_volume": float(np.median(best["assft"] / best["plain"])),
        "ratio_assft_over_plain_first_run": times["assft_first_run"] / times["plain_first_run"],
        "repetitions": reps,
        "plain_s_per_volume": times["plain"] / n_cases,
    }


def matmul_peak_gflops(size: int = 2048, reps: int = 5) -> float:
    """The machine's measured fp32 matmul rate (best of `reps` square sgemms) in GFLOP/s, at the current threads."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9


def forward_gflop(model, roi: tuple[int, int, int]) -> float:
    """GFLOP of one forward of a single window (torch's FLOP counter: convolutions and matmuls)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 1, *roi))
    return counter.get_total_flops() / 1e9


def _selected(summaries, budget: int) -> list[str]:
    from assft.query import QueryConfig, make_strategy
    from assft.query.strategies import SelectionContext
    from assft.utils.seeding import make_rng

    config = QueryConfig()
    return list(make_strategy("assft", config).select(summaries, SelectionContext(config), budget,
                                                      make_rng(0, "query", "assft")).selected)


def bench_pool(n_cases: int, tmp: Path, reps: int = 2, model: Path | None = None) -> dict:
    """Whole-pool `assft` scoring against a plain one-volume-per-call MONAI pass over the same volumes: one volume per
    forward call, 4 per call (the default), 4 per call with θ != θ0 (two models), and 4 per call in bf16; each the
    minimum over `reps` repetitions. Also the achieved GFLOP/s against the measured fp32 matmul peak, and whether
    bf16 changes the ids `assft` selects (budget 15) with `model` (default: a random UNet)."""
    import torch

    from assft.config import InferenceConfig
    from assft.data import load_case, load_dataset
    from assft.inference import prepare_model
    from assft.models.source_stats import resolve_source_stats
    from assft.query import QueryConfig, load_query_model, make_strategy, score_cases

    spec = load_dataset(HIPPOCAMPUS)
    loaded = [load_case(c, with_label=False) for c in spec.cases[:n_cases]]
    theta0 = load_query_model(model or _checkpoint(tmp / "theta0.pt", 0))
    theta = load_query_model(model or _checkpoint(tmp / "theta.pt", 1))
    if model is not None:  # θ != θ0 with a trained θ0: perturb a copy so the two passes really differ
        with torch.no_grad():
            for p in theta.model.parameters():
                p.mul_(1.01)
    stats0, _ = resolve_source_stats(theta0.model, theta0.checkpoint)
    needs = make_strategy("assft").resolve_needs(True)
    plain_model = prepare_model(theta0.model, InferenceConfig())
    out: dict = {}

    def score(batch: int, precision: str = "fp32", two: bool = False):
        inference = InferenceConfig(batch_volumes=batch, precision=precision)
        if two:
            return score_cases(loaded, theta, needs, QueryConfig(), inference, pretrained=theta0, source_stats=stats0)
        out[(batch, precision)] = score_cases(loaded, theta0, needs, QueryConfig(), inference, source_stats=stats0)
        return out[(batch, precision)]

    import copy

    contiguous = copy.deepcopy(theta0.model).to(memory_format=torch.contiguous_format).eval()
    cached: dict = {}
    score_cases(loaded, theta, needs, QueryConfig(), InferenceConfig(), pretrained=theta0, source_stats=stats0,
                theta0_moments=cached)  # θ0's moments of every volume, as a campaign holds them from round 2 on
    from assft.inference import iter_windows_pass

    def forward_only() -> None:  # the floor: the same packed windows through the network, nothing kept
        predict = lambda w: plain_model(w.contiguous(memory_format=torch.channels_last_3d))[:, :1]  # noqa: E731
        for _ in iter_windows_pass(plain_model, loaded, lambda c: c.image, InferenceConfig(), predictor=predict):
            pass

    runs = {
        "plain_1_per_call": lambda: [_plain_pass(plain_model, case.image, InferenceConfig()) for case in loaded],
        "forward_only_4_per_call": forward_only,
        # MONAI's pass exactly as a user writes it: no channels_last (the reference above uses it, and is faster)
        "plain_contiguous": lambda: [_plain_pass(contiguous, case.image, InferenceConfig(channels_last=False))
                                     for case in loaded],
        "assft_1_per_call": lambda: score(1),
        "assft_4_per_call": lambda: score(4),
        "assft_4_per_call_two_models": lambda: score(4, two=True),
        "assft_4_per_call_two_models_theta0_cached": lambda: score_cases(
            loaded, theta, needs, QueryConfig(), InferenceConfig(), pretrained=theta0, source_stats=stats0,
            theta0_moments=dict(cached)),
        "assft_4_per_call_bf16": lambda: score(4, "bf16"),
    }
    best = {name: float("inf") for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            t0 = time.perf_counter()
            with torch.inference_mode():
                run()
            best[name] = min(best[name], time.perf_counter() - t0)
    windows = sum(int(np.prod([max(1, -(-s // r)) for s, r in zip(c.image.shape[1:], InferenceConfig().roi_size)]))
                  for c in loaded)  # windows if none overlapped: exact for volumes that fit one window
    gflop = forward_gflop(theta0.model.float().to(memory_format=torch.contiguous_format), InferenceConfig().roi_size)
    peak = matmul_peak_gflops()
    achieved = gflop * windows / best["assft_4_per_call"]
    budget = min(15, n_cases // 2)
    fp32_ids, bf16_ids = _selected(out[(4, "fp32")], budget), _selected(out[(4, "bf16")], budget)
    return {"n_cases": n_cases, "seconds": best, "model": str(model) if model else "random UNet (seed 0)",
            "speedup_batched_over_one_per_call": best["assft_1_per_call"] / best["assft_4_per_call"],
            "ratio_batched_assft_over_plain": best["assft_4_per_call"] / best["plain_1_per_call"],
            "ratio_batched_two_models_over_plain": best["assft_4_per_call_two_models"] / best["plain_1_per_call"],
            "ratio_batched_bf16_over_plain": best["assft_4_per_call_bf16"] / best["plain_1_per_call"],
            "ratio_batched_two_models_theta0_cached_over_plain":
                best["assft_4_per_call_two_models_theta0_cached"] / best["plain_1_per_call"],
            "ratio_batched_assft_over_plain_contiguous": best["assft_4_per_call"] / best["plain_contiguous"],
            "ratio_forward_only_over_plain": best["forward_only_4_per_call"] / best["plain_1_per_call"],
            "ratio_batched_two_models_over_plain_contiguous":
                best["assft_4_per_call_two_models"] / best["plain_contiguous"],
            "gflop_per_window": gflop, "windows": windows, "achieved_gflops": achieved,
            "matmul_peak_gflops": peak, "fraction_of_peak": achieved / peak,
            "budget": budget, "bf16_selection_identical": fp32_ids == bf16_ids, "fp32_selected": fp32_ids, "bf16_selected": bf16_ids}


def bench_figures(n_cases: int, tmp: Path, model: Path | None, budget: int = 5, reps: int = 3) -> dict:
    """`run_query` (assft, θ = θ0, the whole pool) with and without `figures`: the slices cut in the pass plus the
    rendering of `budget` pick PNGs and the contact sheet; alternating order, minimum over `reps`."""
    from assft.data import load_dataset
    from assft.query import QueryConfig, run_query, save_query_result
    from assft.query.result import FIGURES_DIR, write_result_figures

    spec = load_dataset(HIPPOCAMPUS)
    cases = spec.cases[:n_cases]
    checkpoint = model or _checkpoint(tmp / "theta0.pt", 0)
    best = {False: float("inf"), True: float("inf")}
    picks = {}
    for rep in range(reps):
        for figures in ((False, True) if rep % 2 == 0 else (True, False)):
            t0 = time.perf_counter()
            result = run_query(checkpoint, cases, QueryConfig(budget=budget), figures=figures)
            out = tmp / f"q{rep}{figures}"
            save_query_result(result, out)
            if figures:
                t1 = time.perf_counter()
                write_result_figures(result, out / FIGURES_DIR, result.class_names)
                figure_s = time.perf_counter() - t1
            best[figures] = min(best[figures], time.perf_counter() - t0)
            picks[figures] = result.selected
    return {"n_cases": n_cases, "budget": budget, "model": str(model) if model else "random UNet (seed 0)",
            "seconds": {"plain": best[False], "figures": best[True]}, "ratio": best[True] / best[False],
            "rendering_s_last_rep": figure_s, "same_selection": picks[False] == picks[True]}


def bench_strategies(names: list[str], n_cases: int, tmp: Path, reps: int = 3) -> dict:
    """Scoring time of each strategy's needs (one streaming pass + reductions per volume, θ = θ0) on the same
    volumes; per volume the strategies run `reps` times in rotating order and each keeps its minimum."""
    import torch

    from assft.config import InferenceConfig
    from assft.data import load_case, load_dataset
    from assft.models.source_stats import resolve_source_stats
    from assft.query import QueryConfig, iter_summaries, load_query_model, make_strategy
    from assft.utils.timing import timing_record

    spec = load_dataset(HIPPOCAMPUS)
    loaded = [load_case(c, with_label=False) for c in spec.cases[:n_cases]]
    inference = InferenceConfig(batch_volumes=1)  # per-volume streaming: one volume per call by design
    theta0 = load_query_model(_checkpoint(tmp / "theta0.pt", 0))
    stats0, _ = resolve_source_stats(theta0.model, theta0.checkpoint)
    boxes: dict[str, list] = {name: [] for name in names}
    timings: dict[str, dict[str, float]] = {name: {} for name in names}
    scorers = {}
    for name in names:
        config = QueryConfig(strategy=name)
        needs = make_strategy(name, config).resolve_needs(True)
        scorers[name] = iter_summaries(_feed(boxes[name]), theta0, needs, config, inference, source_stats=stats0)

    def score(name: str, case) -> None:
        boxes[name].append(case)
        with torch.inference_mode(), timing_record(timings[name]):
            next(scorers[name])

    for case in loaded[:2]:  # warm-up
        for name in names:
            score(name, case)
    warm_reduce = {name: timings[name]["reduce_s"] for name in names}
    best = {name: np.full(n_cases, np.inf) for name in names}
    for i, case in enumerate(loaded):
        for rep in range(reps):
            k = (i + rep) % len(names)
            for name in names[k:] + names[:k]:
                t0 = time.perf_counter()
                score(name, case)
                best[name][i] = min(best[name][i], time.perf_counter() - t0)
    seconds = {name: float(best[name].sum()) for name in names}
    reduce_s = {name: (timings[name]["reduce_s"] - warm_reduce[name]) / reps for name in names}  # mean over reps
    ref = names[0]
    return {"n_cases": n_cases, "repetitions": reps, "strategies": names, "seconds": seconds,
            "reduce_s_mean_over_reps": reduce_s,
            "ratio_to_first": {name: seconds[name] / seconds[ref] for name in names},
            "ratio_to_first_median_per_volume": {name: float(np.median(best[name] / best[ref])) for name in names}}


def bench_pool_strategies(names: list[str], n_cases: int, tmp: Path, reps: int = 2) -> dict:
    """Whole-pool scoring time (θ = θ0) of each strategy with 1 and 4 volumes per forward call; minimum over reps."""
    import torch

    from assft.config import InferenceConfig
    from assft.data import load_case, load_dataset
    from assft.models.source_stats import resolve_source_stats
    from assft.query import QueryConfig, load_query_model, make_strategy, score_cases

    loaded = [load_case(c, with_label=False) for c in load_dataset(HIPPOCAMPUS).cases[:n_cases]]
    theta0 = load_query_model(_checkpoint(tmp / "theta0.pt", 0))
    stats0, _ = resolve_source_stats(theta0.model, theta0.checkpoint)
    seconds: dict[str, dict[str, float]] = {}
    for name in names:
        config = QueryConfig(strategy=name)
        needs = make_strategy(name, config).resolve_needs(True)
        best = {1: float("inf"), 4: float("inf")}
        score_cases(loaded[:2], theta0, needs, config, InferenceConfig(), source_stats=stats0)  # warm-up
        for rep in range(reps):
            for volumes in ((1, 4) if rep % 2 == 0 else (4, 1)):
                t0 = time.perf_counter()
                with torch.inference_mode():
                    score_cases(loaded, theta0, needs, config, InferenceConfig(batch_volumes=volumes),
                                source_stats=stats0)
                best[volumes] = min(best[volumes], time.perf_counter() - t0)
        seconds[name] = {"one_volume_per_call": best[1], "four_volumes_per_call": best[4],
                         "speedup": best[1] / best[4]}
    return {"n_cases": n_cases, "repetitions": reps, "seconds": seconds}


def rss_child(n_volumes: int, model_path: str, tiny: bool) -> None:
    """Run the full `assft` query over `n_volumes` (hippocampus volumes repeated) and print peak RSS as JSON."""
    import torch

    torch.set_num_threads(1)
    from assft.config import InferenceConfig
    from assft.data import Case, load_dataset
    from assft.query import QueryConfig, run_query

    base = load_dataset(HIPPOCAMPUS).cases
    cases = [Case(f"{base[i % len(base)].case_id}_r{i // len(base)}", base[i % len(base)].image_paths)
             for i in range(n_volumes)]
    start = time.perf_counter()
    run_query(model_path, cases, QueryConfig(budget=10), inference=InferenceConfig(), seed=0)
    print(json.dumps({"n_volumes": n_volumes, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": time.perf_counter() - start, "tiny_model": tiny}))


def bench_rss(sizes: tuple[int, ...], tmp: Path, tiny: bool) -> list[dict]:
    model = _checkpoint(tmp / "rss.pt", 0, TINY_PARAMS if tiny else None)
    out = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--rss-child", str(n), "--model", str(model)] + (["--tiny"] if tiny else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def bench_selection(n: int, d: int, budgets: tuple[int, ...]) -> list[dict]:
    from assft.query.clustering import k_center_greedy
    from assft.query.selection import greedy_diverse_top_k

    rng = np.random.default_rng(0)
    ids = [f"case_{i:06d}" for i in range(n)]
    z = rng.normal(size=(n, d)).astype(np.float32)
    kd, asd = rng.random(n), rng.random(n)
    rows = []
    for budget in budgets:
        t0 = time.perf_counter()
        greedy_diverse_top_k(ids, kd, z, budget, np.random.default_rng(0), asd=asd)
        t1 = time.perf_counter()
        k_center_greedy(ids, z, budget, np.random.default_rng(0))
        t2 = time.perf_counter()
        rows.append({"n": n, "d": d, "budget": budget, "assft_greedy_s": t1 - t0, "coreset_s": t2 - t1})
    return rows


def _pool_table(pool: dict) -> str:
    """Markdown rows of the whole-pool comparison."""
    return "\n".join([
        "| measure | value | target |", "|---|---|---|",
        f"| whole-pool `assft` scoring, 1 / 4 volumes per call | {pool['speedup_batched_over_one_per_call']:.2f}x "
        f"faster batched | |",
        f"| whole-pool `assft` (4 per call, θ = θ0) / plain pass (1 per call) | "
        f"{pool['ratio_batched_assft_over_plain']:.3f} | <= 0.35 |",
        f"| same with θ != θ0 (two models) | {pool['ratio_batched_two_models_over_plain']:.3f} | <= 0.6 |",
        f"| same, θ0's moments cached (campaign rounds 2+) | "
        f"{pool['ratio_batched_two_models_theta0_cached_over_plain']:.3f} | |",
        f"| the network's forward alone on the same packed windows (the floor) | "
        f"{pool['ratio_forward_only_over_plain']:.3f} | |",
        f"| same in bf16 (θ = θ0) | {pool['ratio_batched_bf16_over_plain']:.3f} | option |",
        f"| achieved GFLOP/s (θ = θ0, 4 per call) / fp32 matmul peak | {pool['achieved_gflops']:.1f} / "
        f"{pool['matmul_peak_gflops']:.1f} = {100 * pool['fraction_of_peak']:.0f} % | >= 30 % |",
        f"| bf16 selects the same {pool['budget']} ids as fp32 ({pool['model']}) | {pool['bf16_selection_identical']} | "
        f"default only if True |"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer volumes; tiny net for the memory runs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: two threads on a busy shared 2-core machine are several times slower)")
    parser.add_argument("--strategies", help="compare the scoring cost of these strategies only (comma-separated, "
                                             "the first is the reference), e.g. entropy,clasp-pe")
    parser.add_argument("--cases", type=int, default=40, help="volumes for --strategies (default 40)")
    parser.add_argument("--pool-strategies", help="whole-pool scoring of these strategies, 1 vs 4 volumes a call")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pool-only", action="store_true", help="only the whole-pool comparison (section 5)")
    parser.add_argument("--figures", action="store_true",
                        help="only the cost of `run_query(figures=True)` against without (--cases volumes, --pool-model)")
    parser.add_argument("--pool-model", type=Path,
                        help="trained checkpoint for the whole-pool run's bf16 selection check (default: random UNet)")
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.model, args.tiny)
        return
    if not (HIPPOCAMPUS / "dataset.json").exists():
        sys.exit(f"{HIPPOCAMPUS} is absent: the benchmark needs the real hippocampus volumes")
    import monai
    import torch

    torch.set_num_threads(args.threads)
    if args.strategies:
        names = [n.strip() for n in args.strategies.split(",") if n.strip()]
        with tempfile.TemporaryDirectory() as tmp:
            result = bench_strategies(names, args.cases, Path(tmp))
        result.update({"threads": args.threads, "versions": {"torch": torch.__version__, "monai": monai.__version__},
                       "machine": platform.processor() or platform.machine()})
        out = RESULTS.with_name("query_speed_strategies.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print("| strategy | scoring s/volume | / " + names[0] + " (total) | median per volume | reduce ms/volume |")
        print("|---|---|---|---|---|")
        for name in names:
            print(f"| `{name}` | {result['seconds'][name] / args.cases:.4f} | {result['ratio_to_first'][name]:.3f} | "
                  f"{result['ratio_to_first_median_per_volume'][name]:.3f} | "
                  f"{1000 * result['reduce_s_mean_over_reps'][name] / args.cases:.1f} |")
        print(f"\nwrote {out}")
        return
    if args.pool_strategies:
        names = [n.strip() for n in args.pool_strategies.split(",") if n.strip()]
        with tempfile.TemporaryDirectory() as tmp:
            result = bench_pool_strategies(names, args.cases, Path(tmp))
        from assft.utils.provenance import run_provenance

        result.update({"threads": args.threads, "provenance": run_provenance(ROOT)})
        out = RESULTS.with_name("query_speed_pool_strategies.json")
        out.write_text(json.dumps(result, indent=2) + "\n")
        for name, row in result["seconds"].items():
            print(f"| `{name}` | {row['one_volume_per_call']:.2f} s | {row['four_volumes_per_call']:.2f} s | "
                  f"{row['speedup']:.2f}x |")
        print(f"\nwrote {out}")
        return
    if args.figures:
        with tempfile.TemporaryDirectory() as tmp:
            result = bench_figures(args.cases, Path(tmp), args.pool_model)
        result.update({"threads": args.threads, "versions": {"torch": torch.__version__, "monai": monai.__version__},
                       "machine": platform.machine()})
        path = RESULTS.with_name("query_figures_cost.json")
        path.write_text(json.dumps(result, indent=2))
        print(f"figures: {result['seconds']['figures']:.2f} s vs {result['seconds']['plain']:.2f} s without "
              f"({result['ratio']:.3f}x; same selection: {result['same_selection']}); wrote {path}")
        return
    n_cases, n_bald = (100, 10) if args.quick else (100, 20)
    if args.pool_only:
        with tempfile.TemporaryDirectory() as tmp:
            pool = bench_pool(n_cases, Path(tmp), model=args.pool_model)
        pool.update({"threads": args.threads, "versions": {"torch": torch.__version__, "monai": monai.__version__},
                     "machine": platform.processor() or platform.machine()})
        out = RESULTS.with_name("query_speed_pool.json")
        out.write_text(json.dumps(pool, indent=2) + "\n")
        print(_pool_table(pool))
        print(f"\nwrote {out}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        scoring = bench_scoring(n_cases, n_bald, Path(tmp), reps=2 if args.quick else 3)
        pool = bench_pool(n_cases, Path(tmp), model=args.pool_model)
        rss = bench_rss((100, 1000), Path(tmp), tiny=args.quick)
    selection = bench_selection(100_000, 256, (100,) if args.quick else (100, 1000))
    result = {"scoring": scoring, "pool": pool, "rss": rss, "selection": selection, "quick": args.quick, "threads": args.threads,
              "versions": {"torch": torch.__version__, "monai": monai.__version__, "python": platform.python_version()},
              "machine": platform.processor() or platform.machine()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    s = scoring["seconds"]
    lines = ["| measure | value | target |", "|---|---|---|",
             f"| plain MONAI pass, s/volume ({n_cases} volumes) | {scoring['plain_s_per_volume']:.3f} | |",
             f"| `assft` scoring / plain pass (θ = θ0), total | {scoring['ratio_assft_over_plain']:.3f} | <= 1.15 |",
             f"| same, median of per-volume ratios | {scoring['ratio_assft_over_plain_median_per_volume']:.3f} | |",
             f"| same, first round only (no minimum) | {scoring['ratio_assft_over_plain_first_run']:.3f} | |",
             f"| `assft` scoring / plain pass (θ != θ0, two passes) | "
             f"{scoring['ratio_assft_two_models_over_plain']:.3f} | reported |",
             f"| `bald` T=10 / `assft` ({n_bald} volumes) | {scoring['ratio_bald_T10_over_assft']:.2f} | ~T |",
             *_pool_table(pool).splitlines()[2:]]
    for r in rss:
        lines.append(f"| peak RSS, {r['n_volumes']} volumes{' (tiny net)' if r['tiny_model'] else ''} | "
                     f"{r['maxrss_mb']:.0f} MB ({r['seconds']:.0f} s) | flat |")
    for r in selection:
        lines.append(f"| greedy `assft` / `coreset`, {r['n']:,} x {r['d']}, budget {r['budget']} | "
                     f"{r['assft_greedy_s']:.2f} s / {r['coreset_s']:.2f} s | <= 5 s |")
    print("\n".join(lines))
    print(f"\nseconds: {', '.join(f'{k} {v:.1f}' for k, v in s.items())}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
