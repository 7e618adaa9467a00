"""Old option spellings (docs/cli.md): still accepted for one release, translated to the new name with a notice.

The translation happens on the command line before typer parses it, so every command declares only its new
option names (help shows those alone) and no command body has to reconcile two parameters for one value.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

from assft.errors import ConfigError

# command (group and sub-command joined by a space) -> {old spelling: new spelling}
RENAMED: dict[str, dict[str, str]] = {
    "train": {"--model": "--arch"},
    "pretrain": {"--model": "--arch"},
    "query": {"--pool": "--images", "--labeled": "--data"},
    "finetune": {"--unlabeled": "--images", "--labeled": "--data"},
    "campaign init": {"--pool": "--images"},
    "domains apply": {"--in": "--data"},
    "report": {"--alpha": "--significance", "--test": "--stat-test"},
    "monailabel app": {"--labels": "--classes"},
    "data init": {"--labels": "--classes"},  # the spelling first proposed for it; --labels names folders elsewhere
}
GROUPS = ("data", "domains", "campaign", "monailabel")
ROOT_OPTIONS_WITH_VALUE = ("--threads", "--max-voxels")


def command_of(args: list[str]) -> tuple[str | None, int]:
    """The command ("query", "campaign init") a command line runs and the index of its first own argument."""
    i, words = 0, []
    while i < len(args) and len(words) < 2:
        token = args[i]
        if token == "--":
            break
        if token.startswith("-"):
            if not words and token in ROOT_OPTIONS_WITH_VALUE:
                i += 1  # its value
        elif not words:
            words.append(token)
            if token not in GROUPS:
                return token, i + 1
        else:
            words.append(token)
        i += 1
    return (" ".join(words) or None), i


def translate(args: list[str]) -> tuple[list[str], list[str]]:
    """`args` with deprecated option spellings replaced by the new ones, and one notice per spelling replaced.

    ConfigError when a command line gives both the old and the new spelling of one option.
    """
    command, start = command_of(args)
    renamed = RENAMED.get(command or "", {})
    if not renamed:
        return list(args), []
    out, notices = list(args), []
    end = out.index("--") if "--" in out[start:] else len(out)
    for old, new in renamed.items():
        hits = [i for i in range(start, end) if out[i] == old or out[i].startswith(old + "=")]
        if not hits:
            continue
        if any(out[i] == new or out[i].startswith(new + "=") for i in range(start, end)):
            raise ConfigError(f"{old} and {new} are the same option of `assft {command}` ({old} is its old name).",
                              fix=f"give {new} once")
        for i in hits:
            out[i] = new + out[i][len(old):]
        notices.append(f"`assft {command} {old}` is now {new}; the old spelling works for one more release.")
    return out, notices


class AliasGroup(TyperGroup):
    """The root command group: translates old option spellings before any command parses its options.

    The root group sees the whole command line (root options, command, the command's own options) before the
    command does, so the console script and in-process callers (typer's CliRunner) get the same translation.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Replace deprecated spellings (one stderr notice each), then parse as usual."""
        from assft.cli.common import err_console

        args, notices = translate(args)
        for notice in notices:
            err_console.print(f"[yellow]deprecated:[/] {notice}", highlight=False, soft_wrap=True, markup=True)
        return super().parse_args(ctx, args)
