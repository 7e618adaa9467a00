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

__all__ = ["GALLERY_NAME", "gallery_caption", "gallery_cases", "gallery_title", "write_pseudo_label_gallery"]

GALLERY_NAME = "pseudo_label_gallery.png"
PER_SIDE = 3  # accepted and rejected pseudo-labels shown


def gallery_cases(table: Sequence[PseudoLabelStats], per_side: int = PER_SIDE) -> tuple[list[str], list[str]]:
    """(accepted, rejected) case ids to show: the most confident accepted, the least confident rejected."""
    accepted = sorted((r for r in table if r.selected), key=lambda r: (-r.conf, r.case_id))
    rejected = sorted((r for r in table if not r.selected), key=lambda r: (r.conf, r.case_id))
    return [r.case_id for r in accepted[:per_side]], [r.case_id for r in rejected[:per_side]]


def gallery_caption(verdict: str, stats: PseudoLabelStats, conf_threshold: float | None = None,
                    sd_threshold: float | None = None) -> str:
    """A panel's caption: verdict, case, conf (3 decimals) and sd (3 significant digits: sd is a cosine distance,
    often ~1e-3, so 2 decimals print 0.00 for every volume), the true Dice, and which threshold rejected it."""
    dice = f", true Dice {stats.true_dice:.2f}" if stats.true_dice is not None else ""
    why = []
    if verdict == "rejected" and conf_threshold is not None and stats.conf < conf_threshold:
        why.append(f"conf < {conf_threshold:.3f}")
    if verdict == "rejected" and sd_threshold is not None and stats.sd > sd_threshold:
        why.append(f"sd > {sd_threshold:.3g}")
    reason = f" ({', '.join(why)})" if why else ""
    return f"{verdict}: {stats.case_id}{reason}\nconf {stats.conf:.3f}, sd {stats.sd:.3g}{dice}"


def gallery_title(conf_threshold: float | None = None, sd_threshold: float | None = None) -> str:
    """The gallery's heading, with the thresholds that split accepted from rejected when known."""
    rule = [f"conf >= {conf_threshold:.3f}"] if conf_threshold is not None else []
    rule += [f"sd <= {sd_threshold:.3g}"] if sd_threshold is not None else []
    accepted = f" = {' and '.join(rule)}" if rule else ""
    return f"pseudo-labels: accepted{accepted} (most confident) | rejected (least confident)"


def write_pseudo_label_gallery(path: str | Path, table: Sequence[PseudoLabelStats],
                               pictures: Mapping[str, PseudoLabelPicture], class_names: Mapping[int, str],
                               title: str = "", conf_threshold: float | None = None,
                               sd_threshold: float | None = None) -> Path | None:
    """Accepted (left) and rejected (right) pseudo-labels with conf, sd and true Dice; None when nothing to show.
    The thresholds (the reliable set's t_c and t_d) go into the heading and say why each rejected one was."""
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
            cells.append((overlay(picture.image, picture.pseudo_label),
                          gallery_caption(verdict, stats, conf_threshold, sd_threshold)))
            if with_truth:
                cells.append((overlay(picture.image, picture.truth), "true label\n") if picture.truth is not None
                             else None)
        grid.append(cells)
    heading = title or gallery_title(conf_threshold, sd_threshold)
    return compose(grid, heading, path)
