"""ClaSP PE: box sums and peaks (known answers, brute force), the per-class scores of one volume, the stratified
budget split, the stratified selector, and `clasp-pe` end to end through the one-pass scorer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from assft.config import InferenceConfig, ModelConfig
from assft.data.synthetic import PHANTOM_LABELS
from assft.errors import ConfigError
from assft.models import build_model, make_checkpoint, save_checkpoint
from assft.query import CaseSummary, QueryConfig, SelectionContext, make_strategy, run_query, save_query_result, summarize_probs
from assft.metrics.scores import (
    clasp_box,
    compute_box_max_mean,
    compute_box_sums,
    compute_class_pe,
    compute_top_mean,
    compute_voxel_entropy,
)
from assft.query.stratified import class_stratified_select, split_stratified_budget

LOG2_OVER_LOG3 = math.log(2) / math.log(3)


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
       box=st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 7)), seed=st.integers(0, 100))
def test_box_sums_match_brute_force(shape: tuple[int, int, int], box: tuple[int, int, int], seed: int) -> None:
    values = torch.from_numpy(np.random.default_rng(seed).random(shape))
    a, b, c = (min(s, n) for s, n in zip(box, shape, strict=True))
    brute = np.array([[[float(values[i:i + a, j:j + b, k:k + c].sum()) for k in range(shape[2] - c + 1)]
                       for j in range(shape[1] - b + 1)] for i in range(shape[0] - a + 1)])
    assert np.allclose(compute_box_sums(values, box).numpy(), brute)
    assert compute_box_max_mean(values, box) == pytest.approx(brute.max() / (a * b * c))


def _cube_volume() -> torch.Tensor:
    """8^3, background certain everywhere except a 2^3 cube where classes 0 and 1 tie (0.5, 0.5, 0)."""
    probs = torch.zeros(3, 8, 8, 8)
    probs[0] = 1.0
    probs[:, 2:4, 5:7, 1:3] = torch.tensor([0.5, 0.5, 0.0])[:, None, None, None]
    return probs


def test_class_pe_known_answers() -> None:
    uniform = torch.full((3, 6, 6, 6), 1.0 / 3)
    for reduce in ("box_max", "topk_mean"):
        assert compute_class_pe(uniform, reduce=reduce) == pytest.approx([1.0, 1 / 3, 1 / 3])
        onehot = torch.zeros(3, 6, 6, 6)
        onehot[2] = 1.0
        assert compute_class_pe(onehot, reduce=reduce) == pytest.approx([0.0, 0.0, 0.0])
    probs = _cube_volume()
    # a box the cube's size finds it exactly: PE = log 2 / log 3, U_1 = PE * 0.5; class 2 is never predicted (0)
    assert compute_class_pe(probs, box=(2, 2, 2)) == pytest.approx([LOG2_OVER_LOG3, LOG2_OVER_LOG3 / 2, 0.0])
    # the default box is half of each side: 4^3 holds the 8 uncertain voxels among 64
    assert clasp_box((8, 8, 8)) == (4, 4, 4) and clasp_box((35, 50, 35)) == (18, 25, 18)
    assert compute_class_pe(probs) == pytest.approx([LOG2_OVER_LOG3 / 8, LOG2_OVER_LOG3 / 16, 0.0])
    assert compute_class_pe(probs, reduce="topk_mean", top_fraction=8 / 512) == \
        pytest.approx([LOG2_OVER_LOG3, LOG2_OVER_LOG3 / 2, 0.0])
    # box fraction 1 is the whole-volume mean (the paper's patch score when a patch covers the volume)
    whole = compute_class_pe(probs, box=clasp_box((8, 8, 8), fraction=1.0))
    assert whole == pytest.approx([8 * LOG2_OVER_LOG3 / 512, 4 * LOG2_OVER_LOG3 / 512, 0.0])
    assert clasp_box((8, 8, 8), size=(20, 3, 2)) == (8, 3, 2)
    assert compute_top_mean(torch.arange(10.0), 0.2) == pytest.approx(8.5)
    with pytest.raises(ConfigError, match="clasp.reduce"):
        compute_class_pe(probs, reduce="max")


def test_summarize_probs_adds_class_pe_only_when_asked() -> None:
    probs = torch.softmax(torch.randn(3, 10, 12, 8, generator=torch.Generator().manual_seed(0)), 0)
    config = QueryConfig(clasp={"box_fraction": 0.5})
    assert "class_pe" not in summarize_probs(probs, config)
    out = summarize_probs(probs, config, class_pe=True)
    expected = compute_class_pe(probs, entropy=compute_voxel_entropy(probs), box=(5, 6, 4))
    assert out["class_pe"] == pytest.approx(expected) and out["class_pe"].shape == (3,)
    assert np.all(out["class_pe"][1:] > 0)  # every class gets a (small) score even where it is not predicted


@pytest.mark.parametrize(("budget", "n_classes", "expected"), [
    (3, 2, [0, 1]),  # 0.66 * 3 = 1.98 -> 2 stratified, one per class, 1 from PE
    (1, 2, [0]),  # 0.66 -> 1
    (2, 2, [0]),  # 1.32 -> 1, 1 from PE
    (5, 2, [0, 1, 0]),  # 3.3 -> 3
    (10, 3, [0, 1, 2, 0, 1, 2, 0]),  # 6.6 -> 7
    (4, 1, [0, 0, 0]),  # 2.64 -> 3
])
def test_stratified_budget_split(budget: int, n_classes: int, expected: list[int]) -> None:
    assert split_stratified_budget(budget, n_classes, 0.66) == expected
    assert split_stratified_budget(budget, n_classes, 0.0) == []
    assert len(split_stratified_budget(budget, n_classes, 1.0)) == budget


def test_stratified_split_rotates_the_first_class() -> None:
    assert split_stratified_budget(5, 2, 0.66, first_class=1) == [1, 0, 1]


def test_class_stratified_select_known_answer() -> None:
    """Columns: PE, U_1, U_2. Budget 3 -> 2 stratified picks: class 1's best (b), class 2's best (a), then plain
    PE's best (c). All five with every pick stratified: b, a, then class 1's best remaining (d, as b is taken),
    class 2's best remaining (c), class 1's last (e)."""
    ids = ["a", "b", "c", "d", "e"]
    scores = np.array([
        [0.10, 0.01, 0.90],  # a: best for class 2
        [0.20, 0.80, 0.10],  # b: best for class 1
        [0.95, 0.50, 0.50],  # c: best plain PE
        [0.90, 0.70, 0.80],  # d: second everywhere
        [0.30, 0.05, 0.05],
    ])
    result = class_stratified_select(ids, scores, 3, np.random.default_rng(0), beta=None)
    assert result.selected == ["b", "a", "c"]
    assert result.columns["clasp_part"] == {"b": 1.0, "a": 2.0, "c": 0.0}
    assert result.ranking == ["b", "a", "c", "d", "e"]  # the rest by plain PE
    four = class_stratified_select(ids, scores, 5, np.random.default_rng(0), beta=None, class_fraction=1.0)
    assert four.selected == ["b", "a", "d", "c", "e"] and len(set(four.selected)) == 5


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 25), n_classes=st.integers(1, 4), seed=st.integers(0, 500), data=st.data())
def test_stratified_selection_gives_the_stated_per_class_counts(n: int, n_classes: int, seed: int,
                                                               data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"v{i:02d}" for i in range(n)]
    scores = rng.random((n, n_classes + 1))
    budget = data.draw(st.integers(1, n))
    beta = data.draw(st.sampled_from([None, 0.5, 1.0, 100.0]))
    result = class_stratified_select(ids, scores, budget, np.random.default_rng(seed), beta=beta)
    plan = split_stratified_budget(budget, n_classes)
    parts = [int(result.columns["clasp_part"][c]) for c in result.selected]
    assert parts == [k + 1 for k in plan] + [0] * (budget - len(plan))
    assert len(set(result.selected)) == budget and sorted(result.ranking) == ids
    perm = data.draw(st.permutations(range(n)))
    again = class_stratified_select([ids[i] for i in perm], scores[perm], budget, np.random.default_rng(seed),
                                    beta=beta)
    assert again.selected == result.selected


def test_clasp_pe_strategy_rationale_beta_and_notes() -> None:
    rng = np.random.default_rng(0)
    pool = [CaseSummary(f"v{i}", entropy=0.5, class_pe=rng.random(3)) for i in range(8)]
    config = QueryConfig(strategy="clasp-pe")
    names = {0: "background", 1: "anterior", 2: "posterior"}
    for index, beta in ((1, 1.0), (2, 10.0), (3, 100.0)):
        context = SelectionContext(config, round_index=index, total_rounds=3, class_names=names)
        result = make_strategy("clasp-pe", config).select(pool, context, 3, np.random.default_rng(1))
        assert result.notes["power_beta"] == pytest.approx(beta) and result.notes["clasp_pe_picks"] == 1
        assert result.notes["clasp_class_picks"] == {"1": 1, "2": 1}
        parts = [result.columns["clasp_part"][c] for c in result.selected]
        first = 1 + (index - 1) % 2  # the class order rotates with the round
        assert parts == [first, 3 - first, 0]
        rationale = result.rationale[result.selected[0]]
        assert f"class {first} ({names[first]}) uncertainty" in rationale and f"β={beta:.3g}" in rationale
    one_off = make_strategy("clasp-pe", config).select(pool, SelectionContext(config), 3, np.random.default_rng(1))
    assert one_off.notes["power_beta"] == 1.0 and "class 1 uncertainty" in one_off.rationale[one_off.selected[0]]


def test_clasp_pe_through_the_scorer(phantom_dir: Path, tmp_path: Path) -> None:
    config = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", make_checkpoint(build_model(config), config, PHANTOM_LABELS,
                                                              metadata={"train_config": {"patch_size": [16] * 3}}))
    inference = InferenceConfig(roi_size=(16, 16, 16), sw_batch_size=1, channels_last=False)
    result = run_query(ckpt, phantom_dir, QueryConfig(strategy="clasp-pe", budget=3), inference=inference, seed=0,
                       round_index=2, total_rounds=3)
    save_query_result(result, tmp_path / "q")
    assert all(s.class_pe is not None and s.class_pe.shape == (5,) for s in result.summaries)
    data = result.to_json()
    assert data["round_index"] == 2 and data["total_rounds"] == 3 and data["notes"]["power_beta"] == 10.0
    assert data["config"]["sampling"] == "auto" and data["config"]["clasp"]["reduce"] == "box_max"
    rationale = [pick["rationale"] for pick in data["selected"]]
    assert rationale[0].startswith(f"class 2 ({PHANTOM_LABELS[2]}) uncertainty")  # round 2: classes 2, 3, then PE
    assert rationale[1].startswith(f"class 3 ({PHANTOM_LABELS[3]}) uncertainty")
    assert rationale[2].startswith("uncertain prediction (peak PE")
    assert "U_1" in (tmp_path / "q" / "selection.csv").read_text().splitlines()[0]
    entropy = run_query(ckpt, phantom_dir, QueryConfig(strategy="entropy", budget=3), inference=inference)
    assert all(s.class_pe is None for s in entropy.summaries)  # other strategies do not pay for it
    with pytest.raises(ConfigError, match="round_index 4 is outside 1..3"):
        run_query(ckpt, phantom_dir, QueryConfig(strategy="clasp-pe", budget=3), inference=inference,
                  round_index=4, total_rounds=3)


def test_cli_config_file_sets_the_new_options(phantom_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from assft.cli.app import app

    config = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", make_checkpoint(build_model(config), config, PHANTOM_LABELS,
                                                              metadata={"train_config": {"patch_size": [16] * 3}}))
    (tmp_path / "q.yaml").write_text("strategy: clasp-pe\npower: {beta: 2.5}\nclasp: {reduce: topk_mean}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["query", "--model", str(ckpt), "--images", str(phantom_dir), "--budget", "2",
                                      "--config", str(tmp_path / "q.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "selection.json").read_text())
    assert meta["config"]["power"]["beta"] == 2.5 and meta["config"]["clasp"]["reduce"] == "topk_mean"
    assert meta["notes"]["power_beta"] == 2.5 and meta["round_index"] is None
    listed = CliRunner().invoke(app, ["list-strategies"])
    assert "clasp-pe" in listed.output and "class_pe" in listed.output
