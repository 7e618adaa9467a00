"""The one-pass scorer, KD sources and fingerprints, run_query end to end on tiny phantoms and nets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from assft.config import InferenceConfig, ModelConfig
from assft.data import load_dataset
from assft.data.synthetic import PHANTOM_LABELS
from assft.errors import CheckpointError, ConfigError
from assft.inference import prepare_model, run_pass
from assft.models import build_model, make_checkpoint, norm_layers, save_checkpoint
from assft.metrics.scores import compute_bald
from assft.models.source_stats import attach_fingerprint, load_fingerprint, resolve_source_stats, save_fingerprint
from assft.query import Need, QueryConfig, iter_summaries, load_query_model, run_query, score_cases
from assft.inference.reducers import Routing
from assft.pretrain.fingerprint import compute_fingerprint
from assft.inference.predictors import ScoringPredictor
from assft.utils.timing import timing_record

TINY = {"channels": (4, 8, 16), "strides": (2, 2)}
META = {"train_config": {"patch_size": [16, 16, 16]}}


@pytest.fixture()
def inference() -> InferenceConfig:
    return InferenceConfig(roi_size=(16, 16, 16), sw_batch_size=1, channels_last=False)


def _checkpoint(path: Path, seed: int = 0, kind: str = "supervised", **model_kwargs) -> Path:
    config = ModelConfig(out_channels=5, params={**TINY, **model_kwargs.pop("params", {})}, **model_kwargs)
    torch.manual_seed(seed)
    model = build_model(config)
    return save_checkpoint(path, make_checkpoint(model, config, PHANTOM_LABELS, kind=kind, metadata=META))


def _count_forwards(model: torch.nn.Module) -> list[int]:
    """Forward calls started (a pre-hook: θ0's hooks-only forwards stop before the model's output)."""
    calls = [0]
    model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_one_pass_yields_everything_needed(phantom_dir: Path, tmp_path: Path, inference: InferenceConfig) -> None:
    qm = load_query_model(_checkpoint(tmp_path / "m.pt"))
    calls = _count_forwards(qm.model)
    cases = load_dataset(phantom_dir).cases[:2]
    stats, origin = resolve_source_stats(qm.model, qm.checkpoint)
    head_norm = "model.2.0.adn.N"  # the head's BatchNorm: replaced by fine-tuning, so not a source statistic
    assert origin == "running_stats" and set(stats) == set(norm_layers(qm.model)) - {head_norm}
    needs = {Need.PROBS, Need.EMBEDDING, Need.NORM_STATS, Need.GRAD_EMBEDDING}
    summaries = score_cases(cases, qm, needs, QueryConfig(), inference, source_stats=stats)
    assert calls[0] == 1  # one window per 16^3 volume, both volumes' windows in one forward (BADGE's gradient too)
    s = summaries[0]
    assert s.kd is not None and s.kd >= 0 and s.asd is not None and s.confidence is not None
    assert s.embedding is not None and s.embedding.shape == (16,) and np.isclose(np.linalg.norm(s.embedding), 1)
    assert s.grad_embedding is not None and s.grad_embedding.shape == (5 * 8,)  # C x head-input channels
    assert s.bald is None and 0 < s.foreground_threshold < 1 and s.nbytes() < 1000
    only = score_cases(cases[:1], qm, {Need.EMBEDDING, Need.GRAD_EMBEDDING}, QueryConfig(), inference)[0]
    assert only.asd is None and only.kd is None and np.allclose(only.embedding, s.embedding, atol=1e-6)
    np.testing.assert_allclose(only.grad_embedding, s.grad_embedding, rtol=1e-5, atol=1e-7)  # routed per volume


def test_scorer_streams_one_case_at_a_time(phantom_dir: Path, tmp_path: Path, inference: InferenceConfig) -> None:
    qm = load_query_model(_checkpoint(tmp_path / "m.pt"))
    cases = load_dataset(phantom_dir).cases

    def pool(ahead: int):
        yield from cases[:ahead]
        raise RuntimeError("the scorer read ahead")

    # one volume per forward call: nothing is read ahead; B volumes per call: at most B (memory stays bounded)
    for volumes in (1, 2):
        config = inference.model_copy(update={"batch_volumes": volumes})
        with torch.inference_mode():
            first = next(iter_summaries(pool(volumes), qm, {Need.PROBS}, QueryConfig(), config))
        assert first.case_id == cases[0].case_id


def test_kd_is_zero_against_its_own_moments_and_grows_under_shift(phantom_dir: Path, tmp_path: Path,
                                                                   inference: InferenceConfig) -> None:
    from assft.data import load_case

    qm = load_query_model(_checkpoint(tmp_path / "m.pt"))
    loaded = load_case(load_dataset(phantom_dir).cases[0], with_label=False)
    model = prepare_model(qm.model, inference)
    own = run_pass(model, loaded.image, inference, norm_layers=norm_layers(model)).norm_moments
    kd = [score_cases([_shifted(loaded, scale, shift)], qm, {Need.NORM_STATS}, QueryConfig(), inference,
                      source_stats=own)[0].kd for scale, shift in ((1, 0), (1, 1), (3, 2))]
    assert kd[0] == pytest.approx(0.0, abs=1e-6) and kd[2] > kd[1] > 1e-3


def _shifted(loaded, scale: float, shift: float):
    from dataclasses import replace

    return replace(loaded, image=loaded.image * scale + shift)


@pytest.mark.parametrize(("volumes", "calls_expected"), [(1, 2), (4, 1)])  # 2 volumes: 2 calls, or 1 batched call
def test_theta_differs_from_theta0(phantom_dir: Path, tmp_path: Path, inference: InferenceConfig, volumes: int,
                                   calls_expected: int) -> None:
    inference = inference.model_copy(update={"batch_volumes": volumes})
    theta0 = load_query_model(_checkpoint(tmp_path / "theta0.pt", seed=0))
    theta = load_query_model(_checkpoint(tmp_path / "theta.pt", seed=1))
    calls0, calls = _count_forwards(theta0.model), _count_forwards(theta.model)
    cases = load_dataset(phantom_dir).cases[:2]
    stats, _ = resolve_source_stats(theta0.model, theta0.checkpoint)
    needs = {Need.PROBS, Need.EMBEDDING, Need.NORM_STATS}
    with timing_record() as timings:
        both = score_cases(cases, theta, needs, QueryConfig(), inference, pretrained=theta0, source_stats=stats)
    assert calls0[0] == calls[0] == calls_expected and timings["pass_pretrained_s"] > 0 and timings["cases"] == 2
    kd_only = score_cases(cases, theta0, {Need.NORM_STATS}, QueryConfig(), inference, source_stats=stats)
    emb_only = score_cases(cases, theta, {Need.EMBEDDING, Need.PROBS}, QueryConfig(), inference)
    assert [s.kd for s in both] == pytest.approx([s.kd for s in kd_only])  # KD always from θ0
    assert np.allclose(both[0].embedding, emb_only[0].embedding) and both[0].asd == pytest.approx(emb_only[0].asd)


def test_theta0_with_its_own_preprocessing_sees_its_own_images(phantom_dir: Path, tmp_path: Path,
                                                               inference: InferenceConfig) -> None:
    """When θ0 was trained with another normalisation, its KD pass reads each volume under θ0's preprocessing."""
    from assft.config import PreprocessConfig
    config = ModelConfig(out_channels=5, params=TINY)
    torch.manual_seed(0)
    net = build_model(config)
    theta0 = load_query_model(save_checkpoint(tmp_path / "theta0.pt", make_checkpoint(
        net, config, PHANTOM_LABELS, metadata=META, preprocess=PreprocessConfig(normalization="percentile"))))
    theta = load_query_model(_checkpoint(tmp_path / "theta.pt", seed=1))  # z-score
    cases = load_dataset(phantom_dir).cases[:3]
    stats, _ = resolve_source_stats(theta0.model, theta0.checkpoint)
    both = score_cases(cases, theta, {Need.PROBS, Need.NORM_STATS}, QueryConfig(), inference, pretrained=theta0,
                       source_stats=stats)
    alone = score_cases(cases, theta0, {Need.NORM_STATS}, QueryConfig(), inference, source_stats=stats)
    assert [s.kd for s in both] == pytest.approx([s.kd for s in alone], rel=1e-6)
    theta0_zscore = load_query_model(save_checkpoint(tmp_path / "theta0_z.pt", make_checkpoint(
        net, config, PHANTOM_LABELS, metadata=META)))  # θ0's weights fed θ's z-scored images: another KD
    zscored = score_cases(cases, theta0_zscore, {Need.NORM_STATS}, QueryConfig(), inference, source_stats=stats)
    assert all(s.asd is not None for s in both) and [s.kd for s in zscored] != pytest.approx([s.kd for s in alone])


