"""Classic published figures, reproduced: one module per paper, each with ``main(argv)``.

Each figure has an experiment yaml in ``conf/experiment/`` whose first lines are its command, and a
``make`` target; the computation (fits, draws, exact curves) runs in ``runs/`` and writes parquet
files, and these modules only read them and draw, so the PNG lands beside the data it came from.
"""
