"""KD sources without source images (intensity, pool, consistency): known answers on tiny tensors, the routing of
networks without usable BatchNorm running statistics, and round 0 by network kind."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from assft.adapt import AdaptConfig, adapt_checkpoint
from assft.config import InferenceConfig, ModelConfig
from assft.data import load_dataset
from assft.data.preprocess import load_case
from assft.data.synthetic import PHANTOM_LABELS
from assft.errors import CheckpointError
from assft.inference.predictors import ScoringPredictor
from assft.inference.reducers import Routing
from assft.metrics.knowledge_gap import (
    compute_consistency_gap,
    compute_intensity_divergence,
    compute_intensity_statistics,
    compute_pool_outlierness,
)
from assft.models import build_model, make_checkpoint, save_checkpoint
from assft.models.checkpoint import load_checkpoint
from assft.models.source_stats import (
    BATCH_NORM_AT_INFERENCE_KEY,
    SOURCE_INTENSITY_KEY,
    KnowledgeSource,
    compute_source_intensity,
    network_norm_kind,
    read_source_intensity,
    resolve_knowledge_source,
)
from assft.query import QueryConfig, run_query
from assft.query.summaries import intensity_gap

TINY = {"channels": (4, 8, 16), "strides": (2, 2)}
META = {"train_config": {"patch_size": [16, 16, 16]}}
SOURCE = {"mean": 0.0, "std": 1.0, "percentile_00_5": -2.0, "median": 0.0, "percentile_99_5": 2.0}


@pytest.fixture()
def inference() -> InferenceConfig:
    return InferenceConfig(roi_size=(16, 16, 16), sw_batch_size=1, channels_last=False)


def _checkpoint(path: Path, norm: object = "batch", metadata: dict | None = None) -> Path:
    config = ModelConfig(out_channels=5, params={**TINY, "norm": norm})
    torch.manual_seed(0)
    return save_checkpoint(path, make_checkpoint(build_model(config), config, PHANTOM_LABELS,
                                                 metadata={**META, **(metadata or {})}))


def _gaussian_kl(mt: float, st_: float, ms: float, ss: float) -> float:
    return math.log(ss / st_) + (st_ ** 2 + (mt - ms) ** 2) / (2 * ss ** 2) - 0.5


# --- intensity ---------------------------------------------------------------------------------------------------

def test_intensity_known_answer_shape_and_location() -> None:
    rng = np.random.default_rng(0)
    volume = rng.gamma(2.0, 1.0, size=4000)  # skewed, like MR foreground intensities
    source = compute_intensity_statistics(volume)
    unshifted = compute_intensity_divergence(compute_intensity_statistics(volume), source, location=True)
    shifted = compute_intensity_divergence(compute_intensity_statistics(2.0 * volume + 1.0), source, location=True)
    assert unshifted == pytest.approx(0.0, abs=1e-12)
    # an affine change keeps the shape (standardised quantiles) and moves only the Gaussian term
    expected = _gaussian_kl(2 * source["mean"] + 1, 2 * source["std"], source["mean"], source["std"])
    assert shifted - unshifted == pytest.approx(expected, rel=1e-9)
    assert compute_intensity_divergence(compute_intensity_statistics(2.0 * volume + 1.0), source,
                                        location=False) == pytest.approx(0.0, abs=1e-9)


def test_intensity_known_answer_shape_term() -> None:
    # half -1, half +1: mean 0, std 1, quantiles (-1, 0, 1) against the source's (-2, 0, 2): |1| + 0 + |1| over 3
    target = compute_intensity_statistics(np.repeat([-1.0, 1.0], 500))
    assert compute_intensity_divergence(target, SOURCE, location=False) == pytest.approx(2 / 3)
    assert compute_intensity_divergence(target, SOURCE, location=True) == pytest.approx(2 / 3)  # same N(0, 1)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.01, 1e6), shift=st.floats(-1e4, 1e4))
def test_intensity_shape_term_ignores_the_scanner_scale(scale: float, shift: float) -> None:
    values = np.random.default_rng(1).normal(size=500) ** 2
    source = compute_intensity_statistics(values)
    moved = compute_intensity_statistics(values * scale + shift)
    assert compute_intensity_divergence(moved, source, location=False) == pytest.approx(0.0, abs=1e-6)


def test_intensity_gap_over_foreground_and_nonzero_region() -> None:
    image = np.zeros((1, 4, 4, 4), dtype=np.float32)
    image[0, :2] = np.where(np.arange(16).reshape(4, 4) % 2, 1.0, -1.0)  # foreground: half -1, half +1
    image[0, 2:] = 3.0  # the rest of the non-zero region
    mask = torch.zeros(4, 4, 4, dtype=torch.bool)
    mask[:2] = True
    record = {**SOURCE, "space": "input", "nonzero": compute_intensity_statistics(image[0][image[0] != 0])}
    source = KnowledgeSource("intensity", intensity=[record], location=True)
    # foreground: 2/3 (above); non-zero region: identical to its record, 0; the mean over the two regions
    assert intensity_gap(image, mask, source) == pytest.approx(1 / 3)
    assert intensity_gap(image, None, source) == pytest.approx(0.0, abs=1e-12)  # SSL-only: the region only


def test_source_intensity_record_from_labeled_cases(phantom_dir: Path) -> None:
    cases = [load_case(c) for c in load_dataset(phantom_dir).cases[:2]]
    record = compute_source_intensity(cases)
    fg = np.concatenate([c.image[0][c.label > 0] for c in cases])
    assert len(record) == 1 and record[0]["space"] == "input"
    assert record[0]["mean"] == pytest.approx(float(fg.mean())) and record[0]["median"] == pytest.approx(
        float(np.median(fg)))
    assert compute_source_intensity(cases, max_voxels_per_case=10)[0]["mean"] != record[0]["mean"]  # sampled


def test_source_intensity_key_is_validated(tmp_path: Path) -> None:
    ckpt = load_checkpoint(_checkpoint(tmp_path / "m.pt", metadata={SOURCE_INTENSITY_KEY: [{"mean": 1.0}]}))
    with pytest.raises(CheckpointError, match="lacks one of"):
        read_source_intensity(ckpt)
    ckpt.metadata[SOURCE_INTENSITY_KEY] = [SOURCE]
    assert read_source_intensity(ckpt) == [SOURCE]


# --- pool --------------------------------------------------------------------------------------------------------

def test_pool_outlierness_known_answer() -> None:
    # one layer, one channel; channel means -1, 0, 0, 1, 5 and equal variances: median 0, MAD 1, log-sd term 0
    moments = [{"l": (torch.tensor([m]), torch.tensor([1.0]))} for m in (-1.0, 0.0, 0.0, 1.0, 5.0)]
    kd = compute_pool_outlierness(moments)
    z = 1.0 / 1.4826
    np.testing.assert_allclose(kd, [0.5 * z, 0.0, 0.0, 0.5 * z, 0.5 * 5 * z])
    assert kd[4] - kd[1] == pytest.approx(2.5 / 1.4826)  # the shifted volume over a typical one


def test_pool_outlierness_scale_and_degenerate_pools() -> None:
    # variances: the log-sd term; a channel where every volume agrees contributes 0, not a division by zero
    moments = [{"l": (torch.tensor([0.0, 2.0]), torch.tensor([v, 1.0]))} for v in (1.0, 1.0, math.e ** 2)]
    kd = compute_pool_outlierness(moments)
    # channel 0: log-sd 0, 0, 1; median 0, MAD 0 -> std of (0, 0, 1) = sqrt(2)/3; channel 1 agrees everywhere
    assert kd[2] == pytest.approx(0.5 * (0.5 * 1 / (math.sqrt(2) / 3) + 0.0)) and kd[0] == kd[1] == 0.0
    assert compute_pool_outlierness(moments[:1]).tolist() == [0.0]


# --- consistency -------------------------------------------------------------------------------------------------

class _Pointwise(nn.Module):
    """Two-class logits (0, w x + b) per voxel: mirror-equivariant, so only the intensity change moves it."""

    def __init__(self, w: float, b: float) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.0, w]).view(2, 1, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, b]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize("x", [0.0, 3.0])
def test_consistency_known_answer(x: float) -> None:
    w, b = 2.0, 0.0
    predictor = ScoringPredictor(_Pointwise(w, b).eval(), channels_last=False, routing=Routing(), probs=True,
                                 consistency=True)
    with torch.inference_mode():
        out = predictor(torch.full((1, 1, 4, 4, 4), x))
    assert out.shape == (1, 4, 4, 4, 4)  # probs (2), foreground, disagreement
    p = torch.sigmoid(torch.tensor(w * x + b))
    q = torch.sigmoid(torch.tensor(w * (1.1 * x + 0.1) + b))
    expected = 0.5 * (0.0 + abs(float(q - p)))  # mirror: 0; intensity change: the total variation |q - p|
    assert torch.allclose(out[0, 2], torch.full((4, 4, 4), float(p)))
    gap = compute_consistency_gap(out[0, 2], out[0, 3], method="none")
    assert gap == pytest.approx(expected, rel=1e-3)  # float32 probabilities near saturation


def test_consistency_ranks_the_volume_near_the_decision_boundary_higher() -> None:
    predictor = ScoringPredictor(_Pointwise(2.0, 0.0).eval(), channels_last=False, routing=Routing(),
                                 consistency=True)
    with torch.inference_mode():
        unshifted, shifted = (predictor(torch.full((1, 1, 4, 4, 4), x))[0] for x in (3.0, 0.0))
    gaps = [compute_consistency_gap(o[0], o[1], method="none") for o in (unshifted, shifted)]
    p = [torch.sigmoid(torch.tensor(2.0 * x)) for x in (3.0, 0.0)]
    q = [torch.sigmoid(torch.tensor(2.0 * (1.1 * x + 0.1))) for x in (3.0, 0.0)]
    assert gaps[1] - gaps[0] == pytest.approx(0.5 * float((q[1] - p[1]) - (q[0] - p[0])), rel=1e-4)
    assert gaps[1] > gaps[0]


def test_consistency_on_an_empty_foreground_takes_the_top_voxels() -> None:
    fg = torch.zeros(10, 10, 10)
    dis = torch.zeros(10, 10, 10)
    dis[0, 0, :5] = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2])
    assert compute_consistency_gap(fg, dis, method="fixed", fixed=0.5, top_fraction=0.002) == pytest.approx(0.9)


# --- routing by network kind -------------------------------------------------------------------------------------

def test_batch_statistics_batchnorm_is_never_read_for_running_statistics(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "bs.pt", norm=("batch", {"track_running_stats": False}))
    ckpt = load_checkpoint(path)
    model = build_model(ckpt.model_config)
    model.load_state_dict(ckpt.state_dict)
    assert network_norm_kind(model, ckpt) == "batch_stats"
    with pytest.raises(CheckpointError, match="batch statistics at inference"):
        resolve_knowledge_source(model, ckpt, "running_stats")
    source = resolve_knowledge_source(model, ckpt, "auto")
    assert source.name == "consistency" and source.stats is None and "batch_stats" in source.reason
    ckpt.metadata[SOURCE_INTENSITY_KEY] = [{**SOURCE, "space": "input"}]
    assert resolve_knowledge_source(model, ckpt, "auto").name == "consistency"  # validation's order, record or not
    assert resolve_knowledge_source(model, ckpt, "auto", has_head=False).name == "pool"  # no head: the next one


def test_flagged_batchnorm_with_running_statistics_is_routed_too(tmp_path: Path) -> None:
    ckpt = load_checkpoint(_checkpoint(tmp_path / "m.pt", metadata={BATCH_NORM_AT_INFERENCE_KEY: "batch"}))
    model = build_model(ckpt.model_config)
    assert network_norm_kind(model, ckpt) == "batch_stats"
    assert resolve_knowledge_source(model, ckpt, "auto").name != "running_stats"
    del ckpt.metadata[BATCH_NORM_AT_INFERENCE_KEY]
    assert network_norm_kind(model, ckpt) == "running_stats"
    assert resolve_knowledge_source(model, ckpt, "auto").kind == "running_stats"


def test_run_query_with_each_source_free_kd_on_an_instance_norm_net(phantom_dir: Path, tmp_path: Path,
                                                                   inference: InferenceConfig) -> None:
    record = compute_source_intensity([load_case(c) for c in load_dataset(phantom_dir).cases[:3]])
    path = _checkpoint(tmp_path / "in.pt", norm="instance", metadata={SOURCE_INTENSITY_KEY: record})
    auto = run_query(path, phantom_dir, QueryConfig(strategy="assft", budget=2), inference=inference)
    assert auto.provenance["kd_source"] == "consistency" and auto.provenance["network_norm"] == "per_input"
    assert auto.provenance["kd_source_reason"].startswith("auto: per_input network")
    for source in ("intensity", "pool", "consistency"):
        result = run_query(path, phantom_dir, QueryConfig(strategy="kd", budget=2, kd={"source": source}),
                           inference=inference)
        kd = [s.kd for s in result.summaries]
        assert result.provenance["kd_source"] == source and all(np.isfinite(kd)) and min(kd) >= 0
        assert all(s.norm_moments is None for s in result.summaries)  # pool's moments are dropped once used
    with pytest.raises(CheckpointError, match="no BatchNorm running statistics and no source fingerprint"):
        run_query(path, phantom_dir, QueryConfig(strategy="kd", budget=2, kd={"source": "fingerprint"}),
                  inference=inference)


# --- round 0 -----------------------------------------------------------------------------------------------------

def test_round0_auto_gives_adabn_to_batchnorm_and_not_to_instance_norm(phantom_dir: Path, tmp_path: Path) -> None:
    pool = load_dataset(phantom_dir)
    bn = adapt_checkpoint(_checkpoint(tmp_path / "bn.pt"), pool, AdaptConfig(method="auto"), tmp_path / "bn_a.pt")
    assert bn.method == "adabn" and bn.statistics_layers and bn.details["requested"] == "auto"
    source = _checkpoint(tmp_path / "in.pt", norm="instance")
    inn = adapt_checkpoint(source, pool, AdaptConfig(method="auto"), tmp_path / "in_a.pt")
    assert inn.method != "adabn" and not inn.statistics_layers and "per_input" in inn.details["reason"]
    adapted = load_checkpoint(tmp_path / "in_a.pt")
    assert adapted.metadata["adaptation"]["requested"] == "auto"
    if inn.method == "none":  # the weights are the source model's
        before = load_checkpoint(source).state_dict
        assert all(torch.equal(before[k], v) for k, v in adapted.state_dict.items())


def test_consistency_mirror_ignores_classes_that_follow_orientation() -> None:
    # a network that labels the first voxel class 1 and the second class 2 whatever the input: mirrored and
    # flipped back, its classes swap, but its foreground does not move, so it is perfectly self-consistent
    from assft.metrics.knowledge_gap import compute_disagreement

    probs = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).T.reshape(1, 3, 2, 1, 1)
    perturbed = torch.cat([probs, probs])  # its output on the mirrored and on the intensity-changed window
    assert torch.equal(compute_disagreement(probs, perturbed), torch.zeros(1, 1, 2, 1, 1))
    softer = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]]).T.reshape(1, 3, 2, 1, 1)
    # the intensity copy now predicts foreground 0.5 instead of 1: TV 0.5 at each voxel, halved over the two
    assert torch.allclose(compute_disagreement(probs, torch.cat([probs, softer])), torch.full((1, 1, 2, 1, 1), 0.25))


@pytest.mark.slow
def test_cli_adapt_auto_and_query_kd_source_through_the_console_script(phantom_dir: Path, tmp_path: Path) -> None:
    import json
    import os
    import shutil
    import subprocess
    import sys

    entry = [shutil.which("assft")] if shutil.which("assft") else [sys.executable, "-m", "assft"]
    env = {**os.environ, "ASSFT_THREADS": "1", "COLUMNS": "400"}
    model = _checkpoint(tmp_path / "in.pt", norm="instance")
    adapt = subprocess.run([*entry, "adapt", "--model", str(model), "--images", str(phantom_dir), "--out",
                            str(tmp_path / "a.pt"), "--method", "auto"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert adapt.returncode == 0, adapt.stderr
    assert adapt.stdout.startswith("none: adapted 0 BatchNorm") and "AdaBN does not apply" in adapt.stdout
    query = subprocess.run([*entry, "query", "--model", str(model), "--images", str(phantom_dir), "--budget", "2",
                            "--strategy", "kd", "--kd-source", "pool", "--roi", "16,16,16", "--out",
                            str(tmp_path / "q")], env=env, capture_output=True, text=True, timeout=300)
    assert query.returncode == 0, query.stderr
    assert "KD source: pool" in query.stdout
    assert json.loads((tmp_path / "q" / "selection.json").read_text())["provenance"]["kd_source"] == "pool"


@pytest.mark.parametrize("source", ["pool", "consistency"])
def test_source_free_kd_always_comes_from_theta0(phantom_dir: Path, tmp_path: Path, inference: InferenceConfig,
                                                 source: str) -> None:
    theta0 = _checkpoint(tmp_path / "theta0.pt", norm="instance")
    config = ModelConfig(out_channels=5, params={**TINY, "norm": "instance"})
    torch.manual_seed(1)  # a different θ (as after fine-tuning)
    theta = save_checkpoint(tmp_path / "theta.pt", make_checkpoint(build_model(config), config, PHANTOM_LABELS,
                                                                   metadata=META))
    query = QueryConfig(strategy="kd", budget=2, kd={"source": source})
    alone = run_query(theta0, phantom_dir, query, inference=inference)
    later = run_query(theta, phantom_dir, query, pretrained=theta0, inference=inference)
    assert later.provenance["theta_equals_theta0"] is False
    np.testing.assert_allclose([s.kd for s in later.summaries], [s.kd for s in alone.summaries], rtol=1e-5)


def test_auto_follows_the_validation_order_consistency_then_pool(tmp_path: Path) -> None:
    raw = {**SOURCE, "space": "raw"}  # as an nnU-Net fingerprint stores it: only the shape term compares
    ckpt = load_checkpoint(_checkpoint(tmp_path / "in.pt", norm="instance", metadata={SOURCE_INTENSITY_KEY: [raw]}))
    model = build_model(ckpt.model_config)
    assert resolve_knowledge_source(model, ckpt, "auto").name == "consistency"
    shape_only = resolve_knowledge_source(model, ckpt, "auto", has_head=False)
    assert shape_only.name == "pool"  # no head, and no non-zero record for the SSL-only case
    assert resolve_knowledge_source(model, ckpt, "intensity").location is False
    ckpt.metadata[SOURCE_INTENSITY_KEY] = [{**SOURCE, "space": "input"}]
    assert resolve_knowledge_source(model, ckpt, "auto").name == "consistency"
    assert resolve_knowledge_source(model, ckpt, "auto", has_head=False).name == "pool"


def test_the_default_query_follows_what_theta0_carries_of_the_source(tmp_path: Path) -> None:
    from assft.models.source_stats import default_query_for

    def query_for(path: Path, fingerprint: object = None) -> str:
        ckpt = load_checkpoint(path)
        return default_query_for(build_model(ckpt.model_config), ckpt, fingerprint)[0]

    batch_norm, instance_norm = _checkpoint(tmp_path / "bn.pt"), _checkpoint(tmp_path / "in.pt", norm="instance")
    assert query_for(batch_norm) == "assft"  # running statistics: the paper's KD
    assert query_for(instance_norm) == "fg-random"  # no record of the source: no source-free KD beat random
    assert query_for(instance_norm, fingerprint={"layer": {}}) == "assft"  # a fingerprint given for KD
    batch_stats = _checkpoint(tmp_path / "bs.pt", metadata={BATCH_NORM_AT_INFERENCE_KEY: "batch"})
    assert query_for(batch_stats) == "fg-random"  # BatchNorm that normalises with batch statistics: none either


@pytest.mark.slow
def test_query_and_campaign_init_without_a_strategy_pick_the_source_free_default(phantom_dir: Path,
                                                                                tmp_path: Path) -> None:
    import json
    import os
    import shutil
    import subprocess
    import sys

    import yaml

    entry = [shutil.which("assft")] if shutil.which("assft") else [sys.executable, "-m", "assft"]
    env = {**os.environ, "ASSFT_THREADS": "1", "COLUMNS": "400"}
    model = _checkpoint(tmp_path / "in.pt", norm="instance")
    common = ["--model", str(model), "--images", str(phantom_dir), "--budget", "2", "--roi", "16,16,16"]
    plain = subprocess.run([*entry, "query", *common, "--out", str(tmp_path / "q")], env=env, capture_output=True,
                           text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr
    assert "query: fg-random (θ0 has no BatchNorm running statistics (per_input network)" in plain.stdout
    assert json.loads((tmp_path / "q" / "selection.json").read_text())["strategy"] == "fg-random"
    chosen = subprocess.run([*entry, "query", *common, "--strategy", "assft", "--out", str(tmp_path / "q2")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert chosen.returncode == 0 and "query: fg-random" not in chosen.stdout  # a named strategy is kept
    assert json.loads((tmp_path / "q2" / "selection.json").read_text())["strategy"] == "assft"
    init = subprocess.run([*entry, "campaign", "init", "--model", str(model), "--images", str(phantom_dir), "--out",
                           str(tmp_path / "c"), "--budget", "2", "--rounds", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    assert yaml.safe_load((tmp_path / "c" / "campaign.yaml").read_text())["strategy"] == "fg-random"
    assert "query: fg-random" in init.stdout
