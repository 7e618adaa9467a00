"""Bad inputs, faults and attacks through the real console entry point.

Every case runs `assft ...` as a subprocess in its own sandbox folder and must end with the expected exit code, a
message that names the file or option and the fix, no traceback, and no change on disk: the sandbox (its inputs
and any --out inside it) is hashed before and after, and so are the shared inputs every case reads.

Cases run concurrently (each in its own sandbox), most of them fail before torch is imported, and the data are
16^3 phantoms, so the whole matrix takes well under two minutes on two cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow  # the matrix runs ~110 console-script cases

ASSFT = shutil.which("assft")
ENTRY = [ASSFT] if ASSFT else [sys.executable, "-c", "from assft.cli.app import main; main()"]


@dataclass(frozen=True)
class Base:
    """Inputs shared by every case (read, never written)."""

    root: Path
    data: Path  # 4 labeled 16^3 phantoms, MSD layout
    model: Path  # a tiny supervised checkpoint for those phantoms
    camp: Path  # a fresh campaign (no round yet) on `data`


@dataclass(frozen=True)
class Case:
    """One bad input: the command line, what must come back, and how to build its inputs in the sandbox."""

    id: str
    args: tuple[str, ...]  # may use {data}, {model}, {camp}, {sb} (the sandbox)
    code: int
    needles: tuple[str, ...]  # each must appear in the message (the file or option, and words of the fix)
    kind: str = "error"  # error: one "error: ..." line; usage: typer's usage message; problems: `data check` list
    prepare: Callable[[Path, Base], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    one_line: bool = True


# ---------------------------------------------------------------------------------------------------------------
# Builders of bad inputs (each writes only inside the sandbox `sb`)


def copy_data(sb: Path, base: Base, name: str = "d") -> Path:
    """A private copy of the phantom dataset."""
    return Path(shutil.copytree(base.data, sb / name))


def edit_meta(sb: Path, base: Base, change: Callable[[dict], object], name: str = "d") -> Path:
    """A copy of the dataset whose dataset.json was changed by `change(meta)` (a return value replaces it)."""
    root = copy_data(sb, base, name)
    meta = json.loads((root / "dataset.json").read_text())
    out = change(meta)
    (root / "dataset.json").write_text(json.dumps(meta if out is None else out))
    return root


def replace_label(sb: Path, base: Base, make: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
                  ) -> Path:
    """A copy of the dataset whose first label is `make(label, affine)` -> (array, affine)."""
    root = copy_data(sb, base)
    path = root / "labelsTr" / "phantom_000.nii.gz"
    img = nib.load(path)
    array, affine = make(np.asarray(img.dataobj), img.affine)
    nib.save(nib.Nifti1Image(array, affine), path)
    return root


def replace_image(sb: Path, base: Base, array: np.ndarray) -> Path:
    """A copy of the dataset whose first image is `array`."""
    root = copy_data(sb, base)
    nib.save(nib.Nifti1Image(array, np.eye(4)), root / "imagesTr" / "phantom_000.nii.gz")
    return root


def huge_header(sb: Path, base: Base) -> None:
    """A dataset whose first image is a 352-byte header declaring 2000^3 float32 voxels (30 GB)."""
    root = copy_data(sb, base)
    header = nib.Nifti1Header()
    header.set_data_shape((2000, 2000, 2000))
    header.set_data_dtype(np.float32)
    with open(root / "imagesTr" / "big.nii", "wb") as fh:
        header.write_to(fh)
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"][0]["image"] = "./imagesTr/big.nii"
    (root / "dataset.json").write_text(json.dumps(meta))


def outside_file(sb: Path, base: Base) -> None:
    """A secret NIfTI next to the dataset, outside its folder."""
    (sb / "secret").mkdir()
    shutil.copy(base.data / "imagesTr" / "phantom_000.nii.gz", sb / "secret" / "secret.nii.gz")


def tweak_checkpoint(sb: Path, base: Base, change: Callable[[dict], None], name: str = "m.pt") -> None:
    """A copy of the checkpoint with `change(raw)` applied to its stored dict."""
    raw = torch.load(base.model, weights_only=True)
    change(raw)
    torch.save(raw, sb / name)


class _Payload:
    """Pickles to os.system(command): what a malicious .pt file would run on a plain torch.load."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def malicious_pickle(sb: Path, base: Base) -> None:
    """A .pt whose pickle would create `pwned` in the sandbox if it ran (the snapshot would then differ)."""
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(f"touch {sb / 'pwned'}")}, sb / "evil.pt")