def test_bald_predictor_reduces_mc_samples_per_window(tiny_model_config: ModelConfig) -> None:
    model = build_model(tiny_model_config).eval()
    window = torch.randn(2, 1, 16, 16, 16)
    predictor = ScoringPredictor(model, channels_last=False, routing=Routing(), mc_samples=4, seed=3)
    torch.manual_seed(11)
    caller_state = torch.get_rng_state()
    with torch.inference_mode():
        streamed = predictor(window)
        assert not any(m.training for m in model.modules())  # dropout back in eval after each window
        assert torch.equal(torch.get_rng_state(), caller_state)  # the masks came from the predictor's own generator
        torch.manual_seed(3)
        from assft.models import enable_mc_dropout

        enable_mc_dropout(model)
        samples = torch.stack([torch.softmax(model(window), 1) for _ in range(4)])  # (T, B, C, ...)
    expected = compute_bald(samples.transpose(1, 2))  # (T, C, B, ...) -> (B, ...)
    assert streamed.shape == (2, 1, 16, 16, 16) and torch.allclose(streamed[:, 0], expected, atol=1e-5)


def test_bald_scores_are_seeded(phantom_dir: Path, tmp_path: Path, inference: InferenceConfig) -> None:
    """Same seed, same BALD scores (whatever the global RNG); another seed draws other masks."""
    qm = load_query_model(_checkpoint(tmp_path / "m.pt"))
    cases = load_dataset(phantom_dir).cases[:3]
    config = QueryConfig(strategy="bald", mc_samples=3)
    runs = []
    for seed, global_seed in ((0, 1), (0, 2), (1, 1)):
        torch.manual_seed(global_seed)
        runs.append([s.bald for s in score_cases(cases, qm, {Need.MC_PROBS}, config, inference, seed=seed)])
    assert runs[0] == runs[1] and runs[0] != runs[2] and all(b > 0 for b in runs[0])


