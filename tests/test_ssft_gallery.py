"""SSFT's pseudo-label gallery: the slice with the most predicted foreground, accepted next to rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from assft.data.preprocess import LoadedCase
from assft.finetune.gallery import gallery_cases, write_pseudo_label_gallery
from assft.finetune.pseudo_labels import capture_picture
from assft.finetune.pseudo_labels import PseudoLabelStats


def _loaded(case_id: str = "a") -> LoadedCase:
    image = np.linspace(0, 1, 8 * 8 * 8, dtype=np.float32).reshape(1, 8, 8, 8)
    return LoadedCase(case_id, image, None, np.eye(4), (8, 8, 8), (1.0, 1.0, 1.0))


def _probs() -> torch.Tensor:
    fg = torch.zeros(8, 8, 8)
    fg[2:5, 2:5, 6] = 1.0  # 9 voxels on axial slice 6
    fg[2:4, 2:4, 1] = 1.0  # 4 voxels on slice 1
    return torch.stack([1 - fg, fg])


def test_the_picture_is_the_slice_with_the_most_predicted_foreground() -> None:
    truth = np.zeros((8, 8, 8), np.int64)
    truth[3:6, 3:6, 6] = 2
    picture = capture_picture(_loaded(), _probs(), truth)
    assert picture.pseudo_label.sum() == 9 and picture.pseudo_label[2, 2] == 1  # slice 6
    assert picture.truth is not None and int(picture.truth.sum()) == 9 * 2 and picture.truth[5, 5] == 2
    assert picture.image.dtype == np.uint8 and picture.image.shape == (8, 8)
    assert capture_picture(_loaded(), _probs(), None).truth is None


def test_gallery_shows_the_most_confident_accepted_and_least_confident_rejected(tmp_path: Path) -> None:
    table = [PseudoLabelStats(f"c{i}", conf, 0.1, 10, selected, 0.5)
             for i, (conf, selected) in enumerate([(0.9, True), (0.8, True), (0.95, True), (0.99, True),
                                                   (0.3, False), (0.5, False), (0.1, False), (0.7, False)])]
    assert gallery_cases(table, per_side=2) == (["c3", "c2"], ["c6", "c4"])
    pictures = {row.case_id: capture_picture(_loaded(row.case_id), _probs(), None) for row in table}
    path = write_pseudo_label_gallery(tmp_path / "g.png", table, pictures, {0: "background", 1: "fg"})
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"
    assert write_pseudo_label_gallery(tmp_path / "none.png", table, {}, {0: "b", 1: "f"}) is None
    assert not (tmp_path / "none.png").exists()
