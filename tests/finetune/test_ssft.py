"""SSFT end to end on 16^3 phantoms with a tiny UNet: heads, stages, outputs, determinism, L never grows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import assft.finetune.ssft as ssft_module
from assft.config import InferenceConfig, ModelConfig, TrainConfig
from assft.data import load_dataset
from assft.data.io import read_volume
from assft.data.synthetic import PHANTOM_LABELS
from assft.finetune.config import FinetuneConfig
from assft.finetune.ssft import build_finetune_model, run_ssft
from assft.models import build_from_checkpoint, build_model, head_keys, load_checkpoint, make_checkpoint, save_checkpoint

PARAMS = {"channels": (4, 8, 16), "strides": (2, 2)}


def _checkpoint(path: Path, out_channels: int, labels: dict[int, str], kind: str = "supervised", seed: int = 0) -> Path:
    config = ModelConfig(name="unet", out_channels=out_channels, params=PARAMS)
    torch.manual_seed(seed)
    return save_checkpoint(path, make_checkpoint(build_model(config), config, labels, kind=kind))  # type: ignore[arg-type]


def _config(reliability: str = "both", steps: int = 2, ssft_steps: int = 2, **extra) -> FinetuneConfig:
    return FinetuneConfig(train=TrainConfig(steps=steps, batch_size=2, patch_size=(16, 16, 16)),
                          ssft_steps=ssft_steps, pseudo={"reliability": reliability},  # type: ignore[arg-type]
                          inference=InferenceConfig(roi_size=(16, 16, 16), channels_last=False), **extra)


def test_supervised_run_writes_outputs_and_is_deterministic(phantom_dir: Path, tmp_path: Path) -> None:
    spec = load_dataset(phantom_dir)
    ckpt = _checkpoint(tmp_path / "src.pt", 5, PHANTOM_LABELS)
    labeled = spec.subset(spec.case_ids[:2])
    config = _config()
    result = run_ssft(ckpt, labeled, spec, tmp_path / "out", config, save_pseudo_labels=True)

    assert result.head.action == "reused"
    pool_ids = spec.case_ids[2:]
    assert [s.case_id for s in result.table] == pool_ids  # labeled ids left out of the pool
    assert result.selected_ids == tuple(sorted(s.case_id for s in result.table if s.selected))
    assert 1 <= len(result.selected_ids) <= len(pool_ids)
    assert all(s.true_dice is not None for s in result.table)
    assert [h.get("pseudo_weight") for h in result.history["stage3"]] == [None, 1.0]  # λ: 0 then 1 (2 steps)

    out = tmp_path / "out"
    saved = load_checkpoint(out / "finetuned.pt")
    assert saved.kind == "supervised" and saved.labels == PHANTOM_LABELS
    assert all(torch.equal(saved.state_dict[k], v) for k, v in result.state_dict.items())
    assert saved.metadata["pseudo_labeled_cases"] == list(result.selected_ids)
    header = (out / "pseudo_labels.csv").read_text().splitlines()[0]
    assert header == "case_id,conf,sd,selected,fg_voxels,true_dice"
    log = json.loads((out / "ssft_log.json").read_text())
    assert set(log["history"]) == {"stage1", "stage3"} and log["finetune_config"]["pseudo"]["reliability"] == "both"
    assert {"stage1", "stage2_score", "stage2_pseudo_labels", "stage3", "total"} <= set(log["timings"])
    assert (out / "pseudo_label_gallery.png").read_bytes()[:4] == b"\x89PNG"  # accepted next to rejected
    written = sorted(p.name for p in (out / "pseudo_labels").iterdir())
    assert written == [f"{cid}.nii.gz" for cid in result.selected_ids]
    pseudo, affine = read_volume(out / "pseudo_labels" / written[0], dtype=np.int64)
    assert pseudo.shape == (16, 16, 16) and 0 <= pseudo.min() and pseudo.max() < 5
    # the recorded true Dice is the written pseudo-label scored against the case's label file (a known answer)
    from assft.data.preprocess import spacing_of
    from assft.finetune.pseudo_labels import compute_pseudo_label_dice

    truth, _ = read_volume(spec.get(result.selected_ids[0]).label_path, dtype=np.int64)  # type: ignore[arg-type]
    recorded = {s.case_id: s.true_dice for s in result.table}[result.selected_ids[0]]
    assert recorded == pytest.approx(compute_pseudo_label_dice(pseudo, truth, PHANTOM_LABELS, spacing_of(affine)))

    again = run_ssft(ckpt, labeled, spec, None, config)
    assert again.checkpoint is None
    assert [(s.case_id, s.conf, s.sd, s.selected) for s in again.table] == \
        [(s.case_id, s.conf, s.sd, s.selected) for s in result.table]
    assert all(torch.equal(again.state_dict[k], v) for k, v in result.state_dict.items())


def test_pseudo_labels_never_join_the_labeled_set(phantom_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import nibabel as nib

    spec = load_dataset(phantom_dir)
    labeled = spec.subset(spec.case_ids[:2])
    before = list(labeled.cases)
    calls: list[dict] = []
    opened: list[tuple[str, Path]] = []  # (phase, file) of every NIfTI read during the run
    phase = ["outside training"]
    real_fit, real_load = ssft_module.fit, nib.load

    def recording_fit(model, labeled_cases, config, num_classes, **kwargs):
        calls.append({"labeled": [c.case_id for c in labeled_cases],
                      "pseudo": [c.case_id for c in kwargs.get("pseudo", ())],
                      "state": {k: v.clone() for k, v in model.state_dict().items()}})
        phase[0] = "training"
        try:
            return real_fit(model, labeled_cases, config, num_classes, **kwargs)
        finally:
            phase[0] = "outside training"

    def recording_load(path, *args, **kwargs):
        opened.append((phase[0], Path(path).resolve()))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(ssft_module, "fit", recording_fit)
    monkeypatch.setattr(nib, "load", recording_load)
    ckpt = _checkpoint(tmp_path / "src.pt", 5, PHANTOM_LABELS)
    result = run_ssft(ckpt, labeled, spec, None, _config("all", restart_from_pretrained=True))

    assert [c["labeled"] for c in calls] == [spec.case_ids[:2]] * 2  # L is the same list in both stages
    assert calls[0]["pseudo"] == [] and calls[1]["pseudo"] == spec.case_ids[2:]
    assert result.labeled_ids == tuple(spec.case_ids[:2]) and labeled.cases == before
    # Structural: the pool's label files are opened only outside training (for the true-Dice diagnostic), never
    # while a model trains; the labeled cases' files are (the recorder sees reads).
    pool_labels = {spec.get(cid).label_path.resolve() for cid in spec.case_ids[2:]}  # type: ignore[union-attr]
    labeled_labels = {spec.get(cid).label_path.resolve() for cid in spec.case_ids[:2]}  # type: ignore[union-attr]
    assert not pool_labels & {path for when, path in opened if when == "training"}
    assert pool_labels <= {path for when, path in opened if when == "outside training"}  # the diagnostic did read
    assert labeled_labels <= {path for _, path in opened}
    # restart_from_pretrained: stage 3 starts from θ0, not from the stage-1 weights
    theta0 = load_checkpoint(ckpt).state_dict
    assert all(torch.equal(calls[1]["state"][k], theta0[k]) for k in theta0)
    assert not all(torch.equal(calls[1]["state"][k], result.stage1_state[k]) for k in theta0)


def test_pool_cases_lose_their_label_paths(phantom_dir: Path) -> None:
    spec = load_dataset(phantom_dir)
    pool, truth = ssft_module._split_pool(spec, {spec.case_ids[0]}, record_true_dice=True)
    assert [c.case_id for c in pool] == spec.case_ids[1:] and all(c.label_path is None for c in pool)
    assert set(truth) == set(spec.case_ids[1:])
    assert ssft_module._split_pool(spec, set(), record_true_dice=False)[1] == {}


def test_head_is_reused_or_replaced(tmp_path: Path) -> None:
    three = {0: "background", 1: "a", 2: "b"}
    ckpt = load_checkpoint(_checkpoint(tmp_path / "three.pt", 3, three))
    config = ModelConfig(name="unet", out_channels=5, params=PARAMS)
    heads = head_keys(config)

    model, model_config, head, _ = build_finetune_model(ckpt, PHANTOM_LABELS, seed=0)
    assert head.action == "replaced" and "differ" in head.reason and model_config.out_channels == 5
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ckpt.state_dict.items() if k not in heads)  # body kept
    fresh = build_model(config).state_dict()
    assert heads and all(state[k].shape == fresh[k].shape for k in heads)  # a 5-class head

    renamed = {0: "background", 1: "x", 2: "y"}  # same class count, different label map -> new head too
    model, _, head, _ = build_finetune_model(ckpt, renamed, seed=0)
    assert head.action == "replaced"
    assert not all(torch.equal(model.state_dict()[k], ckpt.state_dict[k]) for k in heads)

    model, _, head, _ = build_finetune_model(ckpt, three, seed=0)
    assert head.action == "reused"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ckpt.state_dict.items())
    cased = {0: "Background", 1: "A", 2: " b "}  # a dataset.json written by hand: the same classes, other case
    model, _, head, _ = build_finetune_model(ckpt, cased, seed=0)
    assert head.action == "reused"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ckpt.state_dict.items())

    a = build_finetune_model(ckpt, PHANTOM_LABELS, seed=1)[0].state_dict()
    b = build_finetune_model(ckpt, PHANTOM_LABELS, seed=1)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in heads)  # a new head is seeded


def test_ssl_only_checkpoint_fine_tunes_end_to_end(phantom_dir: Path, tmp_path: Path) -> None:
    spec = load_dataset(phantom_dir)
    ckpt = _checkpoint(tmp_path / "ssl.pt", 1, {0: "background"}, kind="ssl-only")
    result = run_ssft(ckpt, spec.subset(spec.case_ids[:2]), spec.without_labels(), tmp_path / "out",
                      _config("confidence"))
    assert result.head.action == "new" and result.model_config.out_channels == 5
    assert all(s.true_dice is None for s in result.table)  # no ground truth in the pool -> no diagnostic
    assert "true_dice" not in (tmp_path / "out" / "pseudo_labels.csv").read_text().splitlines()[0]
    model, saved, report = build_from_checkpoint(tmp_path / "out" / "finetuned.pt")
    assert saved.kind == "supervised" and saved.labels == PHANTOM_LABELS and not report.missing
    assert model(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 5, 16, 16, 16)


def test_no_ssft_runs_stage_one_only(phantom_dir: Path, tmp_path: Path) -> None:
    spec = load_dataset(phantom_dir)
    ckpt = _checkpoint(tmp_path / "src.pt", 5, PHANTOM_LABELS)
    result = run_ssft(ckpt, spec.subset(spec.case_ids[:2]), spec, tmp_path / "out", _config("none"))
    assert result.table == [] and result.selected_ids == () and result.history["stage3"] == []
    assert all(torch.equal(result.state_dict[k], v) for k, v in result.stage1_state.items())
    assert not (tmp_path / "out" / "pseudo_labels.csv").exists()
