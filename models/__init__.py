"""Pure torch/numpy: light-curve encoding, the transformer, taxonomy, checkpoints.

Imports neither `stream` nor `training`.
"""
