"""Known-answer and property tests of the pure query scores (assft.metrics.scores, summaries)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from assft.errors import CheckpointError, ConfigError
from assft.query import QueryConfig, summarize_probs
from assft.inference.reducers import ChannelMoments
from assft.metrics.scores import (
    compute_asd,
    compute_bald,
    compute_confidence,
    compute_diversity,
    compute_foreground_mask,
    compute_gaussian_kl,
    compute_gradient_embedding,
    compute_knowledge_divergence,
    compute_otsu_threshold,
    compute_voxel_entropy,
)


def _moments(mean: float, var: float, channels: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((channels,), mean, dtype=torch.float64), torch.full((channels,), var, dtype=torch.float64)


def test_entropy_of_uniform_map_is_one_and_of_onehot_is_zero() -> None:
    for c in (2, 3, 5):
        assert torch.allclose(compute_voxel_entropy(torch.full((c, 4, 4, 4), 1.0 / c)), torch.ones(4, 4, 4))
    onehot = torch.zeros(3, 4, 4, 4)
    onehot[1] = 1.0
    assert torch.equal(compute_voxel_entropy(onehot), torch.zeros(4, 4, 4))


def test_entropy_rejects_single_channel() -> None:
    with pytest.raises(ConfigError, match="C >= 2"):
        compute_voxel_entropy(torch.ones(1, 2, 2, 2))


def test_kd_is_zero_for_equal_statistics_and_grows_with_shifts() -> None:
    source = {"a": _moments(0.5, 2.0), "b": _moments(-1.0, 0.5, channels=8)}
    assert compute_knowledge_divergence(source, source) == pytest.approx(0.0, abs=1e-12)
    kds = [compute_knowledge_divergence({"a": _moments(0.5 + shift, 2.0), "b": source["b"]}, source)
           for shift in (0.0, 0.5, 1.0, 2.0)]
    assert kds[0] == pytest.approx(0.0, abs=1e-12) and all(b > a for a, b in zip(kds, kds[1:], strict=False))
    var_kds = [compute_knowledge_divergence({"a": _moments(0.5, 2.0 * f), "b": source["b"]}, source)
               for f in (1.0, 2.0, 4.0)]
    assert var_kds[0] == pytest.approx(0.0, abs=1e-12) and var_kds[2] > var_kds[1] > 0
    # closed form: a mean shift d with equal variances gives d^2 / (2 var) per channel, averaged over 2 layers
    assert kds[2] == pytest.approx((1.0 / (2 * 2.0)) / 2)


def test_gaussian_kl_clamps_variances() -> None:
    kl = compute_gaussian_kl(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), eps=1e-5)
    assert torch.allclose(kl, torch.zeros(2, dtype=torch.float64))


def test_kd_reports_missing_or_mismatched_layers() -> None:
    source = {"a": _moments(0, 1)}
    with pytest.raises(CheckpointError, match="no target moments"):
        compute_knowledge_divergence({}, source)
    with pytest.raises(CheckpointError, match="channels"):
        compute_knowledge_divergence({"a": _moments(0, 1, channels=3)}, source)


def test_diversity_is_zero_for_a_duplicate_and_one_for_orthogonal() -> None:
    z = np.array([0.6, 0.8, 0.0])
    assert compute_diversity(z, np.stack([z, [0, 0, 1.0]])) == pytest.approx(0.0, abs=1e-12)
    assert compute_diversity(z, np.array([[0, 0, 1.0]])) == pytest.approx(1.0)
    assert compute_diversity(2 * z, z[None]) == pytest.approx(0.0, abs=1e-12)  # cosine: scale-free


def test_otsu_separates_two_modes_and_handles_constants() -> None:
    values = torch.cat([torch.full((900,), 0.05), torch.full((100,), 0.95)])
    tau = compute_otsu_threshold(values)
    assert 0.05 < tau < 0.95
    assert compute_otsu_threshold(torch.full((10,), 0.3)) == pytest.approx(0.3)


def test_foreground_mask_otsu_is_clipped_and_fixed_is_fixed() -> None:
    probs = torch.zeros(2, 4, 4, 4)
    probs[0] = 0.99
    probs[0, :2] = 0.97  # two tiny background modes only: Otsu lands near 0.02, clipped to 0.1 -> empty Omega
    probs[1] = 1 - probs[0]
    mask, tau = compute_foreground_mask(probs)
    assert tau == pytest.approx(0.1) and not mask.any()
    mask, tau = compute_foreground_mask(probs, method="fixed", fixed=0.02)
    assert tau == 0.02 and int(mask.sum()) == 32
    probs[0] = 1.0  # certain background everywhere: "none" still keeps every voxel (whole-volume ablation)
    probs[1] = 0.0
    mask, tau = compute_foreground_mask(probs, method="none")
    assert tau == 0.0 and bool(mask.all())


def _two_region(fg_probs: tuple[float, ...], bg_probs: tuple[float, ...], fg_slices: int = 2) -> torch.Tensor:
    probs = torch.empty(len(fg_probs), 8, 8, 8)
    probs[:] = torch.tensor(bg_probs).view(-1, 1, 1, 1)
    probs[:, :fg_slices] = torch.tensor(fg_probs).view(-1, 1, 1, 1)
    return probs


def test_asd_ranks_uncertain_foreground_above_uncertain_background() -> None:
    uncertain_fg = _two_region((0.02, 0.49, 0.49), (0.98, 0.01, 0.01))  # fg unsure which organ, bg certain
    uncertain_bg = _two_region((0.01, 0.98, 0.01), (0.70, 0.15, 0.15))  # fg certain, bg unsure
    asd_fg, asd_bg = compute_asd(uncertain_fg), compute_asd(uncertain_bg)
    assert asd_fg > 0.6 > 0.2 > asd_bg
    # whole-volume entropy ranks them the other way round: that is why ASD looks at the foreground only
    assert compute_voxel_entropy(uncertain_bg).mean() > compute_voxel_entropy(uncertain_fg).mean()


def test_asd_class_balanced_weighs_a_small_organ_like_a_large_one() -> None:
    probs = torch.empty(3, 10, 10, 10)
    probs[:] = torch.tensor([0.98, 0.01, 0.01]).view(3, 1, 1, 1)
    probs[:, :5] = torch.tensor([0.02, 0.97, 0.01]).view(3, 1, 1, 1)  # large, confident organ 1
    probs[:, 9, :2, :2] = torch.tensor([0.02, 0.30, 0.68]).view(3, 1, 1)  # small, uncertain organ 2
    h = compute_voxel_entropy(probs)
    h1, h2 = float(h[0, 0, 0]), float(h[9, 0, 0])
    assert compute_asd(probs, reduce="class_balanced") == pytest.approx((h1 + h2) / 2, rel=1e-5)
    assert compute_asd(probs, reduce="mean") == pytest.approx((500 * h1 + 4 * h2) / 504, rel=1e-5)


def test_asd_empty_foreground_uses_top_entropy_voxels() -> None:
    probs = torch.empty(2, 10, 10, 10)
    probs[0], probs[1] = 0.99, 0.01
    probs[0, 0, 0, :5], probs[1, 0, 0, :5] = 0.5, 0.5  # 5 maximally uncertain voxels, still not foreground
    mask, _ = compute_foreground_mask(probs, method="fixed", fixed=0.9)
    assert not mask.any()
    assert compute_asd(probs, mask=mask, top_fraction=0.005) == pytest.approx(1.0)  # top 5 of 1000 voxels


def test_confidence_is_mean_max_probability_over_foreground() -> None:
    probs = _two_region((0.1, 0.6, 0.3), (0.9, 0.05, 0.05))
    mask, _ = compute_foreground_mask(probs)
    assert compute_confidence(probs, mask) == pytest.approx(0.6)
    assert compute_confidence(probs) == pytest.approx((2 * 0.6 + 6 * 0.9) / 8)


def test_bald_is_zero_when_samples_agree_and_positive_when_they_disagree() -> None:
    p = torch.softmax(torch.randn(3, 4, 4, 4), 0)
    assert torch.allclose(compute_bald(p.expand(7, -1, -1, -1, -1)), torch.zeros(4, 4, 4), atol=1e-6)
    a, b = torch.zeros(2, 1), torch.zeros(2, 1)
    a[0], b[1] = 1.0, 1.0  # two confident samples that disagree: MI = log 2
    assert float(compute_bald(torch.stack([a, b]))[0]) == pytest.approx(math.log(2), rel=1e-6)


def test_gradient_embedding_known_answer() -> None:
    probs = torch.tensor([0.7, 0.3]).view(1, 2, 1, 1, 1)
    feats = torch.tensor([2.0, 3.0]).view(1, 2, 1, 1, 1)
    expected = torch.tensor([[-0.6, -0.9], [0.6, 0.9]], dtype=torch.float64)  # (p - onehot) x features
    assert torch.allclose(compute_gradient_embedding(probs, feats), expected)
    onehot = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1, 1).expand(1, 2, 4, 4, 4)
    assert torch.equal(compute_gradient_embedding(onehot, torch.ones(1, 5, 2, 2, 2)), torch.zeros(2, 5).double())


def test_running_moments_pool_by_the_law_of_total_variance() -> None:
    rng = np.random.default_rng(0)
    groups = [rng.normal(loc, scale, size=(n, 3)) for loc, scale, n in ((0, 1, 50), (3, 2, 200), (-1, 0.5, 7))]
    acc = ChannelMoments()
    for g in groups:
        acc.add_moments(len(g), torch.from_numpy(g.mean(0)), torch.from_numpy(g.var(0)))
    mean, var = acc.result()
    allv = np.concatenate(groups)
    assert np.allclose(mean.numpy(), allv.mean(0)) and np.allclose(var.numpy(), allv.var(0))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_classes=st.integers(2, 5), concentration=st.sampled_from([0.01, 0.3, 1.0, 50.0]),
       hard=st.booleans())
def test_scores_are_finite_on_random_probability_maps(seed: int, n_classes: int, concentration: float,
                                                      hard: bool) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([concentration] * n_classes, size=(6, 5, 4)).transpose(3, 0, 1, 2)
    if hard:
        probs = np.eye(n_classes)[probs.argmax(0)].transpose(3, 0, 1, 2)  # exact zeros and ones
    probs_t = torch.from_numpy(probs.astype(np.float32))
    stats = summarize_probs(probs_t, QueryConfig())
    assert all(math.isfinite(v) for v in stats.values())
    assert 0.0 <= stats["asd"] <= 1.0 and 0.0 <= stats["entropy"] <= 1.0 and 0.0 < stats["confidence"] <= 1.0 + 1e-6
    assert float(compute_bald(torch.stack([probs_t, probs_t.flip(1)])).min()) >= 0.0


@pytest.mark.parametrize("n_classes", [2, 3, 5, 12])
def test_foreground_class_masks_match_argmax(n_classes: int) -> None:
    from assft.metrics.scores import _foreground_class_masks

    probs = torch.softmax(3 * torch.randn(n_classes, 6, 7, 5, generator=torch.Generator().manual_seed(0)), 0)
    mask = probs[0] < 0.5
    reference = probs[1:].argmax(0)
    masks = _foreground_class_masks(probs, mask)
    assert len(masks) == n_classes - 1
    assert all(torch.equal(m, mask & (reference == c)) for c, m in enumerate(masks))
    tied = _foreground_class_masks(torch.full((n_classes, 2, 2, 2), 1.0 / n_classes), torch.ones(2, 2, 2, dtype=bool))
    assert tied[0].all() and not any(m.any() for m in tied[1:])  # ties go to the first class, as argmax


def test_cosine_distances_known_answers_and_chunking() -> None:
    from assft.metrics.scores import compute_cosine_distances, unit_rows

    z = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    ref = np.array([[5.0, 0.0]])
    assert compute_cosine_distances(z, ref).tolist() == [0.0, 1.0, 2.0]  # same, orthogonal, opposite
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(9, 5))
    whole = compute_cosine_distances(a, b)
    assert np.array_equal(compute_cosine_distances(a, b, chunk=2), whole)  # chunks only bound memory
    fast = compute_cosine_distances(unit_rows(a, np.float32), b, dtype=np.float32, unit=True)
    assert np.allclose(fast, whole, atol=1e-6)


def test_streaming_bald_equals_bald_on_the_stacked_samples() -> None:
    from assft.metrics.scores import compute_bald_from_means

    p = torch.softmax(torch.randn(6, 3, 2, 4, 4, generator=torch.Generator().manual_seed(0)), dim=1)  # (T, C, ...)
    mean_h = -torch.special.xlogy(p, p).sum(1).mean(0)
    assert torch.allclose(compute_bald_from_means(p.mean(0), mean_h, class_dim=0), compute_bald(p), atol=1e-7)
