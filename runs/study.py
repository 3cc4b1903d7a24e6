"""``python -m runs.study``: the Hydra app of a simulation study (root config ``conf/study.yaml``).

Each job fits one prior spec on every replicate of one cell and writes one parquet file; the
default grid in ``hydra.sweeper.params`` makes a plain call a multirun.
"""

import hydra
from omegaconf import DictConfig

from runs import job


@hydra.main(version_base="1.3", config_path="../conf", config_name="study")
def main(cfg: DictConfig) -> None:
    job.run(cfg)


if __name__ == "__main__":
    main()
