"""The settings of every runnable thing, with their defaults and allowed values: a training run
(``training.TrainSpec``, and ``PostTrainingSpec``), its quantization (``quantization.QuantSpec``), a translation run
(``translation.TranslationSpec``) and an ESNAC search (``esnac.SearchSpec``).

A leaf of the package: these modules need no torch and import no algorithm, so the workflow checks a config with
them before any job starts, and the algorithms (the training loop, the losses, LIT, the quantizers) read their
allowed values from here. The machinery that builds, checks and writes settings is ``compresslib.settings``.
"""
