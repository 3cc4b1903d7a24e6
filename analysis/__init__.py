"""Summarise: performance measures with Monte Carlo error, and figures, from result files only.

Nothing here fits a model or imports ``runs``: a results directory of parquet files is the whole
input, so figures can be redrawn on another machine from copied results.
"""
