"""The fine-tuning recipe: compute matching by construction, warm-up, frozen BatchNorm, L2-SP (known answers)."""

from __future__ import annotations

import pytest
import torch

from assft.config import TrainConfig
from assft.errors import ConfigError
from assft.finetune.config import FinetuneConfig
from assft.finetune.trainer import fit, lr_factor


@pytest.mark.parametrize(("raw", "expected"), [
    ({"steps_per_round": 40}, (20, 20)),  # SSFT on (the default): half and half
    ({"steps_per_round": 40, "pseudo": {"reliability": "none"}}, (40, 0)),  # labeled only: every step in stage 1
    ({"steps_per_round": 41, "ssft_fraction": 0.25}, (31, 10)),
    ({"steps_per_round": 10, "ssft_fraction": 1.0}, (0, 10)),
    ({"train": {"steps": 7}, "ssft_steps": 5}, (7, 5)),  # unmatched on purpose: the old two fields
    ({"train": {"steps": 7}, "ssft_steps": 5, "pseudo": {"reliability": "none"}}, (7, 0)),
])
def test_stage_steps(raw: dict, expected: tuple[int, int]) -> None:
    assert FinetuneConfig.model_validate(raw).stage_steps() == expected


def test_steps_per_round_conflicts_are_errors_but_a_dump_round_trips() -> None:
    from assft.config import parse_config

    with pytest.raises(ConfigError, match="remove ssft_steps"):
        parse_config({"steps_per_round": 10, "ssft_steps": 4}, FinetuneConfig)
    config = FinetuneConfig(steps_per_round=10)
    assert FinetuneConfig.model_validate(config.model_dump()).stage_steps() == (5, 5)


