"""The report as a person sees it: a real simulation with pictures, report.html opened in headless Chromium."""

from __future__ import annotations

from pathlib import Path

from assft.campaign.experiment import SimulationConfig
from assft.campaign.simulate import run_simulation
from assft.reporting import write_report
from assft.utils.progress import silenced
from browser import Page, find_chromium
from extras import absent
from test_campaign import FINETUNE, INFERENCE, setup  # noqa: F401  (module-scoped phantom fixture)

CHROMIUM = find_chromium()
if CHROMIUM is None:
    absent("chromium", "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
try:
    import websocket  # noqa: F401  (websocket-client, a dev dependency: how the test talks to Chromium)
except ImportError:
    absent("chromium", "websocket-client (a dev dependency) is needed to talk to Chromium")


def test_report_html_loads_every_picture_in_a_real_browser(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    config = SimulationConfig.model_validate({
        "out": str(tmp_path / "runs"), "model": str(setup["model"]), "data": str(setup["data"]),
        "split": str(setup["root"] / "split.json"), "strategies": ["assft"], "seeds": [0], "budget": "2",
        "rounds": 2, "bounds": False, "figures": True, "inference": INFERENCE,
        "finetune": {**FINETUNE, "pseudo": {"reliability": "all"}}})
    with silenced():
        run_simulation(config)
    report = write_report(tmp_path / "runs", tmp_path / "report")
    pictures = [item["path"] for items in report.summary["figures"]["pictures"].values() for item in items]
    assert len(pictures) == 4  # 2 rounds x (picks, pseudo-labels)

    page = Page(CHROMIUM)  # type: ignore[arg-type]
    try:
        page.open(report.html)
        images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, "
                               "i.naturalWidth])")
        shot = page.screenshot(tmp_path / "report.png")
    finally:
        page.close()
    assert {src for src, _, _ in images} >= set(pictures) | {"dice_vs_budget.png"}
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert not broken, f"images the browser could not load: {broken}"
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 10_000
