"""The documented "your own data" path, through the console script: a NIfTI source model, a target pool exported as
DICOM series (one folder per case, as a hospital export), class names written with `data init`, `data check`,
`adapt`, `query` against the θ0 the adapted checkpoint names, and the README's campaign on the DICOM pool with a NIfTI
test set: round 0 adapts, the picks come with pre-annotations, and status shows source -> adapted -> round 1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ASSFT = shutil.which("assft")
ENTRY = [ASSFT] if ASSFT else [sys.executable, "-c", "from assft.cli.app import main; main()"]
CLASSES = "0:background,1:liver,2:spleen,3:kidney_left,4:kidney_right"
TINY = ("--steps", "2", "--batch-size", "1", "--patch", "16,16,16")


def assft(*args: str, cwd: Path) -> str:
    """Run `assft ARGS` in `cwd`; stdout and stderr as one whitespace-normalised string; fails on a non-zero exit."""
    env = {**os.environ, "ASSFT_THREADS": "1", "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([*ENTRY, *args], cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8",
                          timeout=600)
    assert proc.returncode == 0, f"assft {' '.join(args)} -> exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return " ".join((proc.stdout + proc.stderr).split())


@pytest.mark.slow
def test_a_dicom_pool_from_check_to_a_campaign_round(tmp_path: Path) -> None:
    from assft.data.io import read_volume
    from assft.data.synthetic import make_phantom_dataset, write_dicom_series

    source = make_phantom_dataset(tmp_path / "source", 3, shape=(16, 16, 16), seed=0)
    test_set = make_phantom_dataset(tmp_path / "test_nifti", 2, shape=(16, 16, 16), seed=2, contrast="mr")
    target = make_phantom_dataset(tmp_path / "target_nifti", 6, shape=(16, 16, 16), seed=1, contrast="mr")
    pool, truth = tmp_path / "pool", tmp_path / "truth"
    truth.mkdir()
    for image in sorted((target / "imagesTr").iterdir()):
        case_id = image.name[: -len(".nii.gz")]
        array, affine = read_volume(image)
        write_dicom_series(pool / case_id, np.round(array), affine)  # one series per case, as exported
        shutil.copy(target / "labelsTr" / image.name, truth / image.name)  # the annotator's answers, kept apart
    (pool / "export_log.txt").write_text("exported by the PACS\n")

    assft("train", "--data", str(source), "--out", "source_model", "--arch", "unet", *TINY, cwd=tmp_path)
    model = tmp_path / "source_model" / "best.pt"

    checked = assft("data", "check", str(pool), cwd=tmp_path)
    assert "6 (0 labeled)" in checked and "not read: export_log.txt (unknown format)" in checked
    assert f"assft data init {pool} --classes" in checked
    assft("data", "init", str(pool), "--classes", CLASSES, "--modality", "MRI", cwd=tmp_path)
    checked = assft("data", "check", str(pool), cwd=tmp_path)
    assert "no classes" not in checked and "kidney_right" in checked

    adapted = assft("adapt", "--model", str(model), "--images", str(pool), "--out", "adapted.pt", cwd=tmp_path)
    assert "adabn: adapted" in adapted
    picked = assft("query", "--model", "adapted.pt", "--images", str(pool), "--budget", "2", "--out", "q",
                   cwd=tmp_path)
    assert f"KD measured against θ0 = {model} (from the checkpoint's provenance)" in picked

    (tmp_path / "campaign.yaml").write_text(
        "finetune: {train: {steps: 1, batch_size: 1, patch_size: [16, 16, 16]}, ssft_steps: 1}\n"
        "inference: {roi_size: [16, 16, 16], channels_last: false}\n")
    camp = tmp_path / "camp"
    assft("campaign", "init", "--model", str(model), "--images", str(pool), "--out", str(camp), "--budget", "2",
          "--rounds", "1", "--adapt", "auto", "--test", str(test_set), "--config", "campaign.yaml", "--no-figures",
          cwd=tmp_path)
    assft("campaign", "next", str(camp), cwd=tmp_path)
    to_annotate = camp / "rounds" / "r001" / "to_annotate"
    picks = sorted(p.name for p in to_annotate.iterdir() if not p.name.startswith("."))
    assert len(picks) >= 2 and all((to_annotate / p).is_dir() for p in picks if not p.endswith(".nii.gz"))
    picked_cases = [p for p in picks if (pool / p).is_dir()]
    assert len(picked_cases) == 2
    for case_id in picked_cases:  # the model's label map to correct, on the DICOM series' own grid
        pre = nib.load(str(to_annotate / "pre_annotations" / f"{case_id}.nii.gz"))
        _, series_affine = read_volume(pool / case_id)
        np.testing.assert_allclose(pre.affine, series_affine, atol=1e-4)
    labels = tmp_path / "labels"
    labels.mkdir()
    for case_id in picked_cases:
        shutil.copy(truth / f"{case_id}.nii.gz", labels / f"{case_id}.nii.gz")
    assft("campaign", "import-labels", str(camp), "--labels", str(labels), cwd=tmp_path)
    assft("campaign", "finetune", str(camp), cwd=tmp_path)
    status = assft("campaign", "status", str(camp), cwd=tmp_path)
    for row in ("source model", "adapted (adabn)", "round 1"):  # did it get better than what I had?
        assert row in status, status
    finetuned = next(camp.rglob("finetuned.pt"))
    prediction = tmp_path / "pred"
    assft("predict", "--model", str(finetuned), "--images", str(pool), "--out", str(prediction), cwd=tmp_path)
    written = sorted(prediction.glob("*.nii.gz"))
    assert len(written) == 6
    first = nib.load(str(written[0]))
    _, pool_affine = read_volume(pool / written[0].name[: -len(".nii.gz")])
    np.testing.assert_allclose(first.affine, pool_affine, atol=1e-4)  # NIfTI output on the DICOM input's grid
