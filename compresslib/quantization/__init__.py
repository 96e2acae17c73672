"""Quantization: the bucketed uniform quantizer (QD, ``uniform``), QD's shadow weights (``shadow``), DQ's learned
points (``differentiable``), size accounting (``size``) and the packed file (``pack``); the settings of every
quantized run are ``spec.QuantSpec`` (importable without torch)."""
