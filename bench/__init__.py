"""bench: a harness that compares GAN adversarial objectives fairly, at scale."""

__version__ = "0.1.0"
