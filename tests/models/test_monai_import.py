"""Bring your own MONAI model: a bundle and plain state dicts of monai.networks.nets classes become assft checkpoints
whose predictions equal MONAI's own inference; what assft cannot reproduce is refused by name."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from assft.data.io import write_volume

# Tiny instances of the listed architectures (in 1, out 3 classes) and the window each runs with.
ARCHS: dict[str, tuple[dict, tuple[int, int, int]]] = {
    "UNet": ({"spatial_dims": 3, "channels": [4, 8], "strides": [2], "num_res_units": 1}, (16, 16, 16)),
    "DynUNet": ({"spatial_dims": 3, "kernel_size": [3, 3, 3], "strides": [1, 2, 2], "upsample_kernel_size": [2, 2],
                 "filters": [4, 8, 16], "norm_name": "instance"}, (16, 16, 16)),
    "SegResNet": ({"spatial_dims": 3, "init_filters": 4, "blocks_down": [1, 1], "blocks_up": [1],
                   "norm": ["GROUP", {"num_groups": 2}]}, (16, 16, 16)),
    "AttentionUnet": ({"spatial_dims": 3, "channels": [4, 8], "strides": [2]}, (16, 16, 16)),
    "BasicUNet": ({"spatial_dims": 3, "features": [4, 4, 8, 8, 16, 4]}, (32, 32, 32)),
    "UNETR": ({"img_size": [16, 16, 16], "feature_size": 4, "hidden_size": 24, "mlp_dim": 48, "num_heads": 2},
              (16, 16, 16)),
    # InstanceNorm needs more than one voxel at the 32x-downsampled bottom: a 64 window
    "SwinUNETR": ({"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1]}, (64, 64, 64)),
}


def assft(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The console script, as a user types it (PYTHONPATH and thread settings inherited)."""
    env = {**os.environ, "ASSFT_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(["assft", *map(str, args)], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def _net(arch: str, kwargs: dict, seed: int = 0) -> torch.nn.Module:
    import monai.networks.nets as nets

    torch.manual_seed(seed)
    return getattr(nets, arch)(in_channels=1, out_channels=3, **kwargs).eval()


def _image(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(100, 30, shape) * (rng.random(shape) > 0.2)).astype(np.float32)


def _probs(folder: Path, case_id: str) -> np.ndarray:
    return np.moveaxis(np.asarray(nib.load(folder / f"{case_id}_probs.nii.gz").dataobj), -1, 0)


def _monai_probs(net: torch.nn.Module, image: np.ndarray, roi: tuple[int, int, int]) -> np.ndarray:
    """MONAI's own way: z-score over nonzero voxels, sliding_window_inference on the net, softmax of the blend."""
    from monai.inferers import sliding_window_inference
    from monai.transforms import NormalizeIntensity

    x = torch.as_tensor(NormalizeIntensity(nonzero=True)(image[None]))[None].float()
    with torch.no_grad():
        logits = sliding_window_inference(x, roi, 2, net, overlap=0.25, mode="gaussian")
    return torch.softmax(logits, 1)[0].numpy()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_state_dict_round_trip(arch: str, tmp_path: Path) -> None:
    """import --format monai -> predict equals MONAI's sliding_window_inference of the net itself (several windows)."""
    from typer.testing import CliRunner

    from assft.cli.app import app

    kwargs, roi = ARCHS[arch]
    net = _net(arch, kwargs)
    torch.save({"state_dict": net.state_dict()}, tmp_path / "w.pt")
    shape = (*roi[:2], roi[2] + roi[2] // 4) if max(roi) > 32 else tuple(r + r // 2 for r in roi)  # several windows
    image = _image(shape)  # type: ignore[arg-type]
    write_volume(tmp_path / "images" / "case_000.nii.gz", image, np.eye(4))
    runner = CliRunner()
    args = json.dumps({**kwargs, "in_channels": 1, "out_channels": 3})
    result = runner.invoke(app, ["import", "--format", "monai", "--arch", arch, "--arch-args", args, "--weights",
                                 str(tmp_path / "w.pt"), "--out", str(tmp_path / "m.pt"), "--roi",
                                 ",".join(map(str, roi))])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.pt"), "--images", str(tmp_path / "images"),
                                 "--out", str(tmp_path / "pred"), "--probs"])
    assert result.exit_code == 0, result.output
    ours = _probs(tmp_path / "pred", "case_000")
    theirs = _monai_probs(net, image, roi)
    assert np.abs(ours - theirs).max() < 1e-4
    labels = np.asarray(nib.load(tmp_path / "pred" / "case_000.nii.gz").dataobj)
    assert (labels == theirs.argmax(0)).mean() >= 0.999


def test_wrong_arch_args_refused_with_key_report(tmp_path: Path) -> None:
    """Weights of filters (4, 8, 16) under --arch-args saying (4, 8, 32): exit 2, the key report, nothing written."""
    kwargs, _ = ARCHS["DynUNet"]
    torch.save(_net("DynUNet", kwargs).state_dict(), tmp_path / "w.pt")
    wrong = {**kwargs, "filters": [4, 8, 32], "in_channels": 1, "out_channels": 3}
    result = assft("import", "--format", "monai", "--arch", "DynUNet", "--arch-args", json.dumps(wrong),
                   "--weights", tmp_path / "w.pt", "--out", tmp_path / "m.pt")
    assert result.returncode == 2, result.stderr
    assert "shape-mismatched" in result.stderr and "bottleneck" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.pt").exists()


BUNDLE_NET = {"_target_": "SegResNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 3, "init_filters": 4,
              "blocks_down": [1, 1], "blocks_up": [1], "norm": ["GROUP", {"num_groups": 2}]}


