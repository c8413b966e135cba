"""One reader (and writer) per on-disk format; readers return float32 arrays, invalid disparity = inf."""
