"""The pseudo-label gallery of one SSFT round: accepted next to rejected pseudo-labels, as pictures.

The paper's Figure 5 as images: for a few accepted pseudo-labels (the most confident) and a few rejected ones (the
least confident), one slice through the prediction with the pseudo-label drawn on the image, the true label beside
it when the pool's labels are known (simulation), and the case's conf, sd and true Dice. The slices are cut during
stage 2's scoring pass (`assft.finetune.pseudo_labels.capture_picture`: one slice of three small maps per pool
volume, never a whole volume).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from assft.finetune.pseudo_labels import PseudoLabelPicture, PseudoLabelStats
from assft.utils.pictures import Panel, compose, overlay

__all__ = ["GALLERY_NAME", "gallery_cases", "write_pseudo_label_gallery"]

GALLERY_NAME = "pseudo_label_gallery.png"
PER_SIDE = 3  # accepted and rejected pseudo-labels shown


def gallery_cases(table: Sequence[PseudoLabelStats], per_side: int = PER_SIDE) -> tuple[list[str], list[str]]:
    """(accepted, rejected) case ids to show: the most confident accepted, the least confident rejected."""
    accepted = sorted((r for r in table if r.selected), key=lambda r: (-r.conf, r.case_id))
    rejected = sorted((r for r in table if not r.selected), key=lambda r: (r.conf, r.case_id))
    return [r.case_id for r in accepted[:per_side]], [r.case_id for r in rejected[:per_side]]


def write_pseudo_label_gallery(path: str | Path, table: Sequence[PseudoLabelStats],
                               pictures: Mapping[str, PseudoLabelPicture], class_names: Mapping[int, str],
                               title: str = "") -> Path | None:
    """Accepted (left) and rejected (right) pseudo-labels with conf, sd and true Dice; None when nothing to show."""
    accepted, rejected = gallery_cases([r for r in table if r.case_id in pictures])
    if not accepted and not rejected:
        return None
    rows_by_id = {r.case_id: r for r in table}
    with_truth = any(pictures[c].truth is not None for c in accepted + rejected)
    grid: list[list[Panel | None]] = []
    for row in range(max(len(accepted), len(rejected))):
        cells: list[Panel | None] = []
        for verdict, ids in (("accepted", accepted), ("rejected", rejected)):
            if row >= len(ids):
                cells += [None] * (2 if with_truth else 1)
                continue
            picture, stats = pictures[ids[row]], rows_by_id[ids[row]]
            dice = f", true Dice {stats.true_dice:.2f}" if stats.true_dice is not None else ""
            cells.append((overlay(picture.image, picture.pseudo_label),
                          f"{verdict}: {ids[row]}\nconf {stats.conf:.2f}, sd {stats.sd:.2f}{dice}"))
            if with_truth:
                cells.append((overlay(picture.image, picture.truth), "true label\n") if picture.truth is not None
                             else None)
        grid.append(cells)
    heading = title or "pseudo-labels: accepted (most confident) | rejected (least confident)"
    return compose(grid, heading, path)
