"""`assft report`: synthetic ledgers with known Dice curves -> exact AUBC, gap closed, win matrix, files and CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from assft.cli.app import app
from assft.errors import DataError
from assft.reporting import load_runs, write_report
from assft.reporting.document import fmt_stats
from assft.reporting.summary import compute_stats

DOMAINS = ("liver", "spleen")  # liver: budget-0 point + both bounds (+ true pseudo-label Dice for assft); spleen: none
STRATEGIES = ("assft", "random", "fg-random")
SEEDS = (0, 1, 2)
SLOPE = {"assft": 0.10, "fg-random": 0.08, "random": 0.05}  # Dice gained per round
SEED_STEP = {"assft": 0.010, "fg-random": 0.005, "random": 0.002}  # Dice offset per seed (no tied differences)
PER_ROUND, POOL = 2, 20


def dice(strategy: str, seed: int, rnd: int) -> float:
    """Mean Dice after round `rnd` (0 = the start model, the same 0.5 for every run)."""
    return 0.5 if rnd == 0 else 0.5 + SLOPE[strategy] * rnd + SEED_STEP[strategy] * seed


def metrics(value: float) -> dict:
    return {"mean_dice": value, "mean_hd95": 10 * (1 - value), "mean_nsd": value, "n_cases": 4,
            "dice": {"organ": value + 0.05, "tumour": value - 0.05}, "hd95": {"organ": 1.0, "tumour": 2.0}}


def write_ledger(folder: Path, domain: str, strategy: str, seed: int, rounds: int = 3, evaluated: int = 3,
                 pseudo_truth: bool | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with_truth = domain == "liver"
    pseudo_truth = with_truth and strategy == "assft" if pseudo_truth is None else pseudo_truth
    records = []
    for r in range(1, rounds + 1):
        done = r <= evaluated
        pseudo = [{"case_id": f"c{k}", "conf": 0.9, "sd": 0.1, "selected": k < 3,
                   "true_dice": (0.8 if k < 3 else 0.4) if pseudo_truth else None} for k in range(5)]
        records.append({"round": r, "status": "evaluated" if done else "finetuned", "selected": [f"r{r}a", f"r{r}b"],
                        "budget": PER_ROUND, "labeled_before": PER_ROUND * (r - 1), "labeled_total": PER_ROUND * r,
                        "budget_fraction": PER_ROUND * r / POOL,
                        "metrics": metrics(dice(strategy, seed, r)) if done else None, "pseudo_labels": pseudo,
                        "timings": {"query_s": 1.0, "finetune_s": 10.0 + seed,
                                    **({"evaluate_s": 2.0} if done else {})}})
    meta = {"pool_size": POOL, "budget_total": PER_ROUND * rounds, "rounds": rounds, "per_round": [PER_ROUND] * rounds,
            "strategy": strategy, "seed": seed, "baseline_metrics": metrics(0.5) if with_truth else None,
            "started_at": "t0", "finished_at": "t1", "versions": {}}
    (folder / "ledger.json").write_text(json.dumps({"meta": meta, "rounds": records}))
    (folder / "campaign.yaml").write_text(f"strategy: {strategy}\nseed: {seed}\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for domain in DOMAINS:
        for strategy in STRATEGIES:
            for seed in SEEDS:
                write_ledger(root / domain / strategy / f"seed{seed}", domain, strategy, seed)
    (root / "liver" / "bounds.json").write_text(json.dumps({"lower": metrics(0.5), "upper": metrics(0.9)}))
    (root / "spleen" / "bounds.json").write_text(json.dumps({"lower": None, "upper": metrics(0.9)}))
    return root


@pytest.fixture(scope="module")
def report(runs: Path, tmp_path_factory: pytest.TempPathFactory):
    return write_report(runs, tmp_path_factory.mktemp("report"))


def expected_aubc(domain: str, strategy: str, seed: int) -> float:
    """Trapezoid by hand: liver integrates from the budget-0 point over [0, 6], spleen over [2, 6]."""
    y = [dice(strategy, seed, r) for r in range(4)]
    if domain == "liver":
        return (2 * (y[0] + y[1]) / 2 + 2 * (y[1] + y[2]) / 2 + 2 * (y[2] + y[3]) / 2) / 6
    return (2 * (y[1] + y[2]) / 2 + 2 * (y[2] + y[3]) / 2) / 4


def md_rows(markdown: str, header_start: str) -> list[list[str]]:
    """Rows of the first Markdown table whose header starts with `header_start`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_aubc_matches_hand_trapezoid(report) -> None:
    summary = report.summary
    assert expected_aubc("liver", "assft", 0) == pytest.approx(0.65)  # (1.1 + 1.3 + 1.5) / 6
    assert expected_aubc("spleen", "assft", 1) == pytest.approx(0.71)  # (2.8 + 0.04) / 4
    for domain in DOMAINS:
        for strategy in STRATEGIES:
            row = summary["aubc"][domain][strategy]
            values = [expected_aubc(domain, strategy, s) for s in SEEDS]
            assert row["per_seed"] == {str(s): pytest.approx(v, abs=1e-12) for s, v in zip(SEEDS, values)}
            assert row["mean"] == pytest.approx(np.mean(values), abs=1e-12)
            assert row["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert summary["ranks"][domain] == {"assft": 1, "fg-random": 2, "random": 3}


def test_final_gap_and_per_class(report) -> None:
    summary = report.summary
    final = summary["final"]["liver"]["assft"]
    assert final["mean_dice"]["mean"] == pytest.approx(0.81) and final["budget"]["mean"] == 6
    assert final["mean_hd95"]["mean"] == pytest.approx(1.9)
    gap = summary["gap_closed"]["liver"]["assft"]
    assert gap["final"]["mean"] == pytest.approx((0.81 - 0.5) / 0.4)
    assert gap["early_budget"] == pytest.approx(1.5)  # 25 % of 6 volumes, between the budget-0 point and round 1
    assert gap["early"]["mean"] == pytest.approx(np.mean([(0.075 + 0.0075 * s) / 0.4 for s in SEEDS]))
    assert "spleen" not in summary["gap_closed"]  # no lower bound there
    assert summary["per_class_dice"]["spleen"]["random"]["organ"]["mean"] == pytest.approx(0.5 + 0.15 + 0.002 + 0.05)
    assert summary["timings"]["assft"] == {"n_rounds": 18, "query_s": 1.0, "finetune_s": 11.0, "evaluate_s": 2.0}


def test_win_matrix_pairs_domain_and_seed(report) -> None:
    matrix = report.summary["win_matrix"]
    names = matrix["strategies"]
    assert names[0] == "assft" and matrix["n_pairs"] == 6
    i, j, k = (names.index(n) for n in ("assft", "fg-random", "random"))
    assert matrix["matrix"][i][j] == 1 and matrix["matrix"][j][i] == -1 and matrix["matrix"][j][k] == 1
    assert matrix["p_values"][i][j] == pytest.approx(2 / 2**6)  # exact Wilcoxon, all 6 differences positive
    assert matrix["wins"]["assft"] == 2 and matrix["losses"]["random"] == 2
    versus = report.summary["assft_vs_fg_random"]
    assert versus["n"] == 6 and versus["mean_diff"] > 0 and versus["p_value"] == pytest.approx(1 / 32)


def test_files_tables_and_summary_agree(report) -> None:
    import matplotlib.image

    out = report.out_dir
    for name in ("dice_vs_budget.png", "win_matrix.png", "pseudo_labels_liver_assft.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert [p.name for p in out.glob("pseudo_labels_*.png")] == ["pseudo_labels_liver_assft.png"]  # only one has it
    markdown = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "<script" not in html and '<img src="dice_vs_budget.png"' in html and "<table>" in html
    summary = json.loads((out / "summary.json").read_text())
    aubc_rows = md_rows(markdown, "| domain | strategy | AUBC |")
    assert len(aubc_rows) == 6
    for domain, strategy, value, rank, seeds, _ in aubc_rows:
        assert value == fmt_stats(summary["aubc"][domain][strategy]) and int(rank) == summary["ranks"][domain][strategy]
    assert aubc_rows[0][:4] == ["liver", "assft", "0.658 ± 0.008", "1"]
    final_rows = md_rows(markdown, "| domain | strategy | labeled | Dice |")
    assert [r[3] for r in final_rows] == [fmt_stats(summary["final"][d][s]["mean_dice"])
                                          for d in DOMAINS for s in summary["strategies"]]
    win_rows = md_rows(markdown, "| strategy | assft |")
    assert win_rows[0][2].startswith("+ (p=0.0312") and win_rows[0][-2:] == ["2", "0"]
    pseudo = md_rows(markdown, "| domain | strategy | round | selected Dice |")
    assert pseudo == [["liver", "assft", str(r), "0.800", "9", "0.400", "6"] for r in (1, 2, 3)]
    assert "| organ | tumour |" in markdown and "| query (s) |" in markdown and "gap closed (final)" in markdown


def test_incomplete_campaign_is_flagged(tmp_path: Path) -> None:
    write_ledger(tmp_path / "d" / "assft" / "seed0", "liver", "assft", 0, pseudo_truth=False)
    write_ledger(tmp_path / "d" / "assft" / "seed1", "liver", "assft", 1, evaluated=2, pseudo_truth=False)
    result = write_report(tmp_path, tmp_path / "out")
    runs = {r["seed"]: r for r in result.summary["runs"]}
    assert runs[1]["complete"] is False and runs[1]["rounds_evaluated"] == 2 and runs[0]["complete"] is True
    assert result.summary["aubc"]["d"]["assft"]["per_seed"]["1"] == pytest.approx((1.1 + 0.01 + 1.3 + 0.02) / 4)
    assert result.summary["win_matrix"] is None and result.summary["assft_vs_fg_random"] is None
    assert "INCOMPLETE (seed 1: 2/3 rounds)" in result.markdown.read_text()


def test_single_campaign_folder_is_domain_default(tmp_path: Path) -> None:
    write_ledger(tmp_path / "camp", "spleen", "random", 4)
    runset = load_runs(tmp_path / "camp")
    assert [(r.domain, r.strategy, r.seed) for r in runset.runs] == [("default", "random", 4)]


def test_folder_without_ledger_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no ledger.json"):
        write_report(tmp_path, tmp_path / "out")


def test_cli_report(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for strategy in ("assft", "random"):
        write_ledger(runs / "spleen" / strategy / "seed0", "spleen", strategy, 0)
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(runs), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert "report" in result.output and (tmp_path / "rep" / "report.html").exists()
    matrix = json.loads((tmp_path / "rep" / "summary.json").read_text())["win_matrix"]
    assert matrix["n_pairs"] == 1 and matrix["matrix"] == [[0, 0], [0, 0]] and "no test" in matrix["note"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["report", str(empty), "--out", str(tmp_path / "rep2")])
    assert isinstance(result.exception, DataError)


def test_compute_stats_ignores_missing() -> None:
    stats = compute_stats([1.0, None, math.nan, 3.0])
    assert stats == {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "min": 1.0, "max": 3.0, "n": 2}
    assert fmt_stats(compute_stats([])) == "–"


def test_first_round_change_against_the_start_model(report) -> None:
    first = report.summary["first_round"]
    assert "spleen" not in first  # no budget-0 point there: nothing to compare round 1 with
    for strategy in STRATEGIES:  # round 1 - start = SLOPE + SEED_STEP * seed over seeds 0, 1, 2
        row = first["liver"][strategy]
        assert row["mean"] == pytest.approx(SLOPE[strategy] + SEED_STEP[strategy])
        assert row["min"] == pytest.approx(SLOPE[strategy]) and row["n"] == len(SEEDS)
    text = (report.out_dir / "report.md").read_text()
    assert "## First round vs the start model" in text


def test_first_round_below_the_start_is_flagged(tmp_path: Path) -> None:
    write_ledger(tmp_path / "liver" / "assft" / "seed0", "liver", "assft", 0)
    ledger_path = tmp_path / "liver" / "assft" / "seed0" / "ledger.json"
    ledger = json.loads(ledger_path.read_text())
    ledger["rounds"][0]["metrics"]["mean_dice"] = 0.47  # 0.03 below the start model's 0.5
    ledger_path.write_text(json.dumps(ledger))
    result = write_report(tmp_path, tmp_path / "out")
    assert result.summary["first_round"]["liver"]["assft"]["mean"] == pytest.approx(-0.03)
    row = next(line for line in (tmp_path / "out" / "report.md").read_text().splitlines()
               if line.startswith("| liver | assft |") and "**yes**" in line)
    assert "-0.030" in row


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16  # a stand-in file: the report copies pictures, it does not read them


def test_pictures_of_the_picks_and_pseudo_labels_are_copied_and_linked(tmp_path: Path) -> None:
    for seed in (0, 1):
        run = tmp_path / "runs" / "liver" / "assft" / f"seed{seed}"
        write_ledger(run, "liver", "assft", seed, pseudo_truth=False)
        for r in (1, 2):
            (run / "rounds" / f"r00{r}" / "query" / "figures").mkdir(parents=True)
            (run / "rounds" / f"r00{r}" / "query" / "figures" / "contact_sheet.png").write_bytes(PNG)
        (run / "rounds" / "r001" / "finetune").mkdir(parents=True)
        (run / "rounds" / "r001" / "finetune" / "pseudo_label_gallery.png").write_bytes(PNG)
    result = write_report(tmp_path / "runs", tmp_path / "out")
    shown = result.summary["figures"]["pictures"]
    assert list(shown) == ["liver / assft (seed 0)"]  # one seed per strategy
    paths = [item["path"] for item in shown["liver / assft (seed 0)"]]
    assert paths == ["pictures/liver_assft_seed0_r001_picks.png", "pictures/liver_assft_seed0_r001_pseudo-labels.png",
                     "pictures/liver_assft_seed0_r002_picks.png"]
    html = result.html.read_text()
    assert all(f'src="{p}"' in html and (tmp_path / "out" / p).read_bytes() == PNG for p in paths)
    assert "What was picked, and which pseudo-labels were trusted" in result.markdown.read_text()
