"""Known answers for the pass's reducers (assft.inference.reducers) against direct NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from assft.inference.reducers import (
    ChannelMoments,
    GradientEmbedding,
    PooledEmbedding,
    Routing,
    hooked_embedding,
    hooked_moments,
)


def _numpy_moments(x: np.ndarray, channel_axis: int) -> tuple[np.ndarray, np.ndarray]:
    flat = np.moveaxis(x, channel_axis, -1).reshape(-1, x.shape[channel_axis]).astype(np.float64)
    return flat.mean(0), flat.var(0)


def test_channel_moments_route_rows_to_their_volume() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(3, 4, 5, 6, 7)).astype(np.float32)  # rows 0, 2: volume 0; row 1: volume 1
    more = rng.normal(-1.0, 0.5, size=(1, 4, 5, 6, 7)).astype(np.float32)  # a second window of volume 1
    reducer = ChannelMoments()
    reducer.add(torch.from_numpy(x), slots=[0, 1, 0])
    reducer.add(torch.from_numpy(more), slots=[1])
    for slot, rows in ((0, x[[0, 2]]), (1, np.concatenate([x[[1]], more]))):
        mean, var = reducer.result(slot)
        expected_mean, expected_var = _numpy_moments(rows, 1)
        np.testing.assert_allclose(mean.numpy(), expected_mean, rtol=1e-6)
        np.testing.assert_allclose(var.numpy(), expected_var, rtol=1e-5)
        assert reducer.count(slot) == rows.shape[0] * 5 * 6 * 7


def test_channel_moments_channels_last_as_layernorm_sees_it() -> None:
    x = np.arange(2 * 3 * 2 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 2, 4)  # (B, D, H, W, C)
    reducer = ChannelMoments(channels_last=True)
    reducer.add(torch.from_numpy(x))
    mean, var = reducer.result()
    expected_mean, expected_var = _numpy_moments(x, -1)
    np.testing.assert_allclose(mean.numpy(), expected_mean)
    np.testing.assert_allclose(var.numpy(), expected_var)


def test_pooling_volume_moments_equals_moments_of_all_voxels() -> None:
    # two "volumes" of 3 and 1 values: means 0 and 4, no spread -> pooled mean 1, variance 0.75*1 + 0.25*9 = 3
    reducer = ChannelMoments()
    reducer.add_moments(3, torch.tensor([0.0]), torch.tensor([0.0]))
    reducer.add_moments(1, torch.tensor([4.0]), torch.tensor([0.0]))
    mean, var = reducer.result()
    assert mean.tolist() == [1.0] and var.tolist() == [3.0]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 4), volumes=st.integers(1, 3))
def test_routing_never_mixes_volumes(seed: int, rows: int, volumes: int) -> None:
    """Any routing of rows to volumes gives each volume the moments of exactly its own rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2, 3, 3, 3)).astype(np.float32) * rng.uniform(0.1, 10.0)
    slots = [int(s) for s in rng.integers(0, volumes, size=rows)]
    reducer = ChannelMoments()
    reducer.add(torch.from_numpy(x), slots=slots)
    for slot in sorted(set(slots)):
        mean, var = reducer.result(slot)
        expected_mean, expected_var = _numpy_moments(x[[i for i, s in enumerate(slots) if s == slot]], 1)
        np.testing.assert_allclose(mean.numpy(), expected_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(var.numpy(), expected_var, rtol=1e-4, atol=1e-6)
    for slot in set(range(volumes)) - set(slots):
        with pytest.raises(RuntimeError, match="no batch row"):
            reducer.result(slot)


def test_pooled_embedding_is_the_normalised_mean_of_each_volumes_windows() -> None:
    feats = torch.zeros(3, 2, 2, 2, 2)
    feats[0, 0] = 3.0  # volume 0, window 1: pooled (3, 0)
    feats[1, 1] = 5.0  # volume 1: pooled (0, 5) -> (0, 1)
    feats[2, 1] = 4.0  # volume 0, window 2: pooled (0, 4); mean (1.5, 2) -> (0.6, 0.8)
    reducer = PooledEmbedding()
    reducer.add(feats, slots=[0, 1, 0])
    np.testing.assert_allclose(reducer.result(0).numpy(), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(reducer.result(1).numpy(), [0.0, 1.0], rtol=1e-6)


def test_gradient_embedding_known_answer_per_volume() -> None:
    """BADGE's (p - onehot(argmax p)) x features, voxel-averaged per window, averaged over each volume's windows."""
    probs = torch.zeros(3, 2, 1, 1, 2)
    probs[0, :, 0, 0, 0] = torch.tensor([0.8, 0.2])  # argmax 0: residual (-0.2, 0.2)
    probs[0, :, 0, 0, 1] = torch.tensor([0.3, 0.7])  # argmax 1: residual (0.3, -0.3)
    probs[1:] = torch.tensor([0.6, 0.4])[:, None, None, None]  # argmax 0: residual (-0.4, 0.4) everywhere
    features = torch.ones(3, 1, 1, 1, 2)
    features[0, 0, 0, 0, 1] = 2.0
    reducer = GradientEmbedding()
    reducer.add(probs, features, slots=[0, 1, 0])
    # window 0: class 0 (-0.2 * 1 + 0.3 * 2) / 2 = 0.2, class 1 -0.2; windows 1 and 2: (-0.4, 0.4)
    np.testing.assert_allclose(reducer.result(0).numpy(), [-0.1, 0.1], atol=1e-7)
    np.testing.assert_allclose(reducer.result(1).numpy(), [-0.4, 0.4], atol=1e-7)
    reducer.release(1)
    with pytest.raises(RuntimeError, match="slot 1"):
        reducer.result(1)


def test_hooks_record_only_while_the_routing_is_open_and_are_removed() -> None:
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.BatchNorm3d(2), torch.nn.Conv3d(2, 3, 1)).eval()
    routing = Routing(slots=[0, 1])
    x = torch.randn(2, 1, 4, 4, 4)
    with torch.inference_mode(), hooked_moments({"bn": net[1]}, routing) as moments, \
            hooked_embedding(net[2], routing) as embedding:
        net(x)
        routing.open = False
        net(x * 100.0)  # not recorded (e.g. an MC-dropout forward)
        conv_out = net[0](x)
        final = net(x)
    for slot in (0, 1):
        mean, var = moments["bn"].result(slot)
        expected_mean, expected_var = _numpy_moments(conv_out[slot:slot + 1].numpy(), 1)
        np.testing.assert_allclose(mean.numpy(), expected_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(var.numpy(), expected_var, rtol=1e-4, atol=1e-6)
        pooled = final[slot].mean(dim=(1, 2, 3))
        np.testing.assert_allclose(embedding.result(slot).numpy(), (pooled / pooled.norm()).numpy(), rtol=1e-5)
    assert not net[1]._forward_pre_hooks and not net[2]._forward_hooks
