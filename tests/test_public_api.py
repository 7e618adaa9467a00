"""The public API: every re-exported name resolves, has a docstring, and importing assft is side-effect free."""

from __future__ import annotations

import subprocess
import sys

import pytest

import assft


def test_every_export_resolves_and_is_documented() -> None:
    for name in assft.__all__:
        value = getattr(assft, name)
        if callable(value) and not isinstance(value, type(assft)):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_the_root_is_small_and_type_checkers_see_every_name() -> None:
    """About fifteen workflow entry points, each also imported under TYPE_CHECKING (else it is `Any` to mypy)."""
    import ast
    from pathlib import Path

    names = set(assft.__all__) - {"__version__"}
    assert 12 <= len(names) <= 20, sorted(names)
    tree = ast.parse(Path(assft.__file__).read_text())
    typed = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.If)
             and getattr(node.test, "id", "") == "TYPE_CHECKING" for stmt in node.body
             if isinstance(stmt, ast.ImportFrom) for alias in stmt.names}
    assert typed == names
    for name in names:  # each lazily loaded name is the object its module defines
        assert getattr(assft, name).__module__.startswith("assft."), name


def test_a_subpackage_exports_its_own_concept_only() -> None:
    import assft.pretrain
    import assft.query

    assert not [n for n in assft.query.__all__ if n.startswith("compute_")]  # the score math is assft.metrics'
    for package in (assft.query, assft.pretrain):
        modules = {package._EXPORTS[name] for name in package.__all__}  # type: ignore[attr-defined]
        assert all(m.startswith(package.__name__ + ".") for m in modules), sorted(modules)


def test_import_is_light_and_configures_nothing() -> None:
    code = ("import logging, sys; import assft; "
            "assert 'torch' not in sys.modules and 'monai' not in sys.modules, 'heavy import'; "
            "assert not logging.getLogger().handlers, 'logging configured'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_the_cli_starts_without_torch() -> None:
    """A usage error must not wait ~5 s for torch and MONAI: the CLI imports only the packages' config modules."""
    code = ("import sys; import assft.cli.app; "
            "heavy = sorted(m for m in ('torch', 'monai', 'nibabel', 'scipy') if m in sys.modules); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_lazy_package_resolves_its_names_and_refuses_others() -> None:
    import assft.query

    assert assft.query.QueryConfig.__module__ == "assft.query.config" and "run_query" in dir(assft.query)
    try:
        assft.query.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "assft.query" in str(exc) and "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        assft.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


@pytest.mark.slow
def test_every_subpackage_imports_first_without_a_cycle() -> None:
    """Each package imported first in a fresh interpreter (a circular import only shows in some orders)."""
    packages = ["inference", "models", "query", "pretrain", "finetune", "adapt"]  # they import one another
    # lazy packages import their modules on first use: resolve every export, so each module loads first once
    code = ("import importlib, subprocess, sys\n"
            "for p in sys.argv[1:]:\n"
            "    load = f'import assft.{p} as m; [getattr(m, n) for n in m.__all__]'\n"
            "    r = subprocess.run([sys.executable, '-c', load], capture_output=True, text=True)\n"
            "    print(p, 'ok' if r.returncode == 0 else r.stderr.strip().splitlines()[-1])\n")
    out = subprocess.run([sys.executable, "-c", code, *packages], capture_output=True, text=True)
    assert out.stdout.split("\n")[:-1] == [f"{p} ok" for p in packages], out.stdout + out.stderr
