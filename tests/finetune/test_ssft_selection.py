"""SSFT's pure parts: reliable-set selection, the λ ramp, confidence, pseudo-label maps, the table, the config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from assft.errors import ConfigError, DataError
from assft.finetune.config import FinetuneConfig, PseudoLabelConfig
from assft.finetune.pseudo_labels import (
    IGNORE_UINT8,
    PseudoLabelStats,
    compute_pseudo_label_confidence,
    make_pseudo_label,
    mark_selected,
    read_pseudo_label_table,
    select_reliable,
    summarize_pseudo_label_dice,
    to_training_label,
    write_pseudo_label_table,
)
from assft.finetune.ssft import pseudo_weight_ramp

# conf median 0.7 -> {a, b, c}; sd median 0.3 -> {a, c, e}
CONF = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.5}
SD = {"a": 0.1, "b": 0.5, "c": 0.2, "d": 0.4, "e": 0.3}


def _stats(order: list[str] | None = None) -> list[PseudoLabelStats]:
    return [PseudoLabelStats(cid, CONF[cid], SD[cid], 10) for cid in (order or list(CONF))]


@pytest.mark.parametrize(("reliability", "expected", "t_c", "t_d"), [
    ("both", ("a", "c"), 0.7, 0.3),
    ("confidence", ("a", "b", "c"), 0.7, None),
    ("distance", ("a", "c", "e"), None, 0.3),
    ("all", ("a", "b", "c", "d", "e"), None, None),
    ("none", (), None, None),
])
def test_reliable_set_known_answer(reliability: str, expected: tuple[str, ...], t_c: float | None,
                                   t_d: float | None) -> None:
    chosen = select_reliable(_stats(), reliability, 0.5, 0.5)
    assert chosen.case_ids == expected
    assert chosen.conf_threshold == pytest.approx(t_c) if t_c is not None else chosen.conf_threshold is None
    assert chosen.sd_threshold == pytest.approx(t_d) if t_d is not None else chosen.sd_threshold is None
    # order of the pool does not matter
    assert select_reliable(_stats(["e", "c", "a", "d", "b"]), reliability).case_ids == expected


def test_quantile_levels_move_the_thresholds() -> None:
    # qc = 0.75 -> t_c = 0.8 -> {a, b}; qd = 0.25 -> t_d = 0.2 -> {a, c}
    assert select_reliable(_stats(), "confidence", qc=0.75).case_ids == ("a", "b")
    assert select_reliable(_stats(), "distance", qd=0.25).case_ids == ("a", "c")
    assert select_reliable(_stats(), "both", qc=0.75, qd=0.25).case_ids == ("a",)
    assert select_reliable(_stats(), "both", qc=0.0, qd=1.0).case_ids == tuple(CONF)
    assert select_reliable([], "both").case_ids == ()


def test_selection_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="unknown reliability 'bothh'"):
        select_reliable(_stats(), "bothh")
    with pytest.raises(ConfigError, match="must lie in"):
        select_reliable(_stats(), "both", qc=1.5)
    with pytest.raises(DataError, match="duplicate case ids"):
        select_reliable(_stats(["a", "a"]), "both")


def test_mark_selected_copies() -> None:
    stats = _stats()
    marked = mark_selected(stats, select_reliable(stats, "both"))
    assert [s.selected for s in marked] == [True, False, True, False, False]
    assert not any(s.selected for s in stats)  # inputs untouched


@pytest.mark.parametrize(("step", "total", "fraction", "expected"), [
    (0, 100, 0.5, 0.0), (10, 100, 0.5, 0.2), (25, 100, 0.5, 0.5), (50, 100, 0.5, 1.0), (99, 100, 0.5, 1.0),
    (1, 4, 0.5, 0.5), (2, 4, 0.5, 1.0), (3, 10, 0.0, 1.0), (0, 0, 0.5, 1.0), (30, 100, 1.0, 0.3),
])
def test_pseudo_weight_ramp(step: int, total: int, fraction: float, expected: float) -> None:
    assert pseudo_weight_ramp(step, total, fraction) == pytest.approx(expected)


def test_pseudo_weight_ramp_rejects_negative_steps() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        pseudo_weight_ramp(-1, 10)


def test_confidence_over_foreground_and_pseudo_labels() -> None:
    probs = torch.zeros(3, 1, 2, 2)
    probs[:, 0, 0, 0] = torch.tensor([0.1, 0.8, 0.1])  # fg, max 0.8
    probs[:, 0, 0, 1] = torch.tensor([0.2, 0.2, 0.6])  # fg, max 0.6
    probs[:, 0, 1, 0] = torch.tensor([0.9, 0.05, 0.05])  # bg, max 0.9
    probs[:, 0, 1, 1] = torch.tensor([0.5, 0.3, 0.2])  # bg, max 0.5
    omega = torch.tensor([[[True, True], [False, False]]])
    assert compute_pseudo_label_confidence(probs, omega) == pytest.approx(0.7)
    assert compute_pseudo_label_confidence(probs, torch.zeros_like(omega)) == 0.0  # empty Ω: least reliable
    label = make_pseudo_label(probs)
    assert label.dtype == np.uint8 and label.tolist() == [[[1, 2], [0, 0]]]
    masked = make_pseudo_label(probs, mask_threshold=0.7)
    assert masked.tolist() == [[[1, IGNORE_UINT8], [0, IGNORE_UINT8]]]
    assert to_training_label(masked).tolist() == [[[1, -1], [0, -1]]]


def test_table_round_trip(tmp_path: Path) -> None:
    stats = mark_selected(_stats(), select_reliable(_stats(), "both"))
    path = write_pseudo_label_table(tmp_path / "t.csv", stats)
    assert "true_dice" not in path.read_text().splitlines()[0]  # no ground truth -> no column
    back = read_pseudo_label_table(path)
    assert [(s.case_id, s.selected) for s in back] == [(s.case_id, s.selected) for s in stats]
    assert back[0].conf == pytest.approx(0.9) and back[0].true_dice is None
    stats[0].true_dice, stats[1].true_dice = 0.8, 0.4
    back = read_pseudo_label_table(write_pseudo_label_table(tmp_path / "t.csv", stats))
    assert back[0].true_dice == pytest.approx(0.8) and back[2].true_dice is None
    summary = summarize_pseudo_label_dice(back)
    assert summary["selected"] == {"n": 1, "median": pytest.approx(0.8), "mean": pytest.approx(0.8)}
    assert summary["unselected"]["n"] == 1


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        FinetuneConfig(ssft_stepz=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PseudoLabelConfig(reliability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not train.seed"):
        FinetuneConfig(train={"seed": 3})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        PseudoLabelConfig(qc=2.0)
    assert not FinetuneConfig(pseudo={"reliability": "none"}).ssft  # type: ignore[arg-type]
    assert FinetuneConfig().resolved_inference().roi_size == FinetuneConfig().train.patch_size
