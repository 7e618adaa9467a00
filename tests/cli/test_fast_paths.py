"""What needs no model or volume loads neither torch nor MONAI (a fraction of a second, not seconds): refusals of
outputs, options, config files and campaign folders, and `campaign status`.

Each case runs the CLI's entry point in a fresh interpreter and reports which heavy libraries were imported when the
command exited; the refusals' messages are checked in full by tests/cli/test_bad_inputs.py and test_output_guard.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = ("import sys\nfrom assft.cli.app import main\ntry:\n    main()\nfinally:\n"
         "    print('loaded:', ','.join(m for m in ('torch', 'monai') if m in sys.modules), file=sys.stderr)\n")

CASES = [
    ("campaign-folder-typo", ("campaign", "next", "campx"), "not a campaign directory"),
    ("status-of-a-dataset", ("campaign", "status", "d"), "not a campaign directory"),
    ("ledger-invalid-json", ("campaign", "status", "c"), "not valid JSON"),
    ("import-labels-no-campaign", ("campaign", "import-labels", "d", "--labels", "d"), "not a campaign directory"),
    ("finetune-no-campaign", ("campaign", "finetune", "d"), "not a campaign directory"),
    ("init-inside-pool", ("campaign", "init", "--model", "m.pt", "--images", "d", "--out", "d/camp"),
     "lies inside the input pool"),
    ("init-bad-config-field", ("campaign", "init", "--model", "m.pt", "--images", "d", "--out", "c2", "--config",
                               "bad.yaml"), "query.alpha"),
    ("simulate-unknown-executor", ("simulate", "--config", "x.yaml", "--executor", "dask"), "--executor 'dask'"),
    ("simulate-bad-name", ("simulate", "--config", "exp.yaml"), "domain name"),
    ("adapt-onto-model", ("adapt", "--model", "m.pt", "--images", "d", "--out", "m.pt"), "is the input --model"),
    ("fingerprint-onto-model", ("fingerprint", "--model", "m.pt", "--images", "d", "--out", "m.pt"),
     "is the input --model"),
    ("query-into-pool", ("query", "--model", "m.pt", "--images", "d", "--budget", "1", "--out", "d/q"),
     "lies inside the input --images"),
    ("pretrain-into-images", ("pretrain", "--images", "d", "--out", "d/ssl.pt"), "lies inside the input --images"),
]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder `d`, a file `m.pt` (never read: the refusals come first), a campaign-looking `c` with a broken
    ledger, and two bad config files."""
    root = tmp_path_factory.mktemp("fast")
    (root / "d").mkdir()
    (root / "m.pt").write_bytes(b"not read")
    (root / "c").mkdir()
    (root / "c" / "campaign.yaml").write_text("model: m.pt\npool: d\n")
    (root / "c" / "ledger.json").write_text('{"meta": ')
    (root / "bad.yaml").write_text("query: {alpha: 3}\n")
    (root / "exp.yaml").write_text("out: runs\nmodel: m.pt\ndata: d\ndomains: ['../x']\n")
    return root


def probe(args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    """The CLI with `args` in a fresh interpreter; stderr ends with the heavy libraries it had imported."""
    env = {**os.environ, "ASSFT_THREADS": "1", "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("case_id, args, words", CASES, ids=[c[0] for c in CASES])
def test_a_refusal_needs_neither_torch_nor_monai(case_id: str, args: tuple[str, ...], words: str,
                                                  sandbox: Path) -> None:
    done = probe(args, sandbox)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr, done.stderr
    assert "loaded: \n" in done.stderr, done.stderr  # neither library was imported


def test_status_of_a_campaign_needs_neither_torch_nor_monai(tmp_path: Path) -> None:
    camp = tmp_path / "camp"
    camp.mkdir()
    (camp / "campaign.yaml").write_text("model: m.pt\npool: d\nrounds: 2\n")
    (camp / "ledger.json").write_text(json.dumps({
        "meta": {"strategy": "random", "budget_total": 2, "pool_size": 6, "rounds": 2,
                 "baseline_metrics": {"mean_dice": 0.5}},
        "rounds": [{"round": 1, "status": "evaluated", "selected": ["a"], "labels_received": ["a"],
                    "labeled_total": 1, "metrics": {"mean_dice": 0.625}}]}))
    done = probe(("campaign", "status", str(camp)), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if "0.625" in line)
    assert "evaluated" in row and "1/1" in row
    assert "next: assft campaign next" in done.stdout
    assert "loaded: \n" in done.stderr, done.stderr
