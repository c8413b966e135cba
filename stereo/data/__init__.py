"""Stereo data: file formats, annotation files, datasets, training augmentation, loaders, synthetic data."""
