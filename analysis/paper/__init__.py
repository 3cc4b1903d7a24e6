"""Classic published figures, reproduced: one module per paper, each with ``main(argv)``.

Each figure has a yaml in ``conf/figure/`` or ``conf/comparison/`` whose first lines are its command, and a
``make`` target; the computation (fits, draws, exact curves) runs in ``runs/`` and writes parquet
files, and these modules only read them and draw, so the PNG lands beside the data it came from.
"""

from pathlib import Path

DPI = 130


def save(fig, results_dir, name: str, **tight) -> Path:
    """Lay out ``fig``, write it as ``<results_dir>/<name>.png`` beside its data, close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout(**tight)
    path = Path(results_dir) / f"{name}.png"
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def main_of(draw):
    """The ``main(argv)`` of a figure module whose ``draw(results_dir)`` returns the PNG path."""
    from analysis import cli

    return cli.app("analysis_paper", lambda cfg: print(draw(cfg.results_dir)))
