"""Quantization: the bucketed uniform quantizer (QD, ``uniform``), QD's shadow weights (``shadow``), DQ's learned
points (``differentiable``), size accounting (``size``) and the packed file (``pack``); the settings of every
quantized run are ``compresslib.specs.quantization.QuantSpec`` (importable without torch)."""
