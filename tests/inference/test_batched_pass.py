"""Several volumes per forward call give what one volume at a time gives (float tolerance), for every need."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from assft.config import InferenceConfig
from assft.inference.engine import fits_one_window, symmetric_padding
from assft.query.config import Need, QueryConfig
from assft.utils.timing import timing_record


def test_padding_splits_like_monai() -> None:
    assert symmetric_padding((35, 50, 36), (40, 56, 40)) == [(2, 3), (3, 3), (2, 2)]
    assert fits_one_window((40, 56, 40), (40, 56, 40)) and not fits_one_window((41, 50, 30), (40, 56, 40))


@pytest.fixture(scope="module")
def model_and_cases(tmp_path_factory: pytest.TempPathFactory):
    from assft.data import load_dataset
    from assft.data.preprocess import load_case
    from assft.data.synthetic import make_phantom_dataset
    from assft.models.checkpoint import make_checkpoint
    from assft.config import ModelConfig
    from assft.models.zoo import build_model
    from assft.query.scorer import QueryModel

    root = tmp_path_factory.mktemp("batched")
    # unequal shapes (12-16 voxels a side) so padding differs between the volumes of one batch
    spec = load_dataset(make_phantom_dataset(root / "data", 7, shape=(14, 16, 12), seed=2))
    cases = [load_case(c, with_label=False) for c in spec.cases]
    cases[3] = dataclasses.replace(cases[3], image=cases[3].image[:, :12, :15, :10].copy())
    config = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    torch.manual_seed(0)
    net = build_model(config)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so KD is not zero
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return QueryModel(net, make_checkpoint(net, config, spec.labels)), cases


@pytest.mark.parametrize("strategy", ["assft", "entropy", "fg-random", "clasp-pe", "kd", "coreset", "badge"])
def test_batched_summaries_equal_one_at_a_time(model_and_cases, strategy: str) -> None:
    from assft.models.source_stats import resolve_source_stats
    from assft.query.scorer import score_cases
    from assft.query.strategies import make_strategy

    qm, cases = model_and_cases
    config = QueryConfig(strategy=strategy)
    needs = make_strategy(strategy, config).resolve_needs(True)
    stats = resolve_source_stats(qm.model, qm.checkpoint, "auto", None, None)[0] if Need.NORM_STATS in needs else None
    out = {}
    for volumes in (1, 3):
        inference = InferenceConfig(roi_size=(16, 16, 16), batch_volumes=volumes, channels_last=False)
        with timing_record() as timings:
            out[volumes] = score_cases(cases, qm, needs, config, inference, source_stats=stats)
        assert timings["cases"] == len(cases)
    for one, many in zip(out[1], out[3]):
        assert one.case_id == many.case_id
        for name, value in one.scalars().items():
            assert many.scalars()[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
        for name in ("embedding", "class_pe", "grad_embedding"):
            if getattr(one, name) is not None:
                np.testing.assert_allclose(getattr(many, name), getattr(one, name), rtol=1e-4, atol=1e-6)


def test_batched_evaluation_equals_one_at_a_time(tmp_path) -> None:
    from assft.data import load_dataset
    from assft.data.synthetic import make_phantom_dataset
    from assft.inference.evaluate import evaluate_checkpoint
    from assft.config import ModelConfig, TrainConfig
    from assft.pretrain.supervised import train_supervised

    spec = load_dataset(make_phantom_dataset(tmp_path / "data", 5, shape=(16, 16, 16), seed=4))
    model = train_supervised(spec, tmp_path / "src", model_config=ModelConfig(
        out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)}),
        train_config=TrainConfig(steps=4, batch_size=2, patch_size=(16, 16, 16))).best
    rows = {v: evaluate_checkpoint(model, spec, InferenceConfig(roi_size=(16, 16, 16), batch_volumes=v,
                                                                channels_last=False)) for v in (1, 4)}
    for one, many in zip(rows[1], rows[4]):
        assert one["case_id"] == many["case_id"] and one["dice"] == pytest.approx(many["dice"])


def test_fingerprint_of_one_volume_equals_its_kd_moments(model_and_cases, tmp_path) -> None:
    """The source fingerprint (assft fingerprint) and the target KD moments (the query's batched pass) are one
    reducer: for a single volume they agree to float rounding, layer by layer."""
    from assft.data import load_dataset
    from assft.data.synthetic import make_phantom_dataset
    from assft.data.preprocess import load_case
    from assft.models.source_stats import resolve_source_stats
    from assft.pretrain.fingerprint import compute_fingerprint
    from assft.query.scorer import score_cases

    qm, _ = model_and_cases
    spec = load_dataset(make_phantom_dataset(tmp_path / "data", 2, shape=(14, 16, 12), seed=5))
    inference = InferenceConfig(roi_size=(16, 16, 16), batch_volumes=2, channels_last=False)
    stats, _ = resolve_source_stats(qm.model, qm.checkpoint)
    kd_moments: dict = {}
    score_cases([load_case(c, with_label=False) for c in spec.cases], qm, {Need.NORM_STATS}, QueryConfig(strategy="kd"),
                inference, source_stats=stats, theta0_moments=kd_moments)
    for case in spec.cases:
        fingerprint = compute_fingerprint(qm.model, [case], qm.checkpoint.preprocess, inference)
        assert set(kd_moments[case.case_id]) <= set(fingerprint)
        for layer, (mean, var) in kd_moments[case.case_id].items():
            np.testing.assert_allclose(fingerprint[layer]["mean"], mean.numpy(), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(fingerprint[layer]["var"], var.numpy(), rtol=1e-5, atol=1e-7)


def test_bf16_pass_stays_close_to_fp32_and_fp16_needs_a_gpu(model_and_cases) -> None:
    from assft.errors import ConfigError
    from assft.inference.engine import iter_probs
    from assft.inference.predict import run_pass

    qm, cases = model_and_cases
    qm.model.eval()  # dropout off: the only difference left is the precision
    images = [c.image for c in cases[:3]]
    config = InferenceConfig(roi_size=(16, 16, 16), channels_last=False)
    fp32 = [p for _, p in iter_probs(qm.model, cases[:3], config)]
    bf16 = [p for _, p in iter_probs(qm.model, cases[:3], config.model_copy(update={"precision": "bf16"}))]
    for a, b in zip(fp32, bf16):
        # bf16 really ran (8-bit mantissa: not equal) and stays close on average (a random net has near-ties)
        assert b.dtype == torch.float32 and 0 < float((a - b).abs().mean()) < 0.02
    config = config.model_copy(update={"precision": "bf16"})
    single = run_pass(qm.model, images[0], config).probs
    assert 0 < float((single - fp32[0]).abs().mean()) < 0.02
    with pytest.raises(ConfigError, match="fp16"):
        run_pass(qm.model, images[0], config.model_copy(update={"precision": "fp16"}))


def test_batched_prediction_writes_the_same_label_maps(model_and_cases, tmp_path) -> None:
    from assft.data import load_dataset
    from assft.data.io import read_volume
    from assft.data.synthetic import make_phantom_dataset
    from assft.inference import predict_to_folder

    qm, _ = model_and_cases
    spec = load_dataset(make_phantom_dataset(tmp_path / "data", 5, shape=(14, 16, 12), seed=6))
    written = {v: predict_to_folder(qm.model, spec.cases, qm.checkpoint.preprocess,
                                    InferenceConfig(roi_size=(16, 16, 16), batch_volumes=v, channels_last=False),
                                    tmp_path / f"out{v}") for v in (1, 4)}
    for one, many in zip(written[1], written[4]):
        assert one.name == many.name
        np.testing.assert_array_equal(read_volume(one)[0], read_volume(many)[0])
