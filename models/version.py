"""The release of alertformer: published in every output record and dead letter, and the wheel's version."""
__version__ = "0.1.0"
