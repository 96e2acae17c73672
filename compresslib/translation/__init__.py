"""Machine translation (de→en): corpora, SentencePiece tokenisers, Transformer/LSTM models, KD and BLEU."""
