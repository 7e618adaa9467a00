"""nnU-Net v2 models as θ0, checked against nnU-Net itself (the `assft[nnunet]` extra's tests).

One session fixture builds a real results folder with nnU-Net's own fingerprint, planning, preprocessing, trainer and
checkpoint writer (tests/models/nnunet_reference.py, in a subprocess), on tiny generated CT-like volumes; nnU-Net's own
predictor (mirroring off) gives the reference. assft runs through the console script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

try:
    import nnunetv2  # noqa: F401
except ImportError as exc:
    if os.environ.get("ASSFT_REQUIRE_NNUNET") == "1":
        raise ImportError('ASSFT_REQUIRE_NNUNET=1 but nnunetv2 is missing: PIP_CONSTRAINT=.ci/constraints.txt '
                          'python3 -m pip install -e ".[nnunet]"') from exc
    pytest.skip("nnunetv2 (extra assft[nnunet]) is not installed", allow_module_level=True)

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]
REFERENCE = Path(__file__).with_name("nnunet_reference.py")
CASES = ("same", "aniso", "large")  # on the training grid; other spacing + flipped axis; several windows


def _env() -> dict[str, str]:
    return {**os.environ, "ASSFT_THREADS": "1", "OMP_NUM_THREADS": "1"}


def assft(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run the console script; with `check`, a non-zero exit fails the test with its output."""
    proc = subprocess.run(["assft", *map(str, args)], capture_output=True, text=True, env=_env(), timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"assft {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def nnunet_predict(results: Path, images: Path, out: Path) -> None:
    """nnU-Net's own predictor (tests/models/nnunet_reference.py predict) -> out/ID.npz (seg, probabilities)."""
    proc = subprocess.run([sys.executable, str(REFERENCE), "predict", str(results), str(images), str(out)],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def agreement(assft_dir: Path, nnunet_dir: Path) -> dict[str, tuple[float, float]]:
    """Per case: fraction of equal label voxels, max |probability difference| (assft's files vs nnU-Net's)."""
    out = {}
    for case in CASES:
        ref = np.load(nnunet_dir / f"{case}.npz")
        labels = np.asarray(nib.load(assft_dir / f"{case}_0000.nii.gz").dataobj)
        probs = np.moveaxis(np.asarray(nib.load(assft_dir / f"{case}_0000_probs.nii.gz").dataobj), -1, 0)
        assert labels.shape == ref["seg"].shape and probs.shape == ref["probabilities"].shape
        out[case] = (float((labels == ref["seg"]).mean()), float(np.abs(probs - ref["probabilities"]).max()))
    return out


@pytest.fixture(scope="session")
def nnunet_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real nnU-Net results folder, its import, and both predictions of the test images."""
    root = tmp_path_factory.mktemp("nnunet")
    proc = subprocess.run([sys.executable, str(REFERENCE), "build", str(root)], capture_output=True, text=True,
                          env=_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    results = Path((root / "results_dir.txt").read_text())
    ckpt = root / "imported.pt"
    assft("import", "--format", "nnunetv2", "--weights", results, "--out", ckpt)
    nnunet_predict(results, root / "test_images", root / "nnunet_pred")
    assft("predict", "--model", ckpt, "--images", root / "test_images", "--out", root / "assft_pred", "--probs")
    return {"root": root, "results": results, "ckpt": ckpt}


def test_import_records_where_the_model_came_from(nnunet_world):
    raw = torch.load(nnunet_world["ckpt"], weights_only=True)
    results = nnunet_world["results"]
    described = raw["preprocess"]["nnunet"]
    assert raw["preprocess"]["scheme"] == "nnunetv2" and raw["model_config"]["name"] == "nnunetv2"
    assert described["plans"] == json.loads((results / "plans.json").read_text())
    assert described["dataset_json"] == json.loads((results / "dataset.json").read_text())
    assert described["fingerprint"] == json.loads((results / "dataset_fingerprint.json").read_text())
    assert (described["configuration"], described["fold"], described["trainer"]) == ("3d_fullres", "0",
                                                                                     "nnUNetTrainer")
    import hashlib

    assert described["plans_sha256"] == hashlib.sha256((results / "plans.json").read_bytes()).hexdigest()
    assert raw["labels"] == {"0": "background", "1": "core", "2": "rim"}
    nn_weights = torch.load(results / "fold_0" / "checkpoint_final.pth", weights_only=False)["network_weights"]
    assert set(nn_weights) == set(raw["state_dict"])
    assert all(torch.equal(nn_weights[k], raw["state_dict"][k]) for k in nn_weights)


def test_predict_matches_nnunets_own_predictor(nnunet_world):
    root = nnunet_world["root"]
    found = agreement(root / "assft_pred", root / "nnunet_pred")
    print("agreement vs nnU-Net (voxels equal, max |dp|):", found)
    for case, (equal, max_diff) in found.items():
        assert equal >= 0.999, (case, equal)
        assert max_diff <= 1e-4, (case, max_diff)
    # the reference is not trivial: every class is predicted somewhere
    assert set(np.unique(np.load(root / "nnunet_pred" / "large.npz")["seg"])) == {0, 1, 2}


def test_other_grid_comes_back_on_its_own_grid(nnunet_world):
    root = nnunet_world["root"]
    image = nib.load(root / "test_images" / "aniso_0000.nii.gz")
    pred = nib.load(root / "assft_pred" / "aniso_0000.nii.gz")
    assert pred.shape == image.shape and np.allclose(pred.affine, image.affine)
    truth = np.asarray(nib.load(root / "label_aniso.nii.gz").dataobj)
    inside = truth > 0
    # the flipped, anisotropic case lands on its own voxels: its blob is found where it is
    assert (np.asarray(pred.dataobj)[inside] > 0).mean() > 0.5


def test_maps_and_gallery_pictures_come_back_on_the_original_grid(nnunet_world):
    """A map that is not a probability takes nnU-Net's way back without its softmax (a map of ones: 1 inside
    nnU-Net's crop, 0 outside); the gallery picture of an nnU-Net case is cut on the file's grid, beside its label."""
    from assft.data.cases import Case
    from assft.data.preprocess import load_case, to_original_grid
    from assft.finetune.pseudo_labels import capture_picture
    from assft.models.checkpoint import load_checkpoint

    root = nnunet_world["root"]
    case = Case("aniso", (root / "test_images" / "aniso_0000.nii.gz",), None)
    loaded = load_case(case, load_checkpoint(nnunet_world["ckpt"]).preprocess, with_label=False)
    assert loaded.nnunet_grid is not None and loaded.grid_affine is None
    ones = to_original_grid(torch.ones((1, *loaded.image.shape[1:])), loaded, probabilities=False)[0].numpy()
    bbox = loaded.nnunet_grid.properties["bbox_used_for_cropping"]
    assert ones.shape == loaded.original_shape
    assert np.allclose(ones[ones > 0.5], 1, atol=1e-5) and np.allclose(ones[ones <= 0.5], 0)
    assert int((ones > 0.5).sum()) == int(np.prod([int(hi) - int(lo) for lo, hi in bbox]))
    probs = torch.zeros((3, *loaded.image.shape[1:]))
    probs[0] = 1
    probs[1] = 2  # class 1 wherever nnU-Net's crop reaches; background outside it
    truth = np.asarray(nib.load(root / "label_aniso.nii.gz").dataobj).astype(np.int64)
    picture = capture_picture(loaded, torch.softmax(probs, 0), truth)
    assert picture.truth is not None and picture.pseudo_label.max() == 1


def test_finetune_then_export_round_trips_through_nnunet(nnunet_world, tmp_path):
    from assft.data.layout import load_dataset
    from assft.data.preprocess import load_case
    from assft.models.checkpoint import load_checkpoint

    root = nnunet_world["root"]
    labeled = tmp_path / "labeled"
    (labeled / "imagesTr").mkdir(parents=True)
    (labeled / "labelsTr").mkdir()
    raw_ds = Path(nnunet_world["results"]).parents[2] / "raw" / "Dataset001_Tiny"
    for image in sorted((raw_ds / "imagesTr").glob("*.nii.gz"))[:2]:
        case = image.name[: -len("_0000.nii.gz")]
        shutil.copy(image, labeled / "imagesTr" / f"{case}.nii.gz")
        shutil.copy(raw_ds / "labelsTr" / f"{case}.nii.gz", labeled / "labelsTr" / f"{case}.nii.gz")
    imported = load_checkpoint(nnunet_world["ckpt"])
    first = load_case(load_dataset(labeled).cases[0], imported.preprocess)
    assert first.nnunet_grid is not None and first.label.shape == first.image.shape[1:]
    # the user's path: SSFT (labeled steps, pseudo-labels of the pool, both) on the imported model
    assft("finetune", "--model", nnunet_world["ckpt"], "--labeled", labeled, "--unlabeled", root / "test_images",
          "--out", tmp_path / "ft", "--steps", "2", "--ssft-steps", "2", "--batch-size", "2", "--patch", "28,32,28")
    tuned = tmp_path / "ft" / "finetuned.pt"
    changed = load_checkpoint(tuned).state_dict
    assert any(not torch.equal(imported.state_dict[k], v) for k, v in changed.items())
    exported = tmp_path / "exported"
    assft("export", tuned, "--format", "nnunetv2", "--out", exported)
    assert (exported / "fold_0" / "checkpoint_final.pth").is_file() and (exported / "plans.json").is_file()
    assert (exported / "dataset_fingerprint.json").is_file()
    written = torch.load(exported / "fold_0" / "checkpoint_final.pth", weights_only=True)
    original = torch.load(nnunet_world["results"] / "fold_0" / "checkpoint_final.pth", weights_only=True)
    for key in ("trainer_name", "inference_allowed_mirroring_axes"):
        assert written[key] == original[key], key
    assert written["init_args"]["configuration"] == original["init_args"]["configuration"]
    nnunet_predict(exported, root / "test_images", tmp_path / "nnunet_pred")
    assft("predict", "--model", tuned, "--images", root / "test_images", "--out", tmp_path / "assft_pred", "--probs")
    found = agreement(tmp_path / "assft_pred", tmp_path / "nnunet_pred")
    print("fine-tuned, exported, agreement vs nnU-Net:", found)
    for case, (equal, max_diff) in found.items():
        assert equal >= 0.999 and max_diff <= 1e-4, (case, equal, max_diff)
    # a second export to the same folder is refused, and leaves it as it was
    proc = assft("export", tuned, "--format", "nnunetv2", "--out", exported, check=False)
    assert proc.returncode == 2 and "not empty" in proc.stderr + proc.stdout
    assert sorted(p.name for p in exported.iterdir()) == ["dataset.json", "dataset_fingerprint.json", "fold_0",
                                                          "plans.json"]


def _refused(args: list, out: Path, expect: str, env: dict | None = None) -> None:
    proc = subprocess.run(["assft", *map(str, args)], capture_output=True, text=True, env=env or _env(), timeout=300)
    message = (proc.stderr + proc.stdout).strip()
    assert proc.returncode == 2, message
    assert len(message.splitlines()) == 1 or message.startswith("error:"), message
    assert expect in message, message
    assert not out.exists()


def test_bad_results_folders_are_refused_with_one_line(nnunet_world, tmp_path):
    results = nnunet_world["results"]
    out = tmp_path / "x.pt"
    no_plans = tmp_path / "no_plans"
    shutil.copytree(results, no_plans)
    (no_plans / "plans.json").unlink()
    _refused(["import", "--format", "nnunetv2", "--weights", no_plans, "--out", out], out, "no plans.json")
    _refused(["import", "--format", "nnunetv2", "--weights", results, "--fold", "3", "--out", out], out,
             "fold '3' does not exist")
    pickled = tmp_path / "pickled"
    shutil.copytree(results, pickled)
    target = pickled / "fold_0" / "checkpoint_final.pth"
    raw = torch.load(target, weights_only=False)
    raw["logging"] = argparse.Namespace(note="a Python object, not data")
    torch.save(raw, target)
    _refused(["import", "--format", "nnunetv2", "--weights", pickled, "--out", out], out, "--trust-pickle")
    # nnunetv2 missing: a stand-in package that fails to import as an absent one does
    shim = tmp_path / "shim" / "nnunetv2"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'nnunetv2'\", name='nnunetv2')\n")
    env = {**_env(), "PYTHONPATH": os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])}
    _refused(["import", "--format", "nnunetv2", "--weights", results, "--out", out], out, "assft[nnunet]", env)
    # a checkpoint that did not come from nnU-Net cannot be exported as a results folder
    _refused(["export", nnunet_world["ckpt"], "--format", "monai", "--out", tmp_path / "e1"], tmp_path / "e1",
             "--format")


def test_query_on_an_imported_model(nnunet_world, tmp_path):
    root, ckpt = nnunet_world["root"], nnunet_world["ckpt"]
    # the results folder itself, where a checkpoint is expected, points to the conversion
    _refused(["predict", "--model", nnunet_world["results"], "--images", root / "test_images", "--out",
              tmp_path / "folder"], tmp_path / "folder", "assft import --format nnunetv2")
    assft("query", "--model", ckpt, "--images", root / "test_images", "--budget", "1", "--out", tmp_path / "random",
          "--strategy", "random")
    assert (tmp_path / "random" / "selection.csv").is_file()
    # the paper's KD needs BatchNorm statistics; nnU-Net's InstanceNorm has none: the error names the fix
    _refused(["query", "--model", ckpt, "--images", root / "test_images", "--budget", "1", "--out", tmp_path / "kd",
              "--strategy", "assft", "--kd-source", "running_stats"], tmp_path / "kd", "assft fingerprint")
    # ... and the fix it names works: a source fingerprint feeds KD
    assft("fingerprint", "--model", ckpt, "--images", root / "test_images", "--out", tmp_path / "fp.json")
    assft("query", "--model", ckpt, "--images", root / "test_images", "--budget", "1", "--out", tmp_path / "kd",
          "--strategy", "assft", "--fingerprint", tmp_path / "fp.json")
    assert (tmp_path / "kd" / "selection.csv").is_file()
