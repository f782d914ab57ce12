"""alertformer: real-time transformer scoring of astronomical alert streams.

This package holds only the command-line entry point; the code lives in the
top-level packages `models`, `stream` and `training`.
"""
__version__ = "0.1.0"