def campaign_copy(sb: Path, base: Base, queried: bool = False) -> Path:
    """A private copy of the campaign; with `queried`, round 1 awaits labels for phantom_000."""
    from assft.campaign.ledger import Ledger

    camp = Path(shutil.copytree(base.camp, sb / "c"))
    if queried:
        Ledger.load(camp).update_round(1, "queried", selected=["phantom_000"])
    return camp


def label_folder(sb: Path, base: Base, array: Callable[[np.ndarray], np.ndarray]) -> None:
    """A queried campaign and a labels/ folder whose phantom_000 label is `array(true label)`."""
    campaign_copy(sb, base, queried=True)
    img = nib.load(base.data / "labelsTr" / "phantom_000.nii.gz")
    (sb / "labels").mkdir()
    nib.save(nib.Nifti1Image(array(np.asarray(img.dataobj)), img.affine), sb / "labels" / "phantom_000.nii.gz")


def copy_folder_without_json(sb: Path, base: Base) -> Path:
    """A private copy of the phantom dataset as a plain folder (imagesTr/ + labelsTr/, no dataset.json)."""
    root = copy_data(sb, base)
    (root / "dataset.json").unlink()
    return root


def write(sb: Path, name: str, text: str) -> Path:
    """A text file in the sandbox."""
    path = sb / name
    path.write_text(text)
    return path


def shifted(affine: np.ndarray) -> np.ndarray:
    """The affine moved 5 mm along x: the label no longer lies on its image."""
    out = np.array(affine, dtype=np.float64)
    out[0, 3] += 5.0
    return out


def set_first(key: str, value: object) -> Callable[[dict], None]:
    """Change the first training entry's `key`."""
    return lambda meta: meta["training"][0].__setitem__(key, value)


SMALL = ("--steps", "1", "--batch-size", "1", "--patch", "16,16,16", "--limit", "1")
NOT_3D_FIX = "one file each"