def test_bald_without_dropout_is_a_clear_error(tiny_model_config: ModelConfig) -> None:
    model = build_model(tiny_model_config.model_copy(update={"dropout": 0.0}))
    with pytest.raises(ConfigError, match="no dropout layer"):
        ScoringPredictor(model, channels_last=False, routing=Routing(), mc_samples=4)


def test_run_query_assft_with_labeled_ids_and_labeled_dir(phantom_dir: Path, tmp_path: Path,
                                                          inference: InferenceConfig) -> None:
    ckpt = _checkpoint(tmp_path / "m.pt")
    result = run_query(ckpt, phantom_dir, QueryConfig(budget="50%"), labeled_ids=["phantom_000"], seed=0,
                       inference=inference)
    assert result.budget == 3 and len(result.selected) == 3 and "phantom_000" not in result.selection.ranking
    assert result.labeled_ids == ["phantom_000"] and result.provenance["kd_source"] == "running_stats"
    rows = result.rows()
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5] and all(r["Q"] is not None for r in rows)
    again = run_query(ckpt, phantom_dir, QueryConfig(budget=3), labeled_ids=["phantom_000"], seed=0,
                      inference=inference)
    assert again.selected == result.selected
    spec = load_dataset(phantom_dir)
    with_dir = run_query(ckpt, spec.subset(spec.case_ids[1:]), QueryConfig(strategy="coreset", budget=2),
                         labeled=spec.subset(spec.case_ids[:1]), inference=inference)
    assert with_dir.provenance["n_reference"] == 1 and len(with_dir.selected) == 2


def test_ssl_only_model_cold_start_and_probability_strategies(phantom_dir: Path, tmp_path: Path,
                                                              inference: InferenceConfig) -> None:
    ckpt = _checkpoint(tmp_path / "ssl.pt", kind="ssl-only")
    result = run_query(ckpt, phantom_dir, QueryConfig(budget=2), inference=inference)
    assert result.selection.notes["cold_start"] is True
    assert all(s.asd is None for s in result.summaries)  # no probabilities computed
    q, dkd = result.selection.columns["Q"], result.selection.columns["DKD"]
    assert all(q[c] == dkd[c] for c in q)
    for name in ("entropy", "bald", "badge", "fg-random", "asd"):
        with pytest.raises(ConfigError, match="SSL-only"):
            run_query(ckpt, phantom_dir, QueryConfig(strategy=name, budget=2), inference=inference)
    with pytest.raises(ConfigError, match="cold_start is 'never'"):
        run_query(ckpt, phantom_dir, QueryConfig(budget=2, cold_start="never"), inference=inference)


