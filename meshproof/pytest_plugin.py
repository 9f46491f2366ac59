"""meshproof's options, registered through the `pytest11` entry point (pyproject.toml).

It loads for every pytest run in this environment, the engine's own `pytest tests` included, so it only adds
options and corrects the rootdir (below): the run plugin (fixtures.run, loaded by the repository's
conftest.py) does everything else, and only for suite runs.

Why the rootdir needs correcting: pytest picks its rootdir and ini file from the command line *before* it
loads any plugin, so the value of `--kubeconfig /some/file` (space form) looks like a test path then, and the
rootdir moves to /some, away from the repository's pyproject.toml (markers, addopts, testpaths). Once the
options are known the arguments parse correctly; `pytest_load_initial_conftests` (before any conftest is
read) runs pytest's own rootdir search again on them and, when it lands elsewhere, adopts that result and
the ini's addopts and pythonpath exactly as pytest would have. This uses pytest internals
(`_pytest.config.findpaths.determine_setup` and the Config's ini fields); the option-form tests pin it.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest

from meshproof.config import add_pytest_options

KNOWN_ISSUES_FILE = "suites/known-issues.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshproof", "meshproof run options (also MESHPROOF_* env and --profile YAML)")
    add_pytest_options(group)
    group.addoption(
        "--known-issues",
        dest="known_issues",
        default=None,
        metavar="FILE",
        help=f"YAML skip list with reason, link, scope, expiry (default {KNOWN_ISSUES_FILE})",
    )
    group.addoption(
        "--profile-name",
        dest="profile_name",
        default=None,
        metavar="NAME",
        help="certification profile: a fixed selection of required and optional tests (see README)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Redo pytest's rootdir/ini choice now that option values are no longer mistaken for test paths."""
    ns = early_config.known_args_namespace  # parsed again by pytest after the entry points loaded
    try:
        rootpath, inipath, inicfg, ignored = _determine_setup(early_config, ns)
    except (ImportError, TypeError, ValueError) as exc:  # pytest internals moved: keep pytest's own choice
        early_config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"meshproof: cannot re-check the rootdir on this pytest ({exc}); write file options as "
                "--option=VALUE"
            ),
            stacklevel=2,
        )
        return
    if (rootpath, inipath) == (early_config.rootpath, early_config.inipath):
        return  # the common case: nothing was mistaken
    had_ini = early_config.inipath is not None
    early_config._rootpath = rootpath
    early_config._inipath = inipath
    early_config._inicfg = inicfg
    if ignored is not None:
        early_config._ignored_config_files = ignored
    early_config._inicache.clear()
    parser.extra_info["rootdir"] = str(rootpath)
    parser.extra_info["inifile"] = str(inipath)
    if not had_ini:  # the mistaken choice found no ini, so none of the real ini's addopts were applied
        args[:] = [*early_config.getini("addopts"), *args]
    early_config._configure_python_path()
    early_config.known_args_namespace = parser.parse_known_args(
        args, namespace=copy.copy(early_config.option)
    )
    if early_config.known_args_namespace.confcutdir is None:
        early_config.known_args_namespace.confcutdir = str(inipath.parent if inipath else rootpath)


def _determine_setup(config: pytest.Config, ns: Any) -> tuple[Any, Any, Any, Any]:
    from _pytest.config.findpaths import determine_setup

    accepted = inspect.signature(determine_setup).parameters
    kwargs = {
        "inifile": ns.inifilename,
        "override_ini": ns.override_ini,
        "args": ns.file_or_dir,
        "rootdir_cmd_arg": ns.rootdir or None,
        "invocation_dir": config.invocation_params.dir,
    }
    result: tuple[Any, ...] = tuple(determine_setup(**{k: v for k, v in kwargs.items() if k in accepted}))
    rootpath, inipath, inicfg, *ignored = result  # pytest 8 returns no list of ignored config files
    return rootpath, inipath, inicfg, (ignored[0] if ignored else None)
