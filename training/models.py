"""Training runs of the GAN encoder (see issue: GAN encoder training)."""