def test_kd_without_running_stats_needs_a_fingerprint(phantom_dir: Path, tmp_path: Path,
                                                      inference: InferenceConfig) -> None:
    ckpt = _checkpoint(tmp_path / "in.pt", params={"norm": "instance"})
    with pytest.raises(CheckpointError, match="assft fingerprint --model"):
        run_query(ckpt, phantom_dir, QueryConfig(strategy="kd", budget=2, kd={"source": "fingerprint"}),
                  inference=inference)
    qm = load_query_model(ckpt)
    spec = load_dataset(phantom_dir)
    fingerprint = compute_fingerprint(qm.model, spec.cases[:3], qm.checkpoint.preprocess, inference,
                                      model_config=qm.checkpoint.model_config)
    assert set(fingerprint) == set(norm_layers(qm.model))  # InstanceNorm without affine: no head keys
    save_fingerprint(tmp_path / "fp.json", fingerprint)
    assert load_fingerprint(tmp_path / "fp.json") == fingerprint
    pretrain_fp = pytest.importorskip("assft.pretrain.fingerprint")  # one file format with `assft pretrain`
    assert pretrain_fp.load_fingerprint(tmp_path / "fp.json") == fingerprint
    layer = next(iter(fingerprint))
    assert len(fingerprint[layer]["mean"]) == len(fingerprint[layer]["var"]) == 4
    attached = attach_fingerprint(ckpt, fingerprint, tmp_path / "in_fp.pt")
    result = run_query(attached, phantom_dir, QueryConfig(strategy="kd", budget=2), inference=inference)
    assert result.provenance["kd_source"] == "fingerprint:checkpoint"
    assert all(s.kd is not None and np.isfinite(s.kd) for s in result.summaries)
    with pytest.raises(CheckpointError, match="unknown to the model"):
        run_query(ckpt, phantom_dir, QueryConfig(strategy="kd", budget=2), inference=inference,
                  fingerprint={"no.such.layer": {"mean": [0.0], "var": [1.0]}})


def test_theta0_moment_cache_skips_the_theta0_pass(phantom_dir: Path, tmp_path: Path,
                                                   inference: InferenceConfig) -> None:
    """A campaign's second query reuses θ0's moments: no θ0 forward, bit-identical KD and the same selection."""
    theta0_path = _checkpoint(tmp_path / "theta0.pt", seed=0)
    theta = load_query_model(_checkpoint(tmp_path / "theta.pt", seed=1))
    cache = tmp_path / "theta0_moments.json"
    config = QueryConfig(strategy="assft", budget=2)
    first = run_query(theta, phantom_dir, config, pretrained=theta0_path, inference=inference, theta0_cache=cache)
    assert cache.exists() and first.timings["theta0_cached"] == 0 and first.timings["pass_pretrained_s"] > 0

    theta0 = load_query_model(theta0_path)
    calls0 = _count_forwards(theta0.model)
    second = run_query(theta, phantom_dir, config, pretrained=theta0, inference=inference, theta0_cache=cache)
    n = len(second.summaries)
    assert calls0[0] == 0 and second.timings["theta0_cached"] == n
    assert [s.kd for s in second.summaries] == [s.kd for s in first.summaries]  # exact: float64 survives JSON
    assert second.selected == first.selected

    # another θ0 (or window) has another key: the cache is ignored and rewritten, never misused
    other = run_query(theta, phantom_dir, config, pretrained=_checkpoint(tmp_path / "other.pt", seed=2),
                      inference=inference, theta0_cache=cache)
    assert other.timings["theta0_cached"] == 0 and [s.kd for s in other.summaries] != [s.kd for s in first.summaries]
    cache.write_text("{not json")  # a corrupt cache is only a miss
    again = run_query(theta, phantom_dir, config, pretrained=theta0_path, inference=inference, theta0_cache=cache)
    assert again.timings["theta0_cached"] == 0 and [s.kd for s in again.summaries] == [s.kd for s in first.summaries]


def test_moment_cache_context_writes_only_new_volumes_on_a_clean_exit(tmp_path: Path) -> None:
    from assft.query.moment_cache import load_moment_cache, open_moment_cache

    path = tmp_path / "theta0.json"
    one = {"layer": (torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([0.5, 0.25], dtype=torch.float64))}
    with open_moment_cache(path, "k") as moments:
        assert moments == {}
    assert not path.exists()  # nothing added: nothing written
    with open_moment_cache(path, "k") as moments:
        moments["a"] = one
    assert torch.equal(load_moment_cache(path, "k")["a"]["layer"][1], one["layer"][1])
    with pytest.raises(RuntimeError), open_moment_cache(path, "k") as moments:
        moments["b"] = one
        raise RuntimeError("scoring failed")
    assert set(load_moment_cache(path, "k")) == {"a"}  # a failed pass leaves the file as it was
    assert load_moment_cache(path, "other key") == {}
    with open_moment_cache(None, "k") as moments:
        assert moments is None
