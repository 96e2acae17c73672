"""``python -m compresslib.plan_cost``: the estimate of a config's whole DAG (see the package docstring)."""

from compresslib.cli import run_main
from compresslib.plan_cost import main

run_main(main)
