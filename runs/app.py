"""The command line of the Hydra apps a user runs (``runs.study``, ``runs.fit``, ``runs.paper``,
``runs.bench``).

Before Hydra starts, ``start`` refuses with one line a config group of another app (``python -m
runs.study +figure=funnel``), a group choice that is not a file, a key the config lacks, and what
the app's own ``check`` refuses (``runs.bench`` checks its values there). Hydra's
``--cfg`` composes in single-run mode, where a sweep value (``scenario.tau=1,4``, the default grid
of ``conf/study.yaml``) is an error; here ``--cfg`` shows the config of the sweep's first job
instead. ``--help`` shows the app's own text (``conf/hydra/help/<app>.yaml``), whose ``grid``
resolver lists the sweep a plain call runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from runs import config
from runs.checks import ConfigError

GROUPS = {  # the config groups of each app's primary config; hydra/... is Hydra's own
    "study": ("scenario", "prior", "inference", "experiment"),
    "fit": ("prior", "inference", "comparison"),
    "paper": ("figure",),
    "bench": (),
}
APPS = {"study": "runs.study", "fit": "runs.fit -m", "paper": "runs.paper", "bench": "runs.bench"}
HELP_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc")


_COMMAND_LINE_SWEEPS: dict[str, str] = {}
"""The sweeps of the command line of a ``--help`` call (``start`` sets them; Hydra's help composes
a single run, where a sweep value is an error, so they are taken out of what Hydra sees)."""


def grid(params) -> str:
    """The sweep of a multirun, one line a key: the grid's values with the command line's on top."""
    words = {str(k): str(v) for k, v in (OmegaConf.to_container(params) if params else {}).items()}
    words.update(_COMMAND_LINE_SWEEPS)
    if not words:
        return "  (one job: no sweep)"
    return "\n".join(f"  {key}: {value}" for key, value in words.items())


def groups(app: str) -> str:
    """``app``'s config groups, one line each with its choices (the files of ``conf/<group>/``)."""
    lines = []
    for group in GROUPS[app]:
        names = sorted(p.stem for p in (config.CONF / group).glob("*.yaml"))
        lines.append(f"  {group}: {', '.join(names)}")
    return "\n".join(lines)


for _name, _function in (("hierbench.grid", grid), ("hierbench.groups", groups)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _function)


def check_groups(args: list[str], app: str) -> None:
    """Every config group named on the command line is one of ``app``'s."""
    for o, _ in config.parse_overrides(args):
        group = o.key_or_group.split(".")[0]
        owner = next((a for a, groups in GROUPS.items() if group in groups), None)
        if owner is None or group in GROUPS[app] or not (config.CONF / group).is_dir():
            continue
        config.require(
            False, o.key_or_group, o.value(),
            f"{group} is a group of python -m {APPS[owner]}, not of python -m {APPS[app]} "
            f"(its groups: {', '.join(GROUPS[app]) or 'none'})")


def check_command_line(argv: list[str], app: str, check=None) -> None:
    """What runs before Hydra starts: the command line's groups, group choices and keys checked,
    then the app's own ``check(argv)`` where it has one (a bad one ends the program with one
    line), ``--cfg`` answered with the sweep's first job (and the program ended), and a
    ``--help`` call's sweeps kept for its text."""
    if any(a.split("=")[0] in HELP_FLAGS for a in argv):
        single = config.first_job_words(argv) or []
        sweeps = [a for a in argv if "=" in a and not a.startswith("-") and a not in single]
        _COMMAND_LINE_SWEEPS.update(a.split("=", 1) for a in sweeps)
        sys.argv[1:] = [a for a in argv if a not in sweeps]
        return
    try:
        check_groups(argv, app)
        config.check_group_choices(argv)
        config.check_keys(argv, app)
        if check is not None:
            check(argv)
        if any(a.split("=")[0] in ("--cfg", "-c") for a in argv):
            print(first_job(argv, app), end="")
            sys.exit(0)
    except ConfigError as err:
        sys.exit(f"error: {err}")


def start(main, app: str, argv: list[str] | None = None, check=None) -> None:
    """``check_command_line``, then the Hydra app ``main``."""
    check_command_line(sys.argv[1:] if argv is None else argv, app, check)
    main()


def first_job(argv: list[str], app: str, conf: Path = config.CONF) -> str:
    """``--cfg job|hydra|all``: the yaml of the first job of the sweep the command line runs."""
    from hydra import compose, initialize_config_dir
    from hydra.types import RunMode

    kind, words, i = "job", [], 0
    while i < len(argv):
        flag, sep, value = argv[i].partition("=")
        if flag in ("--cfg", "-c"):
            if not sep:
                i += 1
                value = argv[i] if i < len(argv) else ""
            config.require(value in ("job", "hydra", "all"), "--cfg", value, "job, hydra or all")
            kind = value
        elif "=" in argv[i] and not argv[i].startswith("-"):
            words.append(argv[i])
        i += 1
    first = config.first_job_words(words, conf) or []
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        base = compose(app, overrides=first, return_hydra_config=True)
        if base.hydra.mode == RunMode.MULTIRUN or any(a in ("-m", "--multirun") for a in argv):
            params = base.hydra.sweeper.get("params")
            params = OmegaConf.to_container(params) if params is not None else {}
            given = {w.split("=", 1)[0].lstrip("+~") for w in first}
            swept = [f"{k}={v}" for k, v in params.items() if k.lstrip("+~") not in given]
            first = (config.first_job_words(swept, conf) or []) + first
        cfg = compose(app, overrides=first, return_hydra_config=kind != "job")
    if kind == "hydra":
        return OmegaConf.to_yaml(cfg.hydra)
    return OmegaConf.to_yaml(cfg)
