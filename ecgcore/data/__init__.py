"""Data layer: readers, one label space, preprocessing cache, splits, synthetic default."""
