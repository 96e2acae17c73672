"""Quantization: the bucketed uniform quantizer (QD) and what is built on it."""

from compresslib.quantization.uniform import MAX_BITS, MIN_BITS, QuantizedTensor, fake_quantize, quantize

__all__ = ["QuantizedTensor", "quantize", "fake_quantize", "MIN_BITS", "MAX_BITS"]
