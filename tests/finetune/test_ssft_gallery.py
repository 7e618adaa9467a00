"""SSFT's pseudo-label gallery: the slice with the most predicted foreground, accepted next to rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from assft.data.preprocess import LoadedCase
from assft.finetune.gallery import gallery_caption, gallery_cases, gallery_title, write_pseudo_label_gallery
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


def test_captions_show_the_numbers_that_split_accepted_from_rejected() -> None:
    """Real values from a 20-volume hippocampus round: conf 0.47-0.48 and sd ~1e-3 printed as 'conf 0.47, sd 0.00'
    on both sides at 2 decimals; 3 decimals / 3 significant digits and the thresholds tell them apart."""
    accepted = PseudoLabelStats("h014", 0.478534, 0.000666, 10085, True, 0.442)
    low_conf = PseudoLabelStats("h019", 0.459009, 0.000592, 8441, False, 0.472)
    far = PseudoLabelStats("h015", 0.480952, 0.007556, 12871, False, None)
    t_c, t_d = 0.469700, 0.000751
    assert gallery_caption("accepted", accepted, t_c, t_d) == \
        "accepted: h014\nconf 0.479, sd 0.000666, true Dice 0.44"
    assert gallery_caption("rejected", low_conf, t_c, t_d) == \
        "rejected: h019 (conf < 0.470)\nconf 0.459, sd 0.000592, true Dice 0.47"
    assert gallery_caption("rejected", far, t_c, t_d) == "rejected: h015 (sd > 0.000751)\nconf 0.481, sd 0.00756"
    assert gallery_title(t_c, t_d) == \
        "pseudo-labels: accepted = conf >= 0.470 and sd <= 0.000751 (most confident) | rejected (least confident)"
    assert gallery_title() == "pseudo-labels: accepted (most confident) | rejected (least confident)"
