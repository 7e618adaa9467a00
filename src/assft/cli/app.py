"""Root of the `assft` command line (typer): sub-commands are registered here; errors become one red line."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import typer

from assft.cli import data as data_cli
from assft.cli import domains as domains_cli
from assft.cli import train as train_cli
from assft.cli.aliases import AliasGroup
from assft.cli.common import STATE, err_console

app = typer.Typer(
    name="assft",
    help="Active source-free adaptation of 3D medical segmentation models: which volumes to annotate, how to fine-tune.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=AliasGroup,  # old option spellings keep working for one release, with a notice (docs/cli.md)
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    threads: str = typer.Option(
        None, "--threads", envvar="ASSFT_THREADS", show_default="auto",
        help="torch threads: a number, or 'auto' (all cores, one fewer per core another process keeps busy)."),
    max_voxels: int = typer.Option(
        None, "--max-voxels", envvar="ASSFT_MAX_VOXELS", show_default="512^3 = 134217728",
        help="Refuse any volume whose header declares more voxels than this (checked before the data is read)."),
    allow_outside_root: bool = typer.Option(
        False, "--allow-outside-root", envvar="ASSFT_ALLOW_OUTSIDE_ROOT",
        help="Accept dataset.json entries that point outside the dataset folder (only for a dataset.json you trust)."),
) -> None:
    import os

    from assft.data.limits import ENV_ALLOW_OUTSIDE_ROOT, ENV_MAX_VOXELS
    from assft.errors import ConfigError
    from assft.utils.threads import parse_threads, set_thread_policy

    STATE["debug"] = debug
    # The library reads these from the environment, so worker processes (simulate --jobs) inherit them too.
    if max_voxels is not None:
        if max_voxels < 1:
            raise ConfigError(f"--max-voxels must be >= 1, got {max_voxels}.", fix="e.g. --max-voxels 200000000")
        os.environ[ENV_MAX_VOXELS] = str(max_voxels)
    if allow_outside_root:
        os.environ[ENV_ALLOW_OUTSIDE_ROOT] = "1"
    try:
        count = parse_threads(threads)
    except ValueError as exc:
        raise ConfigError(f"--threads: {exc}.", fix="pass --threads 1 (or 2, ...) or --threads auto") from None
    set_thread_policy(count)


app.add_typer(data_cli.app, name="data", help="Check datasets, make splits, generate phantoms.")
app.add_typer(domains_cli.app, name="domains", help="Simulated target domains (shifts applied to real volumes).")
train_cli.register(app)


def _register_optional() -> None:
    # Later capabilities add their commands here; each module exposes register(app).
    import importlib

    for name in ("assft.cli.adapt", "assft.cli.query", "assft.cli.finetune", "assft.cli.pretrain", "assft.cli.campaign",
                 "assft.cli.demo", "assft.cli.report", "assft.cli.monailabel"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)


_register_optional()


def _interrupted(exc: BaseException) -> bool:
    """Whether `exc` was raised while handling a KeyboardInterrupt (Ctrl-C)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    """warnings.showwarning for the console: a ConfigNotice is one stderr line "note: ...", any other warning as
    Python shows it (with its source line, which helps with a library's warning but not with a note on a config)."""
    from rich.markup import escape

    from assft.errors import ConfigNotice

    if issubclass(category, ConfigNotice):
        err_console.print(f"[yellow]note:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


_PYTHON_SHOWWARNING = warnings.showwarning


def main() -> None:
    """Console entry point: usage errors as typer prints them (exit 2); any other failure one line and exit 2."""
    from rich.markup import escape

    from assft.cli.common import ABORTED, describe_fault
    from assft.errors import AssftError

    debug = "--debug" in sys.argv
    warnings.showwarning = _show_warning
    try:
        # standalone mode: typer prints usage errors with its usual usage message (exit 2) and turns typer.Exit
        # (e.g. `data check` finding problems: exit 1) into the process's exit code.
        app(standalone_mode=True)
    except AssftError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print(f"[red]{ABORTED}[/]", highlight=False, soft_wrap=True)
        sys.exit(130)
    except SystemExit as exc:
        # typer turns Ctrl-C into a silent exit 130; the one "aborted" line is printed here instead
        if exc.code == 130 and _interrupted(exc):
            err_console.print(f"[red]{ABORTED}[/]", highlight=False, soft_wrap=True)
        raise
    except Exception as exc:  # a bug or an unforeseen input: one line, the traceback only with --debug
        if debug:
            raise
        fault = describe_fault(exc)  # a full disk, no permission, a vanished folder: the machine's, not a bug
        if fault is not None:
            err_console.print(f"[bold red]error:[/] {escape(fault)}", highlight=False, soft_wrap=True)
            sys.exit(2)
        err_console.print(f"[bold red]error:[/] {escape(f'{type(exc).__name__}: {exc}')} (an unexpected error; run "
                          "with --debug for the traceback and report it if the input looks valid)",
                          highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
