"""Training: the Trainer assembly, its callbacks and checkpoints, sequence packing, task sampling and the accuracy probe. Imports torch."""
