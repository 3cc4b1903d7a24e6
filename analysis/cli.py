"""The command line of the analysis apps: ``analysis.figures``, ``analysis.report``, ``analysis.sbc``,
``analysis.paper.<figure>`` and ``runs.sbc``.

Each is a Hydra app whose primary config is ``conf/analysis_<name>.yaml`` (its keys with their
defaults and a one-line comment each; ``--help`` shows them with the app's commands, ``--cfg job``
the composed config). It writes nothing of Hydra's own (no output folder, no log file): what it
writes is its figures and tables. ``main(argv)`` composes the same config from a list of words,
for code and tests that call an app without a process of its own.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import hydra
from omegaconf import DictConfig, OmegaConf

CONF = Path(__file__).resolve().parent.parent / "conf"


def app(config_name: str, run: Callable[[DictConfig], object]):
    """The ``main(argv=None)`` of an app: Hydra on ``sys.argv``, or ``argv`` composed and run."""

    def main(argv: list[str] | None = None):
        if argv is None:
            check_keys(sys.argv[1:], config_name)
            return hydra.main(version_base="1.3", config_path=str(CONF),
                              config_name=config_name)(lambda cfg: _run(run, cfg))()
        from hydra import compose, initialize_config_dir

        check_keys(argv, config_name)
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name, overrides=list(argv))
        return _run(run, cfg)

    return main


def check_keys(argv: list[str], config_name: str) -> None:
    """A ``key=value`` word whose key the app does not have stops with one line naming the keys."""
    keys = [k for k in OmegaConf.load(CONF / f"{config_name}.yaml") if k not in ("defaults", "hydra")]
    for word in argv:
        key, sep, value = word.partition("=")
        if sep and not word.startswith(("-", "+", "~", "hydra")) and key.split(".")[0] not in keys:
            sys.exit(f"error: {key}={value!r} is not allowed: not a key of "
                     f"{config_name}; its keys are {', '.join(keys)}")


def _run(run, cfg: DictConfig):
    for key in cfg:
        if OmegaConf.is_missing(cfg, key):
            sys.exit(f"error: {key} needs a value ({key}=...); --help shows the keys")
    return run(cfg)


def boolean(cfg, key: str) -> bool:
    """``cfg[key]`` read as true/false; anything else exits with one line."""
    value = cfg[key]
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() not in ("true", "false"):
        sys.exit(f"error: {key}={value!r} is not allowed: true or false")
    return str(value).strip().lower() == "true"