CASES: list[Case] = [
    # --- usage errors: typer's usage message, exit 2 (was: a traceback or exit 1) ---
    Case("unknown-option", ("query", "--bogus"), 2, ("--bogus",), "usage"),
    Case("not-an-integer", ("train", "--data", "{data}", "--out", "o", "--steps", "abc"), 2, ("'--steps'",), "usage"),
    Case("missing-required-option", ("train", "--out", "o"), 2, ("--data",), "usage"),
    Case("missing-argument", ("data", "check"), 2, ("Missing argument 'path'",), "usage"),
    Case("unknown-command", ("trian",), 2, ("trian",), "usage"),
    Case("model-file-missing", ("query", "--model", "nope.pt", "--images", "{data}", "--budget", "2", "--out", "q"),
         2, ("'--model'", "nope.pt"), "usage"),
    Case("steps-zero", ("train", "--data", "{data}", "--out", "o", "--steps", "0"), 2, ("'--steps'", "greater than or equal to 1"), "usage"),
    Case("steps-negative", ("train", "--data", "{data}", "--out", "o", "--steps", "-3"), 2, ("'--steps'",), "usage"),
    Case("batch-size-zero", ("train", "--data", "{data}", "--out", "o", "--batch-size", "0"), 2, ("'--batch-size'",),
         "usage"),
    Case("ssft-steps-negative", ("finetune", "--model", "{model}", "--images", "{data}", "--data", "{data}",
                                 "--out", "o", "--ssft-steps", "-1"), 2, ("'--ssft-steps'",), "usage"),
    Case("phantoms-n-zero", ("data", "phantoms", "--out", "p", "--n", "0"), 2, ("'--n'",), "usage"),
    # --- absurd sizes: refused before any work (was: a MemoryError after minutes, or a disk filled in silence) ---
    Case("phantoms-size-absurd", ("data", "phantoms", "--out", "p", "--n", "2", "--size", "100000"), 2,
         ("--size 100000x100000x100000", "over the limit", "--max-voxels")),
    Case("phantoms-count-over-disk", ("data", "phantoms", "--out", "p", "--n", "100000000", "--size", "16"), 2,
         ("100000000 phantoms", "GB free", "ask for fewer")),
    Case("roi-absurd", ("predict", "--model", "{model}", "--images", "{data}", "--out", "o", "--roi", "4096"), 2,
         ("--roi 4096x4096x4096", "over the limit")),
    Case("rounds-zero", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out", "c", "--rounds", "0"),
         2, ("'--rounds'",), "usage"),
    Case("jobs-zero", ("simulate", "--config", "x.yaml", "--jobs", "0"), 2, ("'--jobs'",), "usage"),
    Case("executor-unknown", ("simulate", "--config", "x.yaml", "--executor", "dask"), 2,
         ("--executor 'dask'", "--executor ray")),
    Case("ray-option-without-ray", ("simulate", "--config", "x.yaml", "--address", "auto"), 2,
         ("--address", "add --executor ray")),
    Case("ray-with-jobs", ("simulate", "--config", "x.yaml", "--executor", "ray", "--jobs", "2"), 2,
         ("--jobs", "--cpus-per-campaign")),
    Case("ray-cpus-zero", ("simulate", "--config", "x.yaml", "--executor", "ray", "--cpus-per-campaign", "0"), 2,
         ("--cpus-per-campaign", "> 0")),
    Case("max-voxels-env-not-a-number", ("data", "check", "{data}"), 2, ("'--max-voxels'", "ASSFT_MAX_VOXELS"), "usage",
         env={"ASSFT_MAX_VOXELS": "abc"}),
    Case("report-folder-missing", ("report", "nowhere"), 2, ("nowhere",), "usage"),
    # --- root options ---
    Case("threads-not-a-number", ("--threads", "abc", "data", "check", "{data}"), 2, ("--threads", "--threads auto")),
    Case("max-voxels-zero", ("--max-voxels", "0", "data", "check", "{data}"), 2, ("--max-voxels", ">= 1")),
    # --- `data check` finds problems: exit 1 through the real entry point (was: exit 0) ---
    Case("check-label-missing", ("data", "check", "d"), 1, ("phantom_001.nii.gz", "listed label file is missing"),
         "problems", prepare=lambda sb, b: (copy_data(sb, b) / "labelsTr" / "phantom_001.nii.gz").unlink()),
    Case("check-2d-image", ("data", "check", "d"), 1, ("phantom_000.nii.gz", "expected a 3D volume", NOT_3D_FIX),
         "problems", prepare=lambda sb, b: replace_image(sb, b, np.zeros((16, 16), np.float32))),
    Case("check-4d-image", ("data", "check", "d"), 1, ("(16, 16, 16, 2)", "expected a 3D volume"), "problems",
         prepare=lambda sb, b: replace_image(sb, b, np.zeros((16, 16, 16, 2), np.float32))),
    Case("check-nan-image", ("data", "check", "d"), 1, ("phantom_000.nii.gz", "NaN/Inf"), "problems",
         prepare=lambda sb, b: replace_image(sb, b, np.full((16, 16, 16), np.nan, np.float32))),
    Case("check-corrupt-image", ("data", "check", "d"), 1, ("phantom_000.nii.gz", "cannot read NIfTI", "re-export"),
         "problems", prepare=lambda sb, b: (copy_data(sb, b) / "imagesTr" / "phantom_000.nii.gz").write_bytes(b"junk")),
    Case("check-4d-label", ("data", "check", "d"), 1, ("phantom_000.nii.gz", "label must be one 3D volume"),
         "problems", prepare=lambda sb, b: replace_label(sb, b, lambda a, aff: (np.stack([a, a], -1), aff))),
    Case("check-float-label", ("data", "check", "d"), 1, ("phantom_000.nii.gz", "non-integer"), "problems",
         prepare=lambda sb, b: replace_label(sb, b, lambda a, aff: (a.astype(np.float32) + 0.4, aff))),
    Case("check-unknown-label-value", ("data", "check", "d"), 1, ("phantom_000.nii.gz", "[7]", "dataset.json"),
         "problems", prepare=lambda sb, b: replace_label(sb, b, lambda a, aff: (np.where(a == 1, 7, a).astype(np.uint8),
                                                                                 aff))),
    Case("check-label-affine", ("data", "check", "d"), 1, ("phantom_000.nii.gz", "not on the image's grid", "origin 5.0 mm"), "problems",
         prepare=lambda sb, b: replace_label(sb, b, lambda a, aff: (a, shifted(aff)))),
    Case("check-header-2000-cubed", ("data", "check", "d"), 1, ("big.nii", "8,000,000,000 voxels", "--max-voxels"),
         "problems", prepare=huge_header),
    Case("check-header-only-2000-cubed", ("data", "check", "--header-only", "d"), 1, ("big.nii", "over the limit"),
         "problems", prepare=huge_header),
    Case("check-over-voxel-option", ("--max-voxels", "1000", "data", "check", "{data}"), 1,
         ("phantom_000.nii.gz", "over the limit of 1,000"), "problems"),
    # --- dataset.json: paths stay inside the dataset folder, entries are typed ---
    Case("json-dotdot-image", ("data", "check", "d"), 2, ("dataset.json", "../secret/secret.nii.gz",
                                                        "outside the dataset folder", "--allow-outside-root"),
         prepare=lambda sb, b: (outside_file(sb, b), edit_meta(sb, b, set_first("image", "../secret/secret.nii.gz")))),
    Case("json-absolute-image", ("data", "check", "d"), 2, ("dataset.json", "outside the dataset folder"),
         prepare=lambda sb, b: (outside_file(sb, b),
                                edit_meta(sb, b, set_first("image", str(sb / "secret" / "secret.nii.gz"))))),
    Case("json-dotdot-label", ("data", "check", "d"), 2, ("'label'", "outside the dataset folder"),
         prepare=lambda sb, b: (outside_file(sb, b), edit_meta(sb, b, set_first("label", "../secret/secret.nii.gz")))),
    Case("json-hidden-dotdot", ("data", "check", "d"), 2, ("outside the dataset folder",),
         prepare=lambda sb, b: (outside_file(sb, b),
                                edit_meta(sb, b, set_first("image", "./imagesTr/../../secret/secret.nii.gz")))),
    Case("json-image-int", ("data", "check", "d"), 2, ("dataset.json", "training entry 0 'image'", "path string"),
         prepare=lambda sb, b: edit_meta(sb, b, set_first("image", 5))),
    Case("json-label-list", ("data", "check", "d"), 2, ("training entry 0 'label'", "path string"),
         prepare=lambda sb, b: edit_meta(sb, b, set_first("label", ["x"]))),
    Case("json-image-empty", ("data", "check", "d"), 2, ("training entry 0 'image'", "non-empty"),
         prepare=lambda sb, b: edit_meta(sb, b, set_first("image", ""))),
    Case("json-image-nul", ("data", "check", "d"), 2, ("training entry 0 'image'", "path string"),
         prepare=lambda sb, b: edit_meta(sb, b, set_first("image", "a\x00b.nii.gz"))),
    Case("json-image-list-empty", ("data", "check", "d"), 2, ("training entry 0", "empty 'image' list"),
         prepare=lambda sb, b: edit_meta(sb, b, set_first("image", []))),
    Case("json-entry-without-image", ("data", "check", "d"), 2, ("training entry 1 has no 'image'",),
         prepare=lambda sb, b: edit_meta(sb, b, lambda m: m["training"].__setitem__(1, {"label": "x"}))),
    Case("json-top-level-list", ("data", "check", "d"), 2, ("dataset.json", "not a JSON object"),
         prepare=lambda sb, b: edit_meta(sb, b, lambda m: [m])),
    Case("json-syntax", ("data", "check", "d"), 2, ("dataset.json", "invalid JSON", "fix the syntax"),
         prepare=lambda sb, b: (copy_data(sb, b) / "dataset.json").write_text('{"labels": ')),
    Case("json-no-labels", ("data", "check", "d"), 2, ("dataset.json", "'labels'"),
         prepare=lambda sb, b: edit_meta(sb, b, lambda m: m.pop("labels"))),
    Case("json-labels-without-background", ("data", "check", "d"), 2, ("no background class 0",),
         prepare=lambda sb, b: edit_meta(sb, b, lambda m: m.__setitem__("labels", {"1": "liver"}))),
    Case("json-negative-label", ("data", "check", "d"), 2, ("negative class values [-1]",),
         prepare=lambda sb, b: edit_meta(sb, b, lambda m: m["labels"].__setitem__("-1", "x"))),
    Case("json-training-not-a-list", ("data", "check", "d"), 2, ("'training' list",),
         prepare=lambda sb, b: edit_meta(sb, b, lambda m: m.__setitem__("training", {"a": 1}))),
    Case("json-duplicate-ids", ("data", "check", "d"), 2, ("duplicate case ids: phantom_000",),
         prepare=lambda sb, b: edit_meta(sb, b, lambda m: m["training"].__setitem__(1, m["training"][0]))),
    Case("json-is-a-folder", ("data", "check", "d"), 2, ("dataset.json", "got a folder"),
         prepare=lambda sb, b: ((sb / "d").mkdir(), (sb / "d" / "dataset.json").mkdir())),
    Case("dataset-missing", ("data", "check", "nowhere"), 2, ("nowhere", "dataset folder not found")),
    Case("dataset-is-a-file", ("data", "check", "f.txt"), 2, ("f.txt", "expected a folder"),
         prepare=lambda sb, b: write(sb, "f.txt", "x")),
    Case("domains-apply-dotdot", ("domains", "apply", "--domain", "bias", "--data", "d", "--out", "shifted"), 2,
         ("dataset.json", "outside the dataset folder"),
         prepare=lambda sb, b: (outside_file(sb, b), edit_meta(sb, b, set_first("image", "../secret/secret.nii.gz")))),
    Case("domains-apply-over-voxel-cap", ("domains", "apply", "--domain", "bias", "--data", "{data}", "--out", "s"), 2,
         ("phantom_000.nii.gz", "over the limit of 100", "ASSFT_MAX_VOXELS"), env={"ASSFT_MAX_VOXELS": "100"}),
    Case("domains-unknown", ("domains", "apply", "--domain", "biass", "--data", "{data}", "--out", "s"), 2,
         ("'biass'", "Did you mean 'bias'")),
    Case("domains-out-is-in", ("domains", "apply", "--domain", "bias", "--data", "d", "--out", "d"), 2,
         ("--out is the input --data d", "outside every input"), prepare=copy_data),
    # --- output locations are checked before any work ---
    Case("split-out-is-a-folder", ("data", "split", "{data}", "--out", "dir"), 2, ("--out is an existing folder",),
         prepare=lambda sb, b: (sb / "dir").mkdir()),
    Case("split-bad-fractions", ("data", "split", "{data}", "--out", "s.json", "--fractions", "a=2,b"), 2,
         ("--fractions", "name=value")),
    Case("split-file-wrong-shape", ("train", "--data", "{data}", "--out", "o", "--split", "s.json", "--subset", "a"),
         2, ("s.json", "'b' is not a list of case ids"),
         prepare=lambda sb, b: write(sb, "s.json", json.dumps({"splits": {"a": ["phantom_000"], "b": 3}}))),
    Case("train-out-is-a-file", ("train", "--data", "{data}", "--out", "f.txt"), 2,
         ("f.txt", "--out is an existing file"), prepare=lambda sb, b: write(sb, "f.txt", "keep me")),
    Case("train-out-under-a-file", ("train", "--data", "{data}", "--out", "f.txt/run"), 2,
         ("--out lies under", "f.txt", "which is a file"), prepare=lambda sb, b: write(sb, "f.txt", "keep me")),
    Case("train-patch-zero", ("train", "--data", "{data}", "--out", "o", "--patch", "0,16,16"), 2,
         ("--patch", "positive integers")),
    Case("train-patch-text", ("train", "--data", "{data}", "--out", "o", "--patch", "big"), 2, ("--patch",)),
    Case("train-lr-zero", ("train", "--data", "{data}", "--out", "o", "--lr", "0"), 2, ("lr", "positive")),
    Case("evaluate-model-and-pred", ("evaluate", "--data", "{data}", "--out", "o"), 2,
         ("--model", "--pred", "exactly one")),
    Case("import-out-is-a-folder", ("import", "--format", "voco", "--weights", "w.pt", "--out", "dir"), 2,
         ("--out is an existing folder",), prepare=lambda sb, b: (sb / "dir").mkdir()),
    Case("finetune-both-labeled-options", ("finetune", "--model", "{model}", "--images", "{data}", "--data",
                                           "{data}", "--labeled-ids", "ids.txt", "--out", "o"), 2,
         ("--data", "--labeled-ids", "exactly one"), prepare=lambda sb, b: write(sb, "ids.txt", "phantom_000\n")),
    # --- campaigns ---
    Case("campaign-config-missing", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out", "c",
                                     "--config", "missing.yaml"), 2, ("missing.yaml", "config file not found")),
    Case("campaign-config-bad-yaml", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out", "c",
                                      "--config", "c.yaml"), 2, ("c.yaml", "invalid YAML at line 3"),
         prepare=lambda sb, b: write(sb, "c.yaml", "rounds: 2\nquery: [\n")),
    Case("campaign-config-a-list", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out", "c",
                                    "--config", "c.yaml"), 2, ("c.yaml", "expected a mapping"),
         prepare=lambda sb, b: write(sb, "c.yaml", "- a\n- b\n")),
    Case("campaign-config-unknown-field", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out",
                                           "c", "--config", "c.yaml"), 2, ("c.yaml", "budgte", "Extra inputs"),
         prepare=lambda sb, b: write(sb, "c.yaml", "budgte: 3\n")),
    # nested query / finetune fields are typed: a bad one fails at init, naming the field, not in round 1
    Case("campaign-config-bad-query-field", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out",
                                             "c", "--config", "c.yaml"), 2,
         ("c.yaml", "query.alpha", "less than or equal to 1"),
         prepare=lambda sb, b: write(sb, "c.yaml", "query: {alpha: 3}\n")),
    Case("campaign-config-query-strategy", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out",
                                            "c", "--config", "c.yaml"), 2, ("c.yaml", "top-level `strategy`"),
         prepare=lambda sb, b: write(sb, "c.yaml", "query: {strategy: dkd}\n")),
    Case("campaign-config-finetune-typo", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out",
                                           "c", "--config", "c.yaml"), 2, ("c.yaml", "finetune.stesp_per_round"),
         prepare=lambda sb, b: write(sb, "c.yaml", "finetune: {stesp_per_round: 3}\n")),
    Case("campaign-test-missing", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out", "c",
                                   "--test", "nowhere"), 2, ("nowhere", "dataset folder not found")),
    Case("campaign-out-is-a-file", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out", "f.txt"),
         2, ("f.txt", "--out is an existing file"), prepare=lambda sb, b: write(sb, "f.txt", "keep me")),
    Case("campaign-folder-typo", ("campaign", "next", "campx"), 2, ("campx", "not a campaign directory")),
    Case("campaign-not-a-campaign", ("campaign", "next", "d"), 2, ("not a campaign directory",), prepare=copy_data),
    Case("ledger-a-list", ("campaign", "status", "c"), 2, ("ledger.json", "unexpected shape", "JSON list"),
         prepare=lambda sb, b: (campaign_copy(sb, b) / "ledger.json").write_text("[]")),
    Case("ledger-round-without-status", ("campaign", "next", "c"), 2, ("ledger.json", "rounds[0]", "status"),
         prepare=lambda sb, b: (campaign_copy(sb, b) / "ledger.json").write_text(
             '{"meta": {}, "rounds": [{"round": 1}]}')),
    Case("ledger-invalid-json", ("campaign", "status", "c"), 2, ("ledger.json", "not valid JSON", "backup"),
         prepare=lambda sb, b: (campaign_copy(sb, b) / "ledger.json").write_text('{"meta": ')),
    Case("import-labels-before-next", ("campaign", "import-labels", "c", "--labels", "c"), 2,
         ("no round has started", "assft campaign next"), prepare=campaign_copy),
    Case("import-labels-folder-missing", ("campaign", "import-labels", "c", "--labels", "nowhere"), 2,
         ("nowhere", "label folder not found"), prepare=lambda sb, b: campaign_copy(sb, b, queried=True)),
    Case("import-labels-4d", ("campaign", "import-labels", "c", "--labels", "labels"), 2,
         ("phantom_000.nii.gz", "label must be one 3D volume", "nothing was imported"),
         prepare=lambda sb, b: label_folder(sb, b, lambda a: np.stack([a, a], -1)), one_line=False),
    Case("import-labels-unknown-value", ("campaign", "import-labels", "c", "--labels", "labels"), 2,
         ("phantom_000.nii.gz", "[9]", "nothing was imported"),
         prepare=lambda sb, b: label_folder(sb, b, lambda a: np.where(a == 1, 9, a).astype(np.uint8)), one_line=False),
    # --- these need torch (a checkpoint or training): a few only, they cost seconds each ---
    Case("train-float-label", ("train", "--data", "d", "--out", "o", *SMALL), 2,
         ("phantom_000.nii.gz", "non-integer values", "re-export"),
         prepare=lambda sb, b: replace_label(sb, b, lambda a, aff: (a.astype(np.float32) + 0.4, aff))),
    Case("train-label-value-not-in-map", ("train", "--data", "d", "--out", "o", *SMALL), 2,
         ("phantom_000.nii.gz", "[7]", "dataset.json"),
         prepare=lambda sb, b: replace_label(sb, b, lambda a, aff: (np.where(a == 1, 7, a).astype(np.uint8), aff))),
    Case("train-label-affine", ("train", "--data", "d", "--out", "o", *SMALL), 2,
         ("phantom_000.nii.gz", "not on the grid of the image", "origin 5.0 mm"),
         prepare=lambda sb, b: replace_label(sb, b, lambda a, aff: (a, shifted(aff)))),
    Case("predict-into-its-inputs", ("predict", "--model", "{model}", "--images", "d", "--out", "d/imagesTr"), 2,
         ("d/imagesTr", "lies inside the input --images d", "outside every input"), prepare=copy_data),
    Case("checkpoint-head-mismatch", ("predict", "--model", "m.pt", "--images", "{data}", "--out", "o"), 2,
         ("m.pt", "segmentation head", "does not fit"),
         prepare=lambda sb, b: tweak_checkpoint(sb, b, lambda r: (r["model_config"].__setitem__("out_channels", 3),
                                                                  r.__setitem__("labels", {"0": "bg", "1": "a",
                                                                                           "2": "b"})))),
    Case("checkpoint-labels-a-list", ("predict", "--model", "m.pt", "--images", "{data}", "--out", "o"), 2,
         ("m.pt", "'labels'", "expected a mapping"),
         prepare=lambda sb, b: tweak_checkpoint(sb, b, lambda r: r.__setitem__("labels", ["bg", "a"]))),
    Case("checkpoint-malicious-pickle", ("predict", "--model", "evil.pt", "--images", "{data}", "--out", "o"), 2,
         ("evil.pt", "pickled Python code", "posix.system"), prepare=malicious_pickle),
    Case("import-malicious-pickle", ("import", "--format", "swin-ssl", "--weights", "evil.pt", "--out", "x.pt"), 2,
         ("evil.pt", "pickled Python code", "--trust-pickle"), prepare=malicious_pickle),
    Case("checkpoint-is-text", ("predict", "--model", "t.pt", "--images", "{data}", "--out", "o"), 2,
         ("t.pt", "cannot read checkpoint"), prepare=lambda sb, b: write(sb, "t.pt", "not a torch file")),
    Case("campaign-strategy-typo", ("campaign", "init", "--model", "{model}", "--images", "{data}", "--out", "c",
                                    "--strategy", "randon"), 2, ("'randon'", "Did you mean 'random'")),
    # --- option vocabulary (docs/cli.md): old spellings still work with a notice; both spellings of one option fail ---
    Case("old-query-pool", ("query", "--model", "nope.pt", "--pool", "{data}", "--budget", "2", "--out", "q"), 2,
         ("'--model'", "nope.pt", "`assft query --pool` is now --images"), "usage"),
    Case("old-finetune-unlabeled", ("finetune", "--model", "{model}", "--unlabeled", "{data}", "--labeled", "{data}",
                                    "--out", "o", "--ssft-steps", "-1"), 2,
         ("'--ssft-steps'", "`assft finetune --unlabeled` is now --images", "`assft finetune --labeled` is now --data"),
         "usage"),
    Case("old-campaign-pool", ("campaign", "init", "--model", "{model}", "--pool", "{data}", "--out", "c", "--test",
                               "nowhere"), 2,
         ("nowhere", "dataset folder not found", "`assft campaign init --pool` is now --images")),
    Case("old-domains-in", ("domains", "apply", "--domain", "biass", "--in", "{data}", "--out", "s"), 2,
         ("'biass'", "`assft domains apply --in` is now --data")),
    Case("old-report-alpha-test", ("report", "{sb}", "--alpha", "0.1", "--test", "ttest"), 2,
         ("no ledger.json", "`assft report --alpha` is now --significance", "`assft report --test` is now --stat-test")),
    Case("new-report-significance", ("report", "{sb}", "--significance", "0.1", "--stat-test", "ttest"), 2,
         ("no ledger.json",)),
    Case("old-train-model-arch", ("train", "--data", "{data}", "--out", "o", "--model", "unett"), 2,
         ("'unett'", "`assft train --model` is now --arch")),
    Case("new-train-arch", ("train", "--data", "{data}", "--out", "o", "--arch", "unett"), 2, ("'unett'",)),
    Case("old-monailabel-labels", ("monailabel", "app", "--out", "app", "--model", "{model}", "--labels", "a,,b"), 2,
         ("--classes has an empty name", "`assft monailabel app --labels` is now --classes")),
    Case("both-spellings", ("query", "--model", "{model}", "--pool", "{data}", "--images", "{data}", "--budget", "2",
                            "--out", "q"), 2, ("--pool and --images are the same option", "give --images once")),
    Case("data-init-class-twice", ("data", "init", "d", "--classes", "0:background,0:other"), 2,
         ("--classes", "class 0 is given twice"), prepare=lambda sb, b: copy_folder_without_json(sb, b)),
    Case("data-init-no-background", ("data", "init", "d", "--classes", "1:a,2:b"), 2,
         ("--classes", "no background class 0"), prepare=lambda sb, b: copy_folder_without_json(sb, b)),
    Case("data-init-over-existing", ("data", "init", "{data}", "--classes", "0:background,1:a"), 2,
         ("dataset.json already exists", "--force")),
    Case("train-without-classes", ("train", "--data", "d", "--out", "o"), 2,
         ("names no classes", "assft data init"), prepare=lambda sb, b: copy_folder_without_json(sb, b)),
]


