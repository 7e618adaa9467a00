"""One option vocabulary (docs/cli.md): every renamed option exists under its new name only, and the old spelling
is translated with one notice (the console-script side is in tests/cli/test_bad_inputs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assft.cli.aliases import RENAMED, command_of, translate
from assft.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _command(path: str):
    import typer.main

    from assft.cli.app import app

    command = typer.main.get_command(app)
    for word in path.split():
        command = command.commands[word]  # type: ignore[attr-defined]
    return command


def _option_names(path: str) -> set[str]:
    return {name for param in _command(path).params for name in param.opts}


@pytest.mark.parametrize("path", sorted(RENAMED))
def test_each_renamed_option_exists_under_its_new_name_only(path: str) -> None:
    names = _option_names(path)
    for old, new in RENAMED[path].items():
        assert new in names, f"assft {path} has no {new}"
        assert old not in names, f"assft {path} still declares {old}"


def test_the_docs_table_lists_every_rename() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for path, renames in RENAMED.items():
        for old, new in renames.items():
            row = [line for line in text.splitlines() if line.startswith(f"| `{path}` | `{old}")]
            assert row and f"`{new}" in row[0], f"docs/cli.md lacks `{path}` {old} -> {new}"


def test_model_always_names_a_checkpoint() -> None:
    for path in ("predict", "evaluate", "adapt", "query", "fingerprint", "finetune", "campaign init", "monailabel app"):
        params = {p.opts[0]: p for p in _command(path).params if getattr(p, "opts", None)}
        text = (params["--model"].help or "").lower()
        assert "checkpoint" in text or "θ0" in text or ".pt" in text, (path, text)
    for path in ("train", "pretrain"):
        assert "--arch" in _option_names(path) and "--model" not in _option_names(path)


@pytest.mark.parametrize(("args", "expected", "notices"), [
    (["query", "--pool", "p", "--budget", "2"], ["query", "--images", "p", "--budget", "2"], 1),
    (["--threads", "1", "query", "--pool=p"], ["--threads", "1", "query", "--images=p"], 1),
    (["campaign", "init", "--pool", "p"], ["campaign", "init", "--images", "p"], 1),
    (["campaign", "next", "--pool"], ["campaign", "next", "--pool"], 0),  # not renamed there
    (["report", "r", "--alpha", "0.1", "--test", "ttest"], ["report", "r", "--significance", "0.1", "--stat-test",
                                                           "ttest"], 2),
    (["train", "--model", "unet"], ["train", "--arch", "unet"], 1),
    (["predict", "--model", "m.pt"], ["predict", "--model", "m.pt"], 0),  # --model stays a checkpoint
    (["query", "--", "--pool"], ["query", "--", "--pool"], 0),
    ([], [], 0),
])
def test_translate_known_answers(args: list[str], expected: list[str], notices: int) -> None:
    out, said = translate(args)
    assert out == expected and len(said) == notices


def test_both_spellings_of_one_option_is_an_error() -> None:
    with pytest.raises(ConfigError, match="--pool and --images"):
        translate(["query", "--pool", "a", "--images", "b"])


@given(st.lists(st.sampled_from(["--x", "v", "--threads", "1", "--debug", "query", "campaign", "init", "--pool"]),
                max_size=8))
def test_translate_changes_nothing_but_option_names(args: list[str]) -> None:
    try:
        out, _ = translate(args)
    except ConfigError:
        return
    assert len(out) == len(args)
    command, _ = command_of(args)
    renamed = RENAMED.get(command or "", {})
    for before, after in zip(args, out):
        assert after == before or renamed.get(before) == after


def test_old_spelling_works_in_process(phantom_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from assft.cli.app import app

    result = CliRunner().invoke(app, ["domains", "apply", "--domain", "bias", "--in", str(phantom_dir), "--out",
                                      str(tmp_path / "shifted")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "shifted" / "dataset.json").exists()
