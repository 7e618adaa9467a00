"""Query figures: slices cut in the pass through the region that drove a pick, one PNG per pick, a contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from assft.cli.app import app
from assft.config import ModelConfig
from assft.data.synthetic import PHANTOM_LABELS, make_phantom_dataset
from assft.models import build_model, make_checkpoint, save_checkpoint
from assft.query.figures import MAX_SIDE, capture_slices, pick_driver


def _probs(shape: tuple[int, int, int]) -> torch.Tensor:
    """Two classes: confident background, a confident foreground cube with an uncertain 5^3 spot inside (p 0.95,
    entropy 0.29), and a more uncertain 5^3 spot in the background (p 0.09, entropy 0.44) that stays outside Ω."""
    fg = torch.full(shape, 0.01)
    fg[1:10, 1:10, 1:10] = 0.99
    fg[3:8, 3:8, 3:8] = 0.95
    fg[13:18, 13:18, 13:18] = 0.09
    return torch.stack([1 - fg, fg])


def test_the_centres_are_the_uncertain_spots_inside_and_anywhere() -> None:
    image = np.random.default_rng(0).normal(size=(1, 20, 20, 20)).astype(np.float32)
    slices = capture_slices("a", image, _probs((20, 20, 20)))
    assert slices.centres["foreground"] == (5, 5, 5)  # the centre of the uncertain spot inside Ω
    assert slices.centres["anywhere"] == (15, 15, 15)  # the more uncertain spot, outside Ω
    img, lab, ent = slices.slices["foreground"]["axial"]
    assert img.dtype == lab.dtype == ent.dtype == np.uint8 and img.shape == (20, 20)
    assert lab[5, 5] == 1 and lab[0, 0] == 0  # the label map is the argmax
    h = -(0.95 * np.log(0.95) + 0.05 * np.log(0.05)) / np.log(2)  # binary entropy, normalised by log 2
    assert ent[5, 5] == int(np.float32(h) * 255)
    with pytest.raises(ValueError, match="grid"):
        capture_slices("a", image[:, :8], _probs((20, 20, 20)))


def test_large_slices_are_subsampled_to_the_figure_size() -> None:
    shape = (4, 300, 130)
    slices = capture_slices("big", np.zeros((1, *shape), np.float32), torch.stack([torch.ones(shape),
                                                                                  torch.zeros(shape)]))
    sizes = [a.shape for planes in slices.slices.values() for maps in planes.values() for a in maps]
    assert max(max(s) for s in sizes) <= MAX_SIDE and (2, 100) in sizes  # every 3rd pixel both ways: same aspect
    assert slices.nbytes() == sum(int(np.prod(s)) for s in sizes)


def test_pick_driver_compares_the_two_terms_of_q() -> None:
    columns = {"Q": {"a": 0.9, "b": 0.6}, "ASD_norm": {"a": 0.8, "b": 1.0}, "KD_norm": {"a": 1.0, "b": 0.1}}
    assert pick_driver(columns, "a", 0.5) == "KD"  # Q 0.9 = DKD term 0.5 + ASD term 0.4
    assert pick_driver(columns, "b", 0.5) == "ASD"  # Q 0.6 = DKD term 0.1 + ASD term 0.5
    assert pick_driver(columns, "a", 0.2) == "ASD"  # α 0.2: ASD term 0.64 > DKD term 0.26
    assert pick_driver({"KD_norm": {"c": 1.0}}, "c", 0.5) == "KD"  # dkd, kd: no ASD term
    assert pick_driver({"entropy": {"c": 1.0}}, "c", 0.5) == "ASD"  # probability-based strategies


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("figures")
    data = make_phantom_dataset(root / "pool", 6, shape=(16, 16, 16))
    config = ModelConfig(out_channels=5, params={"channels": (4, 8, 16), "strides": (2, 2)})
    torch.manual_seed(0)
    ckpt = make_checkpoint(build_model(config), config, PHANTOM_LABELS,
                           metadata={"train_config": {"patch_size": [16, 16, 16]}})
    return data, save_checkpoint(root / "model.pt", ckpt)


@pytest.mark.parametrize("strategy", ["assft", "dkd"])
def test_figures_are_written_for_the_picks_and_change_no_pick(workspace, tmp_path: Path, strategy: str) -> None:
    data, model = workspace
    runner = CliRunner()
    plain = runner.invoke(app, ["query", "--model", str(model), "--images", str(data), "--budget", "2",
                                "--strategy", strategy, "--out", str(tmp_path / "plain")])
    shown = runner.invoke(app, ["query", "--model", str(model), "--images", str(data), "--budget", "2",
                                "--strategy", strategy, "--out", str(tmp_path / "fig"), "--figures"])
    assert plain.exit_code == 0 and shown.exit_code == 0, plain.output + shown.output
    picks = [s["case_id"] for s in json.loads((tmp_path / "fig" / "selection.json").read_text())["selected"]]
    assert picks == [s["case_id"] for s in json.loads((tmp_path / "plain" / "selection.json").read_text())["selected"]]
    written = sorted(p.name for p in (tmp_path / "fig" / "figures").iterdir())
    assert written == [f"01_{picks[0]}.png", f"02_{picks[1]}.png", "contact_sheet.png"]
    assert all((tmp_path / "fig" / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in written)
    assert not (tmp_path / "plain" / "figures").exists()


def test_box_mean_is_the_average_pool_without_padding_counts() -> None:
    from assft.query.figures import SMOOTH, _box_mean

    values = torch.rand(7, 9, 6, generator=torch.Generator().manual_seed(0))
    pool = torch.nn.functional.avg_pool3d(values[None, None], SMOOTH, stride=1, padding=SMOOTH // 2,
                                          count_include_pad=False)[0, 0]
    assert torch.allclose(_box_mean(values), pool, atol=1e-6)
    corner = values[:3, :3, :3].mean()  # the box at a corner is clipped to the 3^3 voxels inside the volume
    assert float(_box_mean(values)[0, 0, 0]) == pytest.approx(float(corner), abs=1e-6)


def test_slices_from_the_pass_maps_are_the_slices_from_probs() -> None:
    from assft.query.config import QueryConfig
    from assft.query.summaries import probability_maps

    image = np.random.default_rng(1).normal(size=(1, 20, 20, 20)).astype(np.float32)
    probs = _probs((20, 20, 20))
    maps = probability_maps(probs, QueryConfig())
    shared = capture_slices("a", image, probs, maps.entropy, maps.mask)
    alone = capture_slices("a", image, probs)
    assert shared.centres == alone.centres == {"anywhere": (15, 15, 15), "foreground": (5, 5, 5)}
    for name in ("anywhere", "foreground"):
        for plane, maps_ in shared.slices[name].items():
            assert all(np.array_equal(a, b) for a, b in zip(maps_, alone.slices[name][plane]))
