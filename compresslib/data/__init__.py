"""Datasets: downloads and checksums, the on-disk tensor format, splits and device-resident loaders."""
