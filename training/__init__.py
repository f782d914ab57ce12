"""Offline and near-line: simulator, data sets, training, evaluation, re-fine-tuning."""
