"""Training loop, losses and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from assft.config import ModelConfig, TrainConfig
from assft.data import load_dataset, make_split, select_cases
from assft.data.splits import save_split
from assft.errors import ConfigError
from assft.finetune.losses import IGNORE, SegmentationLoss
from assft.pretrain.supervised import train_supervised
from assft.models import load_checkpoint


def test_masked_loss_ignores_ignored_voxels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4, 4)
    labels = torch.randint(0, 3, (1, 1, 4, 4, 4))
    loss = SegmentationLoss()
    changed = labels.clone()
    changed[..., :2] = IGNORE
    other = labels.clone()
    other[..., :2] = (labels[..., :2] + 1) % 3
    other_masked = other.clone()
    other_masked[..., :2] = IGNORE
    # the ignored region's labels do not matter
    assert torch.allclose(loss(logits, changed), loss(logits, other_masked))
    assert not torch.allclose(loss(logits, labels), loss(logits, other))


def test_split_is_deterministic_and_order_free() -> None:
    ids = [f"c{i:02d}" for i in range(20)]
    a = make_split(ids, {"source": 0.3, "pool": 0.5, "test": 0.2}, seed=3)
    b = make_split(list(reversed(ids)), {"source": 0.3, "pool": 0.5, "test": 0.2}, seed=3)
    c = make_split(ids, {"source": 0.3, "pool": 0.5, "test": 0.2}, seed=4)
    assert a == b and a != c
    assert [len(a[k]) for k in ("source", "pool", "test")] == [6, 10, 4]
    assert sorted(sum(a.values(), [])) == ids
    assert len(make_split(ids, {"train": 5, "test": 0.5}, seed=0)["train"]) == 5
    with pytest.raises(ConfigError, match="sum to 1.200"):
        make_split(ids, {"a": 0.6, "b": 0.6}, seed=0)


def test_select_cases_unknown_subset(phantom_dir: Path, tmp_path: Path) -> None:
    spec = load_dataset(phantom_dir)
    split = save_split(tmp_path / "s.json", make_split(spec.case_ids, {"train": 0.5, "test": 0.5}, 0), seed=0,
                       fractions={}, dataset=phantom_dir)
    assert len(select_cases(spec, split, "train").cases) == 3
    with pytest.raises(ConfigError, match="subset 'tset' is not in the split"):
        select_cases(spec, split, "tset")


def test_train_supervised_is_seeded_and_writes_checkpoints(phantom_dir: Path, tiny_model_config: ModelConfig,
                                                           tiny_train: TrainConfig, tmp_path: Path) -> None:
    import json
    import random

    spec = load_dataset(phantom_dir)
    outs = []
    for i in range(2):
        torch.manual_seed(100 + i)  # the caller's RNG state differs between the runs and must not matter ...
        np.random.seed(100 + i)
        random.seed(100 + i)
        outs.append(train_supervised(spec.subset(spec.case_ids[:3]), tmp_path / f"run{i}",
                                     model_config=tiny_model_config, train_config=tiny_train,
                                     val=spec.subset(spec.case_ids[3:4])))
        # ... and the training's own seeding must not leak back into the caller's generators
        after = (torch.rand(3), np.random.rand(3), random.random())
        torch.manual_seed(100 + i)
        np.random.seed(100 + i)
        random.seed(100 + i)
        assert torch.equal(after[0], torch.rand(3)) and np.array_equal(after[1], np.random.rand(3))
        assert after[2] == random.random()
    a, b = (load_checkpoint(o.last) for o in outs)
    assert a.kind == "supervised" and a.labels == spec.labels and a.model_config.out_channels == 5
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    log = json.loads((tmp_path / "run0" / "train_log.json").read_text())
    assert outs[0].best_val_dice == max(r["val_dice"] for r in log["history"] if r.get("val_dice") is not None)
    assert (tmp_path / "run0" / "train_log.json").exists()
    # the source intensity record travels with the model (kd_source intensity): the training cases' foreground
    from assft.data.preprocess import load_case
    from assft.models.source_stats import SOURCE_INTENSITY_KEY, read_source_intensity

    record = read_source_intensity(a)
    cases = [load_case(x) for x in spec.subset(spec.case_ids[:3]).cases]
    fg = np.concatenate([c.image[0][c.label > 0] for c in cases])
    assert record == a.metadata[SOURCE_INTENSITY_KEY] and record[0]["space"] == "input"
    assert record[0]["mean"] == pytest.approx(float(fg.mean()))


def test_patch_not_divisible_is_a_config_error(phantom_dir: Path, tmp_path: Path) -> None:
    spec = load_dataset(phantom_dir)
    with pytest.raises(ConfigError, match="not a multiple of 8"):
        train_supervised(spec, tmp_path, model_config=ModelConfig(), train_config=TrainConfig(patch_size=(12, 16, 16)))


def test_training_reduces_loss(phantom_dir: Path, tiny_model_config: ModelConfig) -> None:
    from assft.data import load_case
    from assft.finetune.trainer import fit
    from assft.models import build_model

    spec = load_dataset(phantom_dir)
    cases = [load_case(c) for c in spec.cases[:3]]
    torch.manual_seed(0)
    result = fit(build_model(tiny_model_config), cases, TrainConfig(steps=30, batch_size=2, patch_size=(16, 16, 16),
                                                                      lr=1e-2), 5)
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
