"""Machine translation (de→en) runs: token batching, greedy and beam decoding, BLEU and perplexity, the training
loop, and a model's translations of a split (sequence-level KD targets). Corpora are ``compresslib.data``'s, the
models ``compresslib.models``', the settings ``compresslib.specs.translation``."""
