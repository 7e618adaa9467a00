"""Known-answer tests for assft.metrics (segmentation metrics, budget curves, paired statistics)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from assft.errors import AssftError, ConfigError, DataError
from assft.metrics import (
    bootstrap_ci,
    compute_aubc,
    compute_case_metrics,
    compute_gap_closed,
    interpolate_at_budget,
    paired_test,
    summarize_metrics,
    win_matrix,
)

SHAPE = (16, 16, 16)


def cube(start: tuple[int, int, int], size: int = 4, label: int = 1, base: np.ndarray | None = None) -> np.ndarray:
    """A (16, 16, 16) int label map with a size^3 cube of ``label`` at ``start`` (drawn into ``base`` if given)."""
    label_map = np.zeros(SHAPE, dtype=np.int64) if base is None else base.copy()
    d, h, w = start
    label_map[d : d + size, h : h + size, w : w + size] = label
    return label_map


A = cube((4, 4, 4))
B_OFFSET_2 = cube((6, 4, 4))  # shifted by 2 voxels along D: overlap 2*4*4 = 32 voxels


# ---------------------------------------------------------------- segmentation


def test_identical_maps_are_perfect() -> None:
    metrics = compute_case_metrics(A, A, 2)
    assert metrics["dice"] == {"1": 1.0}
    assert metrics["hd95"] == {"1": 0.0}
    assert metrics["nsd"] == {"1": 1.0}
    assert (metrics["mean_dice"], metrics["mean_hd95"], metrics["mean_nsd"]) == (1.0, 0.0, 1.0)


def test_disjoint_maps_have_zero_dice() -> None:
    far = cube((10, 10, 10))
    metrics = compute_case_metrics(A, far, 2)
    assert metrics["dice"]["1"] == 0.0
    assert metrics["nsd"]["1"] == 0.0
    assert metrics["hd95"]["1"] > 0.0


def test_offset_cubes_known_values() -> None:
    metrics = compute_case_metrics(B_OFFSET_2, A, 2)
    assert metrics["dice"]["1"] == pytest.approx(2 * 32 / (64 + 64))  # 0.5
    assert metrics["hd95"]["1"] == pytest.approx(2.0)
    # Boundary = cube minus its 2^3 interior = 56 voxels each; 40 per cube lie within 1 mm of the other boundary.
    assert metrics["nsd"]["1"] == pytest.approx(80 / 112)


def test_dice_only_skips_the_surface_metrics() -> None:
    metrics = compute_case_metrics(B_OFFSET_2, A, 2, dice_only=True)
    assert metrics == {"dice": {"1": pytest.approx(0.5)}, "mean_dice": pytest.approx(0.5)}


def test_nested_overlap_exact_fraction() -> None:
    half = np.zeros(SHAPE, dtype=np.int64)
    half[4:6, 4:8, 4:8] = 1  # 32 voxels inside the 64-voxel cube
    assert compute_case_metrics(half, A, 2)["dice"]["1"] == pytest.approx(2 * 32 / (32 + 64))


def test_spacing_scales_hd95_and_nsd() -> None:
    iso2 = compute_case_metrics(B_OFFSET_2, A, 2, spacing=(2.0, 2.0, 2.0))
    assert iso2["hd95"]["1"] == pytest.approx(4.0)
    assert iso2["nsd"]["1"] == pytest.approx(48 / 112)  # only exactly coinciding boundary voxels remain
    assert iso2["dice"]["1"] == pytest.approx(0.5)
    assert compute_case_metrics(B_OFFSET_2, A, 2, spacing=(2.0, 1.0, 1.0))["hd95"]["1"] == pytest.approx(4.0)
    assert compute_case_metrics(B_OFFSET_2, A, 2, spacing=(1.0, 2.0, 2.0))["hd95"]["1"] == pytest.approx(2.0)


def test_nsd_tolerance_widens_agreement() -> None:
    assert compute_case_metrics(B_OFFSET_2, A, 2, nsd_tolerance_mm=2.0)["nsd"]["1"] == pytest.approx(1.0)


def test_multiclass_names_and_means() -> None:
    target = cube((8, 8, 8), label=2, base=A)
    pred = cube((8, 8, 8), label=2, base=B_OFFSET_2)
    metrics = compute_case_metrics(pred, target, 3, class_names={0: "background", 1: "anterior", 2: "posterior"})
    assert list(metrics["dice"]) == ["anterior", "posterior"]
    assert metrics["dice"]["posterior"] == 1.0
    assert metrics["mean_dice"] == pytest.approx((metrics["dice"]["anterior"] + 1.0) / 2)


def test_accepts_torch_tensors() -> None:
    metrics = compute_case_metrics(torch.as_tensor(B_OFFSET_2), torch.as_tensor(A).to(torch.uint8), 2)
    assert metrics["dice"]["1"] == pytest.approx(0.5)


def test_empty_policy_both_empty() -> None:
    empty = np.zeros(SHAPE, dtype=np.int64)
    metrics = compute_case_metrics(empty, empty, 2)
    assert (metrics["dice"]["1"], metrics["nsd"]["1"], metrics["hd95"]["1"]) == (1.0, 1.0, 0.0)


@pytest.mark.parametrize("which_empty", ["pred", "target"])
def test_empty_policy_one_empty_is_finite_penalty(which_empty: str) -> None:
    empty = np.zeros(SHAPE, dtype=np.int64)
    pred, target = (empty, A) if which_empty == "pred" else (A, empty)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MONAI's empty-class warnings must not be triggered
        metrics = compute_case_metrics(pred, target, 2, spacing=(1.0, 2.0, 3.0))
    diagonal = math.sqrt(16**2 + 32**2 + 48**2)
    assert (metrics["dice"]["1"], metrics["nsd"]["1"]) == (0.0, 0.0)
    assert metrics["hd95"]["1"] == pytest.approx(diagonal)
    assert all(math.isfinite(v) for key in ("dice", "hd95", "nsd") for v in metrics[key].values())


def test_class_absent_in_both_does_not_nan_the_mean() -> None:
    metrics = compute_case_metrics(A, A, 3)  # class 2 absent everywhere
    assert metrics["dice"] == {"1": 1.0, "2": 1.0}
    assert metrics["mean_hd95"] == 0.0


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(DataError, match=r"\(16, 16, 16\).*\(16, 16, 8\)"):
        compute_case_metrics(A, A[:, :, :8], 2)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"num_classes": 1}, ConfigError),
        ({"num_classes": 2, "spacing": (1.0, 1.0)}, ConfigError),
        ({"num_classes": 2, "spacing": (1.0, 0.0, 1.0)}, ConfigError),
        ({"num_classes": 2, "nsd_tolerance_mm": -1.0}, ConfigError),
        ({"num_classes": 2, "class_names": {2: "x"}}, ConfigError),
    ],
)
def test_invalid_arguments(kwargs: dict, error: type[AssftError]) -> None:
    with pytest.raises(error):
        compute_case_metrics(A, A, **kwargs)


def test_invalid_labels() -> None:
    with pytest.raises(DataError, match="label values"):
        compute_case_metrics(A * 3, A, 2)
    with pytest.raises(DataError, match="non-integer"):
        compute_case_metrics(A * 0.5, A, 2)
    with pytest.raises(DataError, match="3D"):
        compute_case_metrics(A[None], A[None], 2)


def test_summarize_metrics() -> None:
    per_case = [compute_case_metrics(A, A, 2), compute_case_metrics(B_OFFSET_2, A, 2),
                compute_case_metrics(A, A, 2)]
    summary = summarize_metrics(per_case)
    assert summary["n_cases"] == 3
    assert summary["dice"]["1"]["mean"] == pytest.approx(2.5 / 3)
    assert summary["dice"]["1"]["median"] == 1.0
    assert summary["dice"]["1"]["std"] == pytest.approx(np.std([1.0, 0.5, 1.0]))
    assert summary["mean_hd95"]["mean"] == pytest.approx(2.0 / 3)
    with pytest.raises(DataError):
        summarize_metrics([])
    with pytest.raises(DataError, match="classes"):
        summarize_metrics([per_case[0], compute_case_metrics(A, A, 3)])


# ---------------------------------------------------------------- curves


def test_aubc_constant_curve() -> None:
    assert compute_aubc([0, 10, 20, 40], [0.7] * 4) == pytest.approx(0.7)


def test_aubc_linear_ramp_and_unsorted() -> None:
    assert compute_aubc([0, 5, 10], [0.0, 0.5, 1.0]) == pytest.approx(0.5)
    assert compute_aubc([10, 0, 5], [1.0, 0.0, 0.5]) == pytest.approx(0.5)


def test_aubc_known_trapezoid() -> None:
    # Segments: [0,1] mean 0.25, [1,3] mean 0.75 -> area 0.25 + 1.5 = 1.75 over range 3.
    assert compute_aubc([0, 1, 3], [0.0, 0.5, 1.0]) == pytest.approx(1.75 / 3)


def test_aubc_restricted_range() -> None:
    assert compute_aubc([0, 10], [0.0, 1.0], min_budget=5) == pytest.approx(0.75)
    assert compute_aubc([0, 10], [0.0, 1.0], max_budget=5) == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="extrapolate"):
        compute_aubc([0, 10], [0.0, 1.0], max_budget=20)
    with pytest.raises(ConfigError):
        compute_aubc([0, 10], [0.0, 1.0], min_budget=5, max_budget=5)


@pytest.mark.parametrize(
    ("budgets", "scores", "match"),
    [
        ([0, 1, 2], [0.1, 0.2], "same length"),
        ([0], [0.1], "at least 2"),
        ([0, 1], [0.1, float("nan")], "NaN"),
        ([0, 1, 1], [0.1, 0.2, 0.3], "repeated"),
    ],
)
def test_aubc_rejects_bad_curves(budgets: list, scores: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        compute_aubc(budgets, scores)


def test_interpolate_at_budget() -> None:
    assert interpolate_at_budget([20, 0, 10], [0.9, 0.1, 0.5], 5) == pytest.approx(0.3)
    assert interpolate_at_budget([0, 10], [0.1, 0.5], 10) == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        interpolate_at_budget([0, 10], [0.1, 0.5], 11)


def test_gap_closed() -> None:
    assert compute_gap_closed(0.7, 0.5, 0.9) == pytest.approx(0.5)
    assert compute_gap_closed(0.5, 0.5, 0.9) == 0.0
    assert compute_gap_closed(0.9, 0.5, 0.9) == pytest.approx(1.0)
    with pytest.raises(DataError, match="equal"):
        compute_gap_closed(0.7, 0.5, 0.5)
    with pytest.raises(DataError):
        compute_gap_closed(float("nan"), 0.5, 0.9)


# ---------------------------------------------------------------- stats

SCORES = [0.61, 0.64, 0.58, 0.70, 0.66, 0.59, 0.62, 0.68, 0.63, 0.65]
SHIFTED = [s + 0.05 + 0.001 * i for i, s in enumerate(SCORES)]


@pytest.mark.parametrize("method", ["wilcoxon", "ttest"])
def test_paired_test_identical_is_p1(method: str) -> None:
    result = paired_test(SCORES, SCORES, method=method)
    assert result["p_value"] == 1.0
    assert result["mean_diff"] == 0.0
    assert result["n"] == 10


def test_paired_test_shifted_wilcoxon_exact() -> None:
    result = paired_test(SHIFTED, SCORES)
    assert result["p_value"] == pytest.approx(2 / 2**10)  # exact: all 10 differences positive
    assert result["mean_diff"] == pytest.approx(0.05 + 0.001 * 4.5)


def test_paired_test_shifted_ttest() -> None:
    result = paired_test(SHIFTED, SCORES, method="ttest")
    assert result["p_value"] < 1e-6
    assert result["statistic"] > 0
    constant = paired_test([s + 0.1 for s in SCORES], SCORES, method="ttest")
    assert (constant["statistic"], constant["p_value"]) == (math.inf, 0.0)


def test_paired_test_edge_cases() -> None:
    single = paired_test([0.5], [0.4])
    assert math.isnan(single["p_value"]) and single["n"] == 1 and "at least 2" in single["note"]
    with pytest.raises(DataError, match="equal lengths"):
        paired_test([0.1, 0.2], [0.1])
    with pytest.raises(DataError, match="NaN"):
        paired_test([0.1, float("nan")], [0.1, 0.2])
    with pytest.raises(ConfigError, match="unknown paired test"):
        paired_test([0.1, 0.2], [0.1, 0.2], method="sign")  # type: ignore[arg-type]


def test_win_matrix_antisymmetric_and_counts() -> None:
    worse = [s - 0.05 - 0.002 * i for i, s in enumerate(SCORES)]
    result = win_matrix({"dkd_asd": SHIFTED, "entropy": SCORES, "random": worse, "twin": SCORES})
    matrix = np.array(result["matrix"])
    p_values = np.array(result["p_values"])
    assert result["strategies"] == ["dkd_asd", "entropy", "random", "twin"]
    assert np.array_equal(matrix, -matrix.T)
    assert np.array_equal(p_values, p_values.T)
    assert matrix.tolist() == [[0, 1, 1, 1], [-1, 0, 1, 0], [-1, -1, 0, -1], [-1, 0, 1, 0]]
    assert result["wins"] == {"dkd_asd": 3, "entropy": 1, "random": 0, "twin": 1}
    assert result["losses"] == {"dkd_asd": 0, "entropy": 1, "random": 3, "twin": 1}
    assert p_values[1, 3] == 1.0


def test_win_matrix_lower_is_better_flips_signs() -> None:
    higher = win_matrix({"a": SHIFTED, "b": SCORES})["matrix"]
    lower = win_matrix({"a": SHIFTED, "b": SCORES}, higher_is_better=False)["matrix"]
    assert np.array_equal(np.array(lower), -np.array(higher))


def test_win_matrix_validation() -> None:
    with pytest.raises(DataError, match="different numbers"):
        win_matrix({"a": [0.1, 0.2], "b": [0.1]})
    with pytest.raises(ConfigError):
        win_matrix({"a": [0.1, 0.2], "b": [0.1, 0.3]}, alpha=1.5)


def test_bootstrap_ci() -> None:
    low, high = bootstrap_ci(SCORES, n_boot=2000, seed=0)
    assert low <= float(np.mean(SCORES)) <= high
    assert (low, high) == bootstrap_ci(SCORES, n_boot=2000, seed=0)
    assert min(SCORES) <= low < high <= max(SCORES)
    assert bootstrap_ci([0.4, 0.4, 0.4]) == (pytest.approx(0.4), pytest.approx(0.4))
    assert bootstrap_ci([0.3]) == (pytest.approx(0.3), pytest.approx(0.3))
    with pytest.raises(DataError):
        bootstrap_ci([])
    with pytest.raises(ConfigError):
        bootstrap_ci(SCORES, n_boot=0)
