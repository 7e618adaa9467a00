"""nnU-Net's own side of the nnU-Net tests, run in a subprocess (nnU-Net reads its folders from the environment at
import time and spawns workers): plan and preprocess a tiny dataset, train a few steps, write a real results folder;
predict a folder of images with nnU-Net's own predictor.

    python tests/models/nnunet_reference.py build ROOT [--hippocampus DIR]  -> ROOT/results/<config dir>, ROOT/test_images
    python tests/models/nnunet_reference.py predict RESULTS IN OUT [--mirror] [--fold K]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

DATASET = "Dataset001_Tiny"
LABELS = {"background": 0, "core": 1, "rim": 2}


def _volume(rng: np.random.Generator, shape: tuple[int, int, int], centre: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like volume with a zero border (nnU-Net crops it) and two nested blobs (labels 1, 2)."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    dist = np.linalg.norm(grid - centre, axis=-1)
    label = np.zeros(shape, np.uint8)
    label[dist < 7] = 2
    label[dist < 4] = 1
    image = 40 + 15 * rng.standard_normal(shape)
    image[label == 2] += 120
    image[label == 1] += 260
    image[:2], image[-2:], image[:, :3] = 0, 0, 0  # background nnU-Net's crop-to-nonzero removes
    label[image == 0] = 0
    return image.astype(np.float32), label


def _write(path: Path, array: np.ndarray, spacing: tuple[float, float, float], flip: bool = False) -> None:
    import nibabel as nib

    affine = np.diag([*spacing, 1.0])
    if flip:  # another orientation: the first axis runs the other way, the third is tilted by a shear-free swap
        affine[0, 0] = -spacing[0]
        affine[0, 3] = spacing[0] * (array.shape[0] - 1)
    nib.save(nib.Nifti1Image(array, affine), str(path))


def build(root: Path, n_train: int = 4, steps: int = 6, hippocampus: Path | None = None) -> None:
    """Raw dataset -> nnU-Net fingerprint, plans, preprocessing -> a few training steps -> results folder.

    With `hippocampus` (an MSD Task04 folder), the first `n_train` of its cases are the raw dataset instead of the
    generated volumes (no test images are generated then)."""
    raw, pre, res = root / "raw", root / "preprocessed", root / "results"
    for folder in (raw, pre, res):
        folder.mkdir(parents=True, exist_ok=True)
    os.environ.update(nnUNet_raw=str(raw), nnUNet_preprocessed=str(pre), nnUNet_results=str(res),
                      nnUNet_n_proc_DA="1", nnUNet_def_n_proc="1")
    rng = np.random.default_rng(0)
    ds = raw / DATASET
    (ds / "imagesTr").mkdir(parents=True, exist_ok=True)
    (ds / "labelsTr").mkdir(parents=True, exist_ok=True)
    if hippocampus is not None:
        _link_hippocampus(hippocampus, ds, n_train)
    shape = (30, 34, 26)
    for i in range(n_train if hippocampus is None else 0):
        image, label = _volume(rng, shape, np.array(shape) / 2 + rng.uniform(-3, 3, 3))
        _write(ds / "imagesTr" / f"tiny_{i:03d}_0000.nii.gz", image, (1.0, 1.0, 1.0))
        _write(ds / "labelsTr" / f"tiny_{i:03d}.nii.gz", label, (1.0, 1.0, 1.0))
    (ds / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT" if hippocampus is None else "MRI"},
        "labels": LABELS if hippocampus is None else {"background": 0, "Anterior": 1, "Posterior": 2},
        "numTraining": n_train, "file_ending": ".nii.gz"}))
    if hippocampus is None:
        _test_images(root, rng, shape)
    _plan_and_train(root, ds, pre, n_train, steps)


def _link_hippocampus(source: Path, ds: Path, n: int) -> None:
    for image in sorted((source / "imagesTr").glob("*.nii.gz"))[:n]:
        case = image.name[: -len(".nii.gz")]
        (ds / "imagesTr" / f"{case}_0000.nii.gz").symlink_to(image.resolve())
        (ds / "labelsTr" / f"{case}.nii.gz").symlink_to((source / "labelsTr" / image.name).resolve())


def _test_images(root: Path, rng: np.random.Generator, shape: tuple[int, int, int]) -> None:
    # test images: one on the training grid, one with another spacing and orientation, one with another shape
    test = root / "test_images"
    test.mkdir(exist_ok=True)
    for name, shp, spacing, flip in (("same", shape, (1.0, 1.0, 1.0), False),
                                     ("aniso", (24, 40, 20), (1.3, 0.8, 1.6), True),
                                     ("large", (44, 50, 38), (1.0, 1.0, 1.0), False)):
        image, label = _volume(rng, shp, np.array(shp) / 2)
        _write(test / f"{name}_0000.nii.gz", image, spacing, flip)
        _write(root / f"label_{name}.nii.gz", label, spacing, flip)


def _plan_and_train(root: Path, ds: Path, pre: Path, n_train: int, steps: int) -> None:
    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset, plan_experiment_dataset, preprocess_dataset)
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    extract_fingerprint_dataset(1, num_processes=1, check_dataset_integrity=False, verbose=False,
                                show_progress_bar=False)
    plan_experiment_dataset(1)
    preprocess_dataset(1, configurations=("3d_fullres",), num_processes=[1], show_progress_bar=False)

    plans = json.loads((pre / DATASET / "nnUNetPlans.json").read_text())
    dataset_json = json.loads((ds / "dataset.json").read_text())
    trainer = nnUNetTrainer({**plans, "continue_training": False}, "3d_fullres", 0, dataset_json, device=torch.device("cpu"))
    trainer.enable_deep_supervision = False  # one output: the batches below need no downsampled targets
    trainer.initialize()
    trainer.network.train()
    torch.manual_seed(0)
    patch = trainer.configuration_manager.patch_size
    pre_cls = trainer.configuration_manager.preprocessor_class()
    cases = []
    for image in sorted((ds / "imagesTr").glob("*_0000.nii.gz")):
        case = image.name[: -len("_0000.nii.gz")]
        data, seg, _ = pre_cls.run_case([str(image)], str(ds / "labelsTr" / f"{case}.nii.gz"), trainer.plans_manager,
                                        trainer.configuration_manager, dataset_json)
        cases.append((_fit(data, patch), _fit(np.maximum(seg, 0), patch)))
    for step in range(steps):
        x, y = cases[step % n_train]
        trainer.train_step({"data": torch.from_numpy(x[None]).float(), "target": torch.from_numpy(y[None]).long()})
    out = Path(trainer.output_folder)
    out.mkdir(parents=True, exist_ok=True)
    # what nnUNetTrainer.on_train_start writes beside the folds
    (out.parent / "plans.json").write_text(json.dumps(plans, indent=2))
    (out.parent / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    shutil.copy(pre / DATASET / "dataset_fingerprint.json", out.parent / "dataset_fingerprint.json")
    trainer.inference_allowed_mirroring_axes = (0, 1, 2)  # what a 3D training stores (its mirroring augmentation)
    trainer.save_checkpoint(str(out / "checkpoint_final.pth"))
    (root / "results_dir.txt").write_text(str(out.parent))


def _fit(array: np.ndarray, patch: tuple[int, ...]) -> np.ndarray:
    """Centre crop / zero pad (C, X, Y, Z) to the patch."""
    out = np.zeros((array.shape[0], *patch), dtype=array.dtype)
    src, dst = [], []
    for s, p in zip(array.shape[1:], patch):
        a = max(0, (s - p) // 2)
        b = max(0, (p - s) // 2)
        n = min(s, p)
        src.append(slice(a, a + n))
        dst.append(slice(b, b + n))
    out[(slice(None), *dst)] = array[(slice(None), *src)]
    return out


def predict(results: Path, images: Path, out: Path, mirror: bool = False, fold: str = "0") -> float:
    """nnU-Net's own predictor over every `*_0000.nii.gz` in `images`: `ID.nii.gz` + `ID.npz` (probabilities).

    Returns the seconds nnU-Net spent (model loading excluded)."""
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(results), use_folds=(fold,))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in sorted(images.glob("*_0000.nii.gz")):
        case = path.name[: -len("_0000.nii.gz")]
        image, props = SimpleITKIO().read_images([str(path)])
        seg, probs = predictor.predict_single_npy_array(image, props, None, None, True)
        # nnU-Net's arrays are SimpleITK's (z, y, x); store them as written files are read by nibabel (x, y, z)
        np.savez(out / f"{case}.npz", seg=seg.transpose(2, 1, 0), probabilities=probs.transpose(0, 3, 2, 1))
    return time.perf_counter() - start


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "build":
        source = Path(sys.argv[sys.argv.index("--hippocampus") + 1]) if "--hippocampus" in sys.argv else None
        build(Path(sys.argv[2]), n_train=8 if source else 4, steps=4 if source else 6, hippocampus=source)
    elif command == "predict":
        fold = sys.argv[sys.argv.index("--fold") + 1] if "--fold" in sys.argv else "0"
        seconds = predict(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), "--mirror" in sys.argv, fold)
        print(json.dumps({"seconds": seconds}))
    else:
        raise SystemExit(f"unknown command {command}")
