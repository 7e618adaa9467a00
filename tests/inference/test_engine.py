"""The pass engine: MONAI's sliding window, exactly, with windows of several volumes packed into one forward call."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer

from assft.config import InferenceConfig, ModelConfig
from assft.inference.engine import iter_probs, iter_windows_pass, plan_windows, scan_interval
from assft.inference.reducers import ChannelMoments, Routing, hooked_moments
from assft.models.zoo import build_model

ROI = (16, 16, 16)
# smaller than the window, equal, larger along one or several axes (2 to 12 windows), and odd padding splits
SHAPES = [(14, 16, 12), (20, 16, 16), (16, 16, 16), (30, 18, 9), (10, 10, 10), (33, 35, 17), (12, 13, 11)]


@dataclass
class Volume:
    case_id: str
    image: np.ndarray


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(out_channels=3, dropout=0.0, params={"channels": (4, 8, 16), "strides": (2, 2)}))
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def volumes() -> list[Volume]:
    rng = np.random.default_rng(0)
    return [Volume(f"v{i}", rng.normal(size=(1, *s)).astype(np.float32)) for i, s in enumerate(SHAPES)]


def _monai(net: torch.nn.Module, image: np.ndarray, config: InferenceConfig) -> torch.Tensor:
    inferer = SlidingWindowInferer(roi_size=config.roi_size, sw_batch_size=config.sw_batch_size,
                                   overlap=config.overlap, mode=config.mode)
    with torch.inference_mode():
        return inferer(torch.as_tensor(image)[None], lambda w: torch.softmax(net(w), 1))[0]


def test_window_plan_is_monais() -> None:
    plan = plan_windows((33, 16, 10), ROI, 0.25)
    assert plan.padding == ((0, 0), (0, 0), (3, 3)) and plan.padded_shape == (33, 16, 16)
    assert scan_interval((33, 16, 16), ROI, 0.25) == (12, 16, 16)
    # starts 0, 12 and the last window flush with the end (33 - 16 = 17)
    assert [s[0].start for s in plan.slices] == [0, 12, 17]


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_one_volume_per_call_is_monais_sliding_window_bit_for_bit(net, volumes, mode: str, overlap: float) -> None:
    config = InferenceConfig(roi_size=ROI, overlap=overlap, mode=mode, batch_volumes=1, channels_last=False)
    for volume, (item, probs) in zip(volumes, iter_probs(net, volumes, config)):
        assert item is volume
        assert torch.equal(probs, _monai(net, volume.image, config)), volume.image.shape


@pytest.mark.parametrize("batch_volumes", [2, 4, 8])
def test_packed_windows_give_monais_result_per_volume(net, volumes, batch_volumes: int) -> None:
    config = InferenceConfig(roi_size=ROI, batch_volumes=batch_volumes, channels_last=False)
    out = list(iter_probs(net, volumes, config))
    assert [v.case_id for v, _ in out] == [v.case_id for v in volumes]
    for volume, probs in out:
        torch.testing.assert_close(probs, _monai(net, volume.image, config), rtol=1e-5, atol=1e-6)


def test_calls_are_full_and_cross_volume_boundaries(net, volumes) -> None:
    config = InferenceConfig(roi_size=ROI, sw_batch_size=4, batch_volumes=4, channels_last=False)
    routing, calls = Routing(open=False), []
    handle = net.register_forward_pre_hook(lambda m, args: calls.append(list(routing.slots)))
    try:
        list(iter_windows_pass(net, volumes, lambda v: v.image, config, routing=routing))
    finally:
        handle.remove()
    windows = sum(len(plan_windows(v.image.shape[1:], ROI, 0.25).slices) for v in volumes)
    assert sum(map(len, calls)) == windows and all(len(c) == 4 for c in calls[:-1])
    assert any(len(set(c)) > 1 for c in calls)  # some call holds windows of two volumes


def test_whole_chunks_keep_monais_window_groups(net, volumes) -> None:
    """With whole_chunks, the windows of a volume that share a call are exactly one of MONAI's sw_batch_size groups."""
    config = InferenceConfig(roi_size=ROI, sw_batch_size=3, batch_volumes=4, channels_last=False)
    routing, calls = Routing(open=False), []
    handle = net.register_forward_pre_hook(lambda m, args: calls.append(list(routing.slots)))
    try:
        items = list(iter_windows_pass(net, volumes, lambda v: v.image, config, routing=routing, whole_chunks=True))
    finally:
        handle.remove()
    assert len(items) == len(volumes)
    groups = sorted(c.count(s) for c in calls for s in set(c))
    expected = sorted(n for v in volumes
                      for total in [len(plan_windows(v.image.shape[1:], ROI, 0.25).slices)]
                      for n in [3] * (total // 3) + ([total % 3] if total % 3 else []))
    assert groups == expected


def test_slots_route_hooked_moments_per_volume_and_are_reused(net, volumes) -> None:
    """Per-volume norm moments from the packed pass equal those of a pass over each volume alone, and slots of
    finished volumes are reused (state stays bounded in pool size)."""
    layer = dict(net.named_modules())["model.0.conv.unit0.adn.N"]
    config = InferenceConfig(roi_size=ROI, batch_volumes=4, channels_last=False)
    many = volumes * 3
    routing, got, slots = Routing(open=False), [], []
    with hooked_moments({"n": layer}, routing) as reducers:
        for _, _, slot in iter_windows_pass(net, many, lambda v: v.image, config, routing=routing,
                                            reducers=list(reducers.values())):
            got.append(reducers["n"].result(slot))
            slots.append(slot)
    assert max(slots) < 5  # at most batch_volumes + 1 volumes in flight, whatever the pool size
    for volume, (mean, var) in zip(many, got):
        alone = Routing(open=False)
        with hooked_moments({"n": layer}, alone) as reference:
            list(iter_windows_pass(net, [volume], lambda v: v.image, config, routing=alone))
        ref_mean, ref_var = reference["n"].result()
        torch.testing.assert_close(mean, ref_mean, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(var, ref_var, rtol=1e-5, atol=1e-7)


def test_hooks_record_nothing_between_items_and_inference_mode_is_off(net, volumes) -> None:
    layer = dict(net.named_modules())["model.0.conv.unit0.adn.N"]
    routing = Routing(open=False)
    with hooked_moments({"n": layer}, routing, pooled=True) as reducers:
        stream = iter_windows_pass(net, volumes[:2], lambda v: v.image, InferenceConfig(
            roi_size=ROI, batch_volumes=1, channels_last=False), routing=routing)
        next(stream)
        seen = reducers["n"].count()
        assert not torch.is_inference_mode_enabled()  # the caller may train between two items
        with torch.no_grad():
            net(torch.zeros(1, 1, *ROI))  # someone else's forward of the same model: not recorded
        assert reducers["n"].count() == seen
        list(stream)
    assert reducers["n"].count() > seen


def test_channel_moments_known_answer_against_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 2, 4, 5, 6)).astype(np.float32) * [[[[[2.0]]], [[[0.5]]]]] + 3.0
    reducer = ChannelMoments()
    reducer.add(torch.as_tensor(x), slots=[0, 1, 0])
    for slot, rows in ((0, [0, 2]), (1, [1])):
        values = np.moveaxis(x[rows], 1, 0).reshape(2, -1).astype(np.float64)
        mean, var = reducer.result(slot)
        np.testing.assert_allclose(mean.numpy(), values.mean(1), rtol=1e-6)
        np.testing.assert_allclose(var.numpy(), values.var(1), rtol=1e-5)
    reducer.release(0)
    with pytest.raises(RuntimeError, match="slot 0"):
        reducer.result(0)


@pytest.mark.parametrize("batch_volumes", [4, 8])
def test_adabn_packed_equals_one_volume_at_a_time(net, volumes, batch_volumes: int) -> None:
    """Train-mode BatchNorm normalises each volume with its own windows' statistics even when volumes share a
    call, so AdaBN's pooled statistics equal those of one volume per call."""
    from assft.adapt.batchnorm import estimate_batchnorm_statistics

    base = InferenceConfig(roi_size=ROI, sw_batch_size=2, batch_volumes=1, channels_last=False)
    alone = estimate_batchnorm_statistics(copy.deepcopy(net), volumes, base)
    packed = estimate_batchnorm_statistics(copy.deepcopy(net), volumes,
                                           base.model_copy(update={"batch_volumes": batch_volumes}))
    assert alone.keys() == packed.keys() and alone
    for name, (mean, var, n) in alone.items():
        assert packed[name][2] == n
        torch.testing.assert_close(packed[name][0], mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(packed[name][1], var, rtol=1e-5, atol=1e-6)


def test_hooks_only_forward_stops_after_the_last_hooked_layer(net) -> None:
    from assft.inference.engine import hooks_only_predictor

    layers = {"n": dict(net.named_modules())["model.0.conv.unit0.adn.N"]}
    head_calls: list[int] = []
    handle = net.model[2].register_forward_hook(lambda *args: head_calls.append(1))
    x = torch.randn(2, 1, *ROI)
    predict = hooks_only_predictor(net, False, layers)
    try:
        with torch.inference_mode(), hooked_moments(layers) as first:
            out = predict(x)  # the first call runs in full and counts the hooked layers' calls
        with torch.inference_mode(), hooked_moments(layers) as second:
            predict(x)
    finally:
        handle.remove()
    assert head_calls == [1] and out.shape == (2, 1, *ROI) and not out.any()
    torch.testing.assert_close(second["n"].result(), first["n"].result(), rtol=0, atol=0)
