"""Real data (MSD Task04 hippocampus from ../shared/data): parsed, valid, loadable, shiftable; skipped when absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assft.data import check_dataset, load_case, load_dataset
from assft.domains import apply_shift

pytestmark = pytest.mark.hippocampus


def test_layout_and_first_cases_are_valid(hippocampus_dir: Path) -> None:
    spec = load_dataset(hippocampus_dir)
    assert spec.layout == "msd" and len(spec.cases) == 260 and spec.num_classes == 3
    assert "hippocampus_010" not in spec.case_ids  # one of the three absent cases
    report = check_dataset(spec.subset(spec.case_ids[:5]))
    assert report.ok and set(report.label_counts) == {0, 1, 2}


def test_real_case_loads_normalised_and_shifts_keep_shape(hippocampus_dir: Path) -> None:
    case = load_dataset(hippocampus_dir).cases[0]
    loaded = load_case(case)
    nonzero = loaded.image[0][loaded.image[0] != loaded.image[0].min()]
    assert loaded.image.shape[1:] == loaded.label.shape and abs(float(nonzero.mean())) < 0.5
    raw = np.asarray(__import__("nibabel").load(str(case.image_path)).dataobj, dtype=np.float32)
    for domain in ("t2like", "lowfield", "bias", "thickslice", "mixed"):
        shifted = apply_shift(raw, domain, case_id=case.case_id, seed=0)
        assert shifted.shape == raw.shape and np.isfinite(shifted).all()
