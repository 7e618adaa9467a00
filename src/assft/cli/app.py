"""Root of the `assft` command line (typer): sub-commands are registered here; errors become one red line."""

from __future__ import annotations

import sys

import typer

from assft.cli import data as data_cli
from assft.cli import domains as domains_cli
from assft.cli import train as train_cli
from assft.cli.common import STATE, console

app = typer.Typer(
    name="assft",
    help="Active source-free adaptation of 3D medical segmentation models: which volumes to annotate, how to fine-tune.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    threads: str = typer.Option(
        None, "--threads", envvar="ASSFT_THREADS", show_default="auto",
        help="torch threads: a number, or 'auto' (all cores, one fewer per core another process keeps busy)."),
) -> None:
    from assft.errors import ConfigError
    from assft.utils.threads import parse_threads, set_thread_policy

    STATE["debug"] = debug
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
                 "assft.cli.demo", "assft.cli.report"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)


_register_optional()


def main() -> None:
    """Console entry point: run the app, turning AssftError into one clear line and exit code 2."""
    from assft.errors import AssftError

    debug = "--debug" in sys.argv
    try:
        app(standalone_mode=False)
    except AssftError as exc:
        if debug:
            raise
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        console.print("[red]aborted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and anything unexpected
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        console.print(f"[bold red]error:[/] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                      highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
