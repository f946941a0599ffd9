"""Networks (encoders, heads), checkpoints, sim pretraining and SB3 policies."""
