"""Composing the study config the way ``python -m runs.study`` does, into a temporary folder."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import read_write

CONF = str(Path(__file__).resolve().parent.parent / "conf")

TINY = [
    "scenario.n_groups=3",
    "scenario.group_size=4",
    "replicates=3",
    "inference.chains=2",
    "inference.warmup=100",
    "inference.draws=100",
]


def compose_study(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(
            config_name="study",
            overrides=[*TINY, f"results_root={tmp_path}", "compilation_cache=null", *overrides],
        )


def sweep_jobs(tmp_path, *task):
    """The jobs of the multirun ``python -m runs.study <TINY> <task>`` (inside an initialized
    Hydra), as its preflight forms them."""
    from runs import study

    base = [*TINY, f"results_root={tmp_path}", "compilation_cache=null"]
    cfg = compose("study", overrides=base, return_hydra_config=True)
    with read_write(cfg):
        cfg.hydra.overrides.task = [*base, *task]
    return study.sweep_jobs(cfg)