def test_warmup_then_cosine() -> None:
    assert [lr_factor(s, 10, 0) for s in (0, 5)] == [1.0, pytest.approx(0.5)]
    assert [lr_factor(s, 10, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(7, 10, 4) == pytest.approx(0.5)  # halfway through the 6 cosine steps


def _cases(phantom_dir):
    from assft.data import load_dataset
    from assft.data.preprocess import load_case

    return [load_case(c) for c in load_dataset(phantom_dir).cases[:2]]


def _net(tiny_model_config):
    from assft.models.zoo import build_model

    torch.manual_seed(0)
    return build_model(tiny_model_config)


def test_frozen_batchnorm_keeps_running_statistics(phantom_dir, tiny_model_config, tiny_train) -> None:
    cases = _cases(phantom_dir)
    for mode, should_change in (("frozen", False), ("train", True)):
        net = _net(tiny_model_config)
        before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
        fit(net, cases, tiny_train.model_copy(update={"bn_mode": mode}), 5)
        changed = any(not torch.equal(before[k], net.state_dict()[k]) for k in before)
        assert changed is should_change, mode


def test_l2sp_pulls_toward_the_start_weights(phantom_dir, tiny_model_config, tiny_train) -> None:
    cases = _cases(phantom_dir)
    distance = {}
    for weight in (0.0, 1e4):
        net = _net(tiny_model_config)
        start = [p.detach().clone() for p in net.parameters()]
        result = fit(net, cases, tiny_train.model_copy(update={"l2sp": weight, "steps": 4, "lr": 1e-2}), 5)
        distance[weight] = sum(float(((p.detach() - s) ** 2).sum()) for p, s in zip(net.parameters(), start))
        if weight:
            assert "l2sp" in result.history[-1]
    assert distance[1e4] < 0.5 * distance[0.0]


def test_an_ssft_arm_spends_its_steps_even_without_pseudo_labels(phantom_dir, tiny_model_config) -> None:
    """Compute matching: with R empty, stage 3 trains on L alone, so SSFT and plain arms spend equal steps."""
    from assft.data import load_dataset
    from assft.finetune.ssft import run_ssft
    from assft.models.checkpoint import make_checkpoint

    spec = load_dataset(phantom_dir)
    net = _net(tiny_model_config)
    ckpt = make_checkpoint(net, tiny_model_config, spec.labels)
    train = TrainConfig(batch_size=1, patch_size=(16, 16, 16))
    plain = run_ssft(ckpt, spec.subset(spec.case_ids[:2]), [], None,
                     FinetuneConfig(steps_per_round=6, train=train, pseudo={"reliability": "none"}))
    ssft = run_ssft(ckpt, spec.subset(spec.case_ids[:2]), [], None, FinetuneConfig(steps_per_round=6, train=train))
    assert plain.compute["optimizer_steps"] == ssft.compute["optimizer_steps"] == 6
    assert (ssft.compute["stage1_steps"], ssft.compute["stage3_steps"]) == (3, 3)
    assert ssft.compute["pseudo_labeled_cases"] == 0 and ssft.compute["patches"] == 6


def test_sgd_optimizer_is_selectable_and_moves_weights_in_proportion_to_gradients(tiny_model_config) -> None:
    from assft.finetune.trainer import make_optimizer

    net = _net(tiny_model_config)
    sgd = make_optimizer(net, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0))
    assert isinstance(sgd, torch.optim.SGD) and isinstance(make_optimizer(net, TrainConfig()), torch.optim.AdamW)
    params = list(net.parameters())
    before = [p.detach().clone() for p in params]
    for i, p in enumerate(params):
        p.grad = torch.full_like(p, 0.01 * (i % 2))  # half the tensors get no gradient
    sgd.step()
    moved = [not torch.equal(p, b) for p, b in zip(params, before)]
    assert moved == [bool(i % 2) for i in range(len(params))]  # plain SGD: zero gradient, zero step
    assert torch.allclose(params[1], before[1] - 0.1 * 0.01)


def test_finetuning_defaults_are_the_validated_recipe() -> None:
    # docs/benchmarks.md "The fine-tuning recipe": lr 5e-4 and BN statistics re-estimated on the pool; a partial
    # `train:` mapping (as in every preset) must not fall back to the from-scratch rate 2e-3.
    assert FinetuneConfig().train.lr == 5e-4
    assert FinetuneConfig().bn_stats == "pool"
    assert FinetuneConfig(train={"batch_size": 2}).train.lr == 5e-4
    assert FinetuneConfig(train={"lr": 1e-3}).train.lr == 1e-3
    assert TrainConfig().lr == 2e-3  # training from scratch keeps its own rate
    dumped = FinetuneConfig(train={"batch_size": 2}).model_dump()
    assert FinetuneConfig(**dumped).train.lr == 5e-4


def test_pool_batchnorm_statistics_are_adabn_on_labeled_and_unlabeled_volumes(phantom_dir, tiny_model_config) -> None:
    """bn_stats "pool": after fine-tuning, each BN layer's running statistics are exactly what AdaBN estimates from the
    final weights on the labeled + unlabeled volumes; with "train" they are the labeled patches' moving averages."""
    from assft.adapt.batchnorm import batchnorm_layers, estimate_batchnorm_statistics
    from assft.data import load_dataset
    from assft.finetune.ssft import run_ssft
    from assft.inference.predict import iter_loaded
    from assft.models.checkpoint import make_checkpoint

    spec = load_dataset(phantom_dir)
    net = _net(tiny_model_config)
    ckpt = make_checkpoint(net, tiny_model_config, spec.labels)
    labeled, pool = spec.subset(spec.case_ids[:2]), spec.subset(spec.case_ids[2:4])
    train = TrainConfig(batch_size=1, patch_size=(16, 16, 16))
    results = {mode: run_ssft(ckpt, labeled, pool, None, FinetuneConfig(
        steps_per_round=3, train=train, bn_stats=mode, pseudo={"reliability": "none"}, record_true_dice=False))
        for mode in ("pool", "train")}
    config = FinetuneConfig(train=train, bn_stats="pool")  # the same window (the training patch) as the run
    net.load_state_dict(results["pool"].state_dict)
    volumes = list(iter_loaded(labeled.cases, ckpt.preprocess)) + list(iter_loaded(pool.cases, ckpt.preprocess))
    expected = estimate_batchnorm_statistics(net, volumes, config.resolved_inference())
    assert set(expected) == set(batchnorm_layers(net))
    for name, (mean, var, _) in expected.items():
        assert torch.allclose(results["pool"].state_dict[f"{name}.running_mean"], mean.float(), atol=1e-5)
        assert torch.allclose(results["pool"].state_dict[f"{name}.running_var"], var.float(), atol=1e-5)
    name = next(iter(expected))
    assert not torch.allclose(results["train"].state_dict[f"{name}.running_mean"], expected[name][0].float(),
                              atol=1e-3)