# ---------------------------------------------------------------------------------------------------------------
# Running the cases


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root` -> content hash (files), 'dir', or 'link -> target'.

    A campaign's .lock counts by presence only: taking the lock writes the holder's pid into it, by design.
    """
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.name == ".lock":
            out[rel] = "lock"
        elif path.is_symlink():
            out[rel] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class Outcome:
    """What a case produced."""

    code: int
    stdout: str
    stderr: str
    before: dict[str, str]
    after: dict[str, str]
    seconds: float


def run_case(case: Case, sb: Path, base: Base) -> Outcome:
    """Run one case's command line in its sandbox and snapshot the sandbox before and after."""
    names = {"data": str(base.data), "model": str(base.model), "camp": str(base.camp), "sb": str(sb)}
    args = [a.format(**names) for a in case.args]
    # COLUMNS: typer's error panel must not wrap a long path; threads 1: a dozen processes share two cores.
    env = {**os.environ, "ASSFT_THREADS": "1", "COLUMNS": "400", "NO_COLOR": "1", **case.env}
    before = snapshot(sb)
    start = time.perf_counter()
    proc = subprocess.run([*ENTRY, *args], cwd=sb, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    return Outcome(proc.returncode, proc.stdout, proc.stderr, before, snapshot(sb), seconds)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """Four 16^3 phantoms, a tiny (untrained) supervised checkpoint for them, and a fresh campaign."""
    from assft.campaign.config import CampaignConfig
    from assft.campaign.campaign import init_campaign
    from assft.config import ModelConfig
    from assft.data.synthetic import PHANTOM_LABELS, make_phantom_dataset
    from assft.models import build_model, make_checkpoint, save_checkpoint

    root = tmp_path_factory.mktemp("bad_inputs_base")
    data = make_phantom_dataset(root / "data", 4, shape=(16, 16, 16), seed=0)
    config = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    model = save_checkpoint(root / "model.pt", make_checkpoint(build_model(config), config, PHANTOM_LABELS,
                                                              metadata={"train_config": {"patch_size": [16, 16, 16]}}))
    camp = init_campaign(root / "camp", CampaignConfig(
        model=str(model), pool=str(data), budget="2", rounds=2, strategy="random",
        finetune={"train": {"steps": 1, "batch_size": 1, "patch_size": [16, 16, 16]}, "ssft_steps": 1},
        inference={"roi_size": [16, 16, 16], "channels_last": False}))
    return Base(root, Path(data), Path(model), Path(camp))


@dataclass
class Matrix:
    """Every case's outcome, and snapshots of the shared inputs before and after all of them ran."""

    outcomes: dict[str, Outcome]
    shared_before: dict[str, str]
    shared_after: dict[str, str]


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest, base: Base, tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """Run every selected case, concurrently, each in its own sandbox."""
    selected = {item.callspec.params["case"].id for item in request.session.items
                if getattr(item, "callspec", None) is not None and isinstance(item.callspec.params.get("case"), Case)}
    cases = [c for c in CASES if c.id in selected] or CASES
    shared_before = snapshot(base.root)
    sandboxes = {}
    for case in cases:
        sb = tmp_path_factory.mktemp(f"case_{case.id}")
        if case.prepare is not None:
            case.prepare(sb, base)
        sandboxes[case.id] = sb
    workers = max(2, min(4, os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        futures = {c.id: pool.submit(run_case, c, sandboxes[c.id], base) for c in cases}
        results = {cid: f.result() for cid, f in futures.items()}
    return Matrix(results, shared_before, snapshot(base.root))


def test_the_matrix_is_large_enough() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)


def test_no_case_changed_the_shared_inputs(matrix: Matrix) -> None:
    assert matrix.shared_after == matrix.shared_before


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Case, matrix: Matrix) -> None:
    result = matrix.outcomes[case.id]
    text = f"exit {result.code} after {result.seconds:.1f} s\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.code == case.code, text
    assert "Traceback" not in result.stdout + result.stderr, text
    assert "unexpected error" not in result.stderr, text  # every case is anticipated, none is a bug report
    if case.kind == "usage":
        assert "Usage: " in result.stderr and "--help' for help." in result.stderr, text
        panel = [line for line in result.stderr.splitlines() if line.startswith("│")]
        assert len(panel) == 1, text  # the message itself is one line
        message = panel[0]
    elif case.kind == "problems":
        problems = [line for line in result.stdout.splitlines() if line.startswith("problem ")]
        assert problems and all(" Fix: " in line for line in problems), text
        message = "\n".join(problems)
    else:
        # an old option spelling adds its one-line notice before the error (docs/cli.md)
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("deprecated: ")]
        assert lines and lines[0].startswith("error: "), text
        if case.one_line:
            assert len(lines) == 1, text
        assert " Fix: " in result.stderr, text
        message = result.stderr
    for needle in case.needles:
        # a deprecation notice is its own stderr line, before typer's usage panel or the error line
        where = "\n".join(ln for ln in result.stderr.splitlines() if ln.startswith("deprecated: ")) \
            if needle.startswith("`assft ") else message
        assert needle in where, f"{needle!r} missing\n{text}"
    assert result.after == result.before, f"disk changed: {set(result.after.items()) ^ set(result.before.items())}"
