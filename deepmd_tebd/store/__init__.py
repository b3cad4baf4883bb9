"""Where a model's state is kept and read back, for training and inference alike: the keys of a
training checkpoint (`keys`), atomic file writes (`atomic`), and every way of restoring a
model's weights and statistics from a checkpoint or a frozen graph (`restore`)."""
