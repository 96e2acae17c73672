"""Data of every kind, prepared once into files that jobs read: downloads and checksums, image and text datasets
(``dataset.pt``), translation corpora (``corpus.pt``), splits and device-resident loaders."""
