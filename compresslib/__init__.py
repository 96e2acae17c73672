"""compresslib: model-compression methods (LMA, quantized distillation, LIT, ESNAC) as a library.

The Snakemake workflow in this repository wires these modules together; nothing here imports Snakemake.
"""

__version__ = "0.1.0"
