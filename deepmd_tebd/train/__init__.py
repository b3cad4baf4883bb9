"""Training: the traced step, the loop, checkpoints and the learning curve."""