def write_bundle(root: Path, *, extra_transform: dict | None = None) -> Path:
    """A MONAI bundle: network_def, models/model.pt, preprocessing (RAS, 1 mm, z-score), sliding window, softmax."""
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    transforms = [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": [1.0, 1.0, 1.0], "mode": "bilinear"},
        {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True},
        {"_target_": "EnsureTyped", "keys": "image"},
    ]
    if extra_transform is not None:
        transforms.insert(4, extra_transform)
    config = {
        "bundle_root": ".",
        "network_def": BUNDLE_NET,
        "preprocessing": {"_target_": "Compose", "transforms": transforms},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [16, 16, 16], "sw_batch_size": 2,
                    "overlap": 0.5, "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}]},
    }
    (root / "configs" / "inference.json").write_text(json.dumps(config, indent=1))
    (root / "configs" / "metadata.json").write_text(json.dumps({"network_data_format": {"outputs": {"pred": {
        "channel_def": {"0": "background", "1": "organ", "2": "lesion"}}}}}))
    torch.manual_seed(0)
    net = _net("SegResNet", {k: v for k, v in BUNDLE_NET.items() if k not in ("_target_", "in_channels",
                                                                             "out_channels")})
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


def bundle_inference(bundle: Path, image: Path) -> tuple[np.ndarray, np.ndarray]:
    """MONAI's own bundle inference through ConfigParser: preprocessing, inferer, network, postprocessing (Invertd)."""
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

    parser = ConfigParser()
    parser.read_config(bundle / "configs" / "inference.json")
    parser["bundle_root"] = str(bundle)
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    data = parser.get_parsed_content("preprocessing")({"image": str(image)})
    with torch.no_grad():
        data["pred"] = parser.get_parsed_content("inferer")(data["image"][None], net.eval())[0]
    post = parser.get_parsed_content("postprocessing").transforms
    data = Compose(post[:2])(data)  # softmax, back to the input grid
    probs = np.asarray(data["pred"])
    return probs, np.asarray(Compose(post[2:])(data)["pred"])[0]


def test_bundle_matches_monai_bundle_inference(tmp_path: Path) -> None:
    """A 0.8 x 0.9 x 2.5 mm LAS volume through an RAS 1 mm bundle: assft predict == MONAI's bundle inference."""
    bundle = write_bundle(tmp_path / "bundle")
    affine = np.diag([-0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = (10.0, -5.0, 3.0)
    write_volume(tmp_path / "images" / "case_000.nii.gz", _image((20, 22, 7)), affine)
    result = assft("import", "--format", "monai-bundle", "--weights", bundle, "--out", tmp_path / "m.pt")
    assert result.returncode == 0, result.stderr
    result = assft("predict", "--model", tmp_path / "m.pt", "--images", tmp_path / "images", "--out",
                   tmp_path / "pred", "--probs")
    assert result.returncode == 0, result.stderr
    theirs, their_labels = bundle_inference(bundle, tmp_path / "images" / "case_000.nii.gz")
    ours = _probs(tmp_path / "pred", "case_000")
    written = nib.load(tmp_path / "pred" / "case_000.nii.gz")
    assert written.shape == (20, 22, 7) and np.allclose(written.affine, affine)
    assert np.abs(ours - theirs).max() < 1e-4
    assert (np.asarray(written.dataobj) == their_labels).mean() == 1.0

    from assft.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.preprocess.orientation == "RAS" and ckpt.preprocess.target_spacing == (1.0, 1.0, 1.0)
    assert ckpt.labels == {0: "background", 1: "organ", 2: "lesion"} and ckpt.kind == "supervised"
    assert ckpt.metadata["inference"] == {"roi_size": [16, 16, 16], "overlap": 0.5, "mode": "gaussian",
                                          "blend": "logits"}


@pytest.mark.parametrize("transform, name", [
    ({"_target_": "CropForegroundd", "keys": "image", "source_key": "image"}, "CropForegroundd"),
    ({"_target_": "Spacingd", "keys": "image", "pixdim": [1.0, 1.0, 1.0], "mode": "nearest"}, "Spacingd"),
])
def test_bundle_with_unmappable_transform_refused(transform: dict, name: str, tmp_path: Path) -> None:
    """A transform assft cannot reproduce: one line naming it, exit 2, nothing written."""
    bundle = write_bundle(tmp_path / "bundle", extra_transform=transform)
    result = assft("import", "--format", "monai-bundle", "--weights", bundle, "--out", tmp_path / "m.pt")
    assert result.returncode == 2, result.stderr
    assert name in result.stderr and "cannot reproduce" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()


def test_ct_bundle_chain_maps_onto_preprocess_config(tmp_path: Path) -> None:
    """The spleen-CT chain (RAS, 1.5 x 1.5 x 2 mm, window -57..164 HU -> 0..1 clipped) maps field by field, and the
    window normalises as MONAI's ScaleIntensityRange does (known answer)."""
    from monai.bundle import ConfigParser

    from assft.config import PreprocessConfig
    from assft.data.preprocess import normalize_intensity
    from assft.pretrain.monai_import import bundle_preprocess

    parser = ConfigParser({"preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": [1.5, 1.5, 2.0], "mode": "bilinear"},
        {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -57, "a_max": 164, "b_min": 0.0,
         "b_max": 1.0, "clip": True}]}})
    config, _ = bundle_preprocess(parser, tmp_path, 1)
    assert config == PreprocessConfig(normalization="range", intensity_range=(-57, 164, 0, 1), orientation="RAS",
                                      target_spacing=(1.5, 1.5, 2.0))
    hu = np.array([[[-1000.0, -57.0, 53.5, 164.0, 3000.0]]], dtype=np.float32)
    assert np.allclose(normalize_intensity(hu, config), [[[0.0, 0.0, 0.5, 1.0, 1.0]]])
