"""Every command shown in README.md and docs/ runs, as a dry run, so the docs cannot drift from the code.

A command is a line of a ```sh block. ``make <target> ...`` runs as ``make -n <target> ...`` (the
target exists and its recipe expands), and each ``python -m`` line of that recipe is dry-run in
turn; ``python -m <app> ...`` runs with ``--cfg job`` for a Hydra app (the command line composes
and passes the checks made before any job) and with ``--help`` for the others; a line that already
asks for ``--help`` or ``--cfg`` runs as it is. Every entry point a user runs answers ``--help``
with its own text.
"""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENTRY_POINTS = ["runs.study", "runs.fit", "runs.paper", "runs.sbc", "runs.replay", "runs.bench",
                "analysis.figures", "analysis.report", "analysis.sbc", "analysis.paper.gelman2006",
                "analysis.paper.efron_morris", "analysis.paper.bda3_eight_schools",
                "analysis.paper.funnel", "analysis.paper.rat_tumors"]
NOT_DRY_RUN = {"pytest"}  # a test runner


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) of every line of every ```sh block, comments left out."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), re.S):
            for line in block.splitlines():
                line = re.split(r"\s+#", line, maxsplit=1)[0].strip()
                if line and not line.startswith("#"):
                    found.append((page.relative_to(ROOT).as_posix(), line))
    return found


def entry_file(module: str) -> Path:
    """The file ``python -m <module>`` runs: the module's, or a package's ``__main__.py``."""
    path = ROOT / module.replace(".", "/")
    return path / "__main__.py" if path.is_dir() else path.with_suffix(".py")


def is_hydra_app(module: str) -> bool:
    source = entry_file(module).read_text()
    return any(mark in source for mark in ("@hydra.main", "cli.app(", "app.start("))


def dry_run(words: list[str]) -> list[str]:
    """The dry-run form of ``python -m <module> <words>``: the module and its arguments."""
    module, rest = words[0], words[1:]
    if any(w.split("=")[0] in ("--help", "-h", "--cfg", "-c") for w in rest):
        return [module, *rest]
    if is_hydra_app(module):
        return [module, "--cfg", "job", *rest]
    return [module, *rest, "--help"]


def run_module(words: list[str], monkeypatch, capsys) -> str:
    """``python -m <words>`` in this process (its entry point: ``cli`` or ``main``); its output.
    It must end normally: an exit with a message or a non-zero code fails."""
    from hydra.core.global_hydra import GlobalHydra

    path = entry_file(words[0])
    if 'config_path="../conf"' in path.read_text() and "--help" in words:
        # Hydra's main finds a config path relative to the module only when it runs as a script
        return run([sys.executable, "-m", *words]).stdout
    module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    entry = getattr(module, "cli", None)
    entry = entry if callable(entry) else module.main  # analysis apps: main; cli is a module
    monkeypatch.setattr(sys, "argv", [str(path.relative_to(ROOT)), *words[1:]])
    GlobalHydra.instance().clear()
    capsys.readouterr()
    try:
        entry()
    except SystemExit as stop:
        assert stop.code in (None, 0), f"python -m {shlex.join(words)}: {stop.code}"
        print(capsys.readouterr().out, end="")  # keep what it printed before it ended
    finally:
        GlobalHydra.instance().clear()
    return capsys.readouterr().out


def run(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{shlex.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


def recipe_commands(make_output: str) -> list[list[str]]:
    """The ``python -m`` commands a ``make -n`` prints (shell conditionals included)."""
    found = []
    for line in make_output.splitlines():
        for match in re.finditer(r"python3? -m (\S+)((?: (?!&&|;|\|\|)[^\s;]+)*)", line):
            module, rest = match.group(1), shlex.split(match.group(2))
            if module.split(".")[0] in ("runs", "analysis") and module not in NOT_DRY_RUN:
                found.append([module, *rest])
    return found


COMMANDS = sorted(set(shown_commands()))


def test_the_docs_show_commands_and_every_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert len(COMMANDS) > 20
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme, page.name
    assert len(readme.splitlines()) <= 250


@pytest.mark.parametrize("page, command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_a_shown_command_runs_as_a_dry_run(page, command, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(ROOT)
    words = shlex.split(command)
    if words[0] == "make":
        done = run(["make", "-n", *words[1:]])
        for recipe in recipe_commands(done.stdout):
            run_module(dry_run(recipe), monkeypatch, capsys)
    else:
        assert words[:2] == ["python", "-m"], f"{page}: not a make or python -m command: {command}"
        assert words[2] not in NOT_DRY_RUN, f"{page}: show `make bench` instead: {command}"
        run_module(dry_run(words[2:]), monkeypatch, capsys)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_every_entry_point_answers_help_with_its_own_text(module, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    out = run_module([module, "--help"], monkeypatch, capsys)
    name = "analysis.paper" if module.startswith("analysis.paper.") else module
    assert f"python -m {name}" in out and "powered by Hydra" not in out, out


def test_a_wrong_experiment_for_the_app_is_refused_in_one_line(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    for words, named in ((["runs.fit", "+experiment=scenarios"], "experiment is a group of python -m runs.study"),
                         (["runs.paper", "+comparison=efron_morris"], "comparison is a group of python -m runs.fit -m")):
        with pytest.raises(AssertionError, match=re.escape(named)):
            run_module(words, monkeypatch, capsys)
