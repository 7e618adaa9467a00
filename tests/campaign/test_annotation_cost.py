"""Annotation cost of a label map: known answers on tiny arrays, invariants, and a label file read from disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from assft.data.io import write_label_map
from assft.errors import DataError
from test_campaign import make_config, setup  # noqa: F401  (module-scoped phantoms and a 3-step source model)

from assft.metrics.annotation_cost import (
    acquisition_axis,
    annotation_cost,
    connected_structures,
    foreground_slices,
    label_file_cost,
)


def test_acquisition_axis_is_the_largest_spacing_and_ties_go_to_the_last_axis() -> None:
    assert acquisition_axis((1.0, 1.0, 3.0)) == 2
    assert acquisition_axis((5.0, 1.0, 1.0)) == 0
    assert acquisition_axis((1.0, 1.0, 1.0)) == 2  # isotropic: the last axis
    assert acquisition_axis((3.0, 1.0, 3.0)) == 2  # a tie between 0 and 2: the last tied axis
    assert acquisition_axis((3.0, 3.0, 1.0)) == 1
    with pytest.raises(DataError, match="positive finite"):
        acquisition_axis((1.0, 0.0, 1.0))


def test_known_answer_on_a_4x5x6_map() -> None:
    labels = np.zeros((4, 5, 6), dtype=np.int64)
    labels[1, 1:3, 2] = 1  # class 1: a 1x2x1 bar ...
    labels[3, 4, 5] = 1  # ... and a lone voxel far from it: 2 structures
    labels[1:3, 3, 0:3] = 2  # class 2: a 2x1x3 block: 1 structure
    # foreground slices: axis 0 -> {1, 2, 3} = 3; axis 1 -> {1, 2, 3, 4} = 4; axis 2 -> {0, 1, 2, 5} = 4
    cost = annotation_cost(labels, (1.0, 1.0, 2.5))
    assert cost.acquisition_axis == 2
    assert cost.fg_slices_per_axis == (3, 4, 4)
    assert (cost.fg_slices, cost.fg_slices_min) == (4, 3)
    assert cost.fg_voxels == 2 + 1 + 6
    assert cost.structures_per_class == {1: 2, 2: 1} and cost.structures == 3
    assert cost.to_dict()["structures_per_class"] == {"1": 2, "2": 1}
    assert annotation_cost(labels, (4.0, 1.0, 1.0)).fg_slices == 3  # thick slices along axis 0


def test_diagonal_neighbours_are_one_structure_with_26_connectivity() -> None:
    labels = np.zeros((3, 3, 3), dtype=np.int64)
    labels[0, 0, 0] = labels[1, 1, 1] = labels[2, 2, 2] = 1  # touching at corners only
    assert connected_structures(labels) == {1: 1}
    labels[1, 1, 1] = 0
    assert connected_structures(labels) == {1: 2}


def test_an_empty_map_costs_nothing() -> None:
    cost = annotation_cost(np.zeros((3, 4, 5), dtype=np.int64), (1.0, 1.0, 1.0))
    assert (cost.fg_slices, cost.fg_slices_min, cost.fg_voxels, cost.structures) == (0, 0, 0, 0)
    with pytest.raises(DataError, match="needs 3 spacings"):
        annotation_cost(np.zeros((3, 4, 5)), (1.0, 1.0))


@settings(max_examples=40, deadline=None)
@given(arrays(np.int64, st.tuples(*[st.integers(1, 6)] * 3), elements=st.integers(0, 2)),
       st.tuples(*[st.sampled_from([0.5, 1.0, 3.0])] * 3))
def test_cost_invariants(labels: np.ndarray, spacing: tuple[float, float, float]) -> None:
    cost = annotation_cost(labels, spacing)
    assert cost.fg_slices_min <= cost.fg_slices <= labels.shape[cost.acquisition_axis]
    assert cost.fg_slices_min == min(foreground_slices(labels, a) for a in range(3))
    assert cost.structures <= cost.fg_voxels == int((labels > 0).sum())
    assert (cost.fg_voxels == 0) == (cost.structures == 0) == (cost.fg_slices == 0)
    assert spacing[cost.acquisition_axis] == max(spacing)


def test_a_label_file_is_read_in_its_own_spacing(tmp_path: Path) -> None:
    labels = np.zeros((4, 5, 6), dtype=np.uint8)
    labels[0:2, 1, 1] = 1
    affine = np.diag([1.0, 3.0, 1.0, 1.0])  # thick along axis 1
    path = write_label_map(tmp_path / "case.nii.gz", labels, affine)
    cost = label_file_cost(path)
    assert cost.acquisition_axis == 1 and cost.fg_slices == 1 and cost.fg_slices_per_axis == (2, 1, 1)
    assert cost.fg_voxels == 2 and cost.structures == 1


def test_the_oracle_costs_every_label_it_hands_over(tmp_path: Path) -> None:
    from assft.campaign.oracle import annotation_costs

    small = np.zeros((4, 4, 4), dtype=np.uint8)
    small[1, 1, 1] = 1
    large = np.zeros((4, 4, 4), dtype=np.uint8)
    large[:, 0, 0] = 2
    large[:, 3, 3] = 2  # two separate rods of class 2
    paths = {"b": write_label_map(tmp_path / "b.nii.gz", large), "a": write_label_map(tmp_path / "a.nii.gz", small)}
    costs = annotation_costs(paths)
    assert list(costs) == ["a", "b"]
    assert {k: costs["a"][k] for k in ("fg_slices", "fg_slices_min", "fg_voxels", "structures")} == \
        {"fg_slices": 1, "fg_slices_min": 1, "fg_voxels": 1, "structures": 1}
    assert {k: costs["b"][k] for k in ("fg_slices", "fg_slices_min", "fg_voxels", "structures")} == \
        {"fg_slices": 2, "fg_slices_min": 2, "fg_voxels": 8, "structures": 2}
    assert costs["b"]["fg_slices_per_axis"] == [4, 2, 2] and costs["b"]["acquisition_axis"] == 2


def test_imported_and_simulated_labels_record_their_cost_in_the_ledger(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    """The annotator's file at import time (a known 4x4x4 cube plus a lone voxel), and the ground truth in a
    simulated campaign: each pick with the cost of its own label."""
    import json

    from assft.campaign.engine import import_labels, init_campaign, next_round
    from assft.campaign.simulate import run_campaign

    camp = tmp_path / "camp"
    init_campaign(camp, make_config(setup, oracle="folder"))
    (case,) = next_round(camp).selected
    label = np.zeros((16, 16, 16), dtype=np.uint8)
    label[4:8, 4:8, 4:8] = 1
    label[12, 12, 12] = 2
    write_label_map(tmp_path / "labels" / f"{case}.nii.gz", label)
    cost = import_labels(camp, tmp_path / "labels").annotation_cost[case]
    assert (cost["fg_slices"], cost["fg_slices_min"], cost["fg_voxels"], cost["structures"]) == (5, 5, 65, 2)
    simulated = tmp_path / "sim"
    init_campaign(simulated, make_config(setup, rounds=1, budget="1", oracle="ground_truth"))
    run_campaign(simulated)
    (first,) = json.loads((simulated / "ledger.json").read_text())["rounds"]
    (picked,) = first["selected"]
    assert first["annotation_cost"] == {picked: label_file_cost(setup["spec"].get(picked).label_path).to_dict()}
