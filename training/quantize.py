"""Dynamic int8 quantisation of the transformer's linear layers, on the CPU: a measurement tool.

One function, `quantize_int8`, used by ``alertformer evaluate --quantize int8`` (what
int8 would cost in the metrics) and by the benches (``alertformer bench``'s forward
limits and ``bench.gpu`` on the CPU: what it would gain in speed). Serving does
not use it: on the shipped model it moved the evaluation metrics by up to 1.7 points,
more than the 0.5 allowed (README, Performance).

It sits in `training`, not in `bench` with the other measurement code, because
`training.evaluation.run` uses it and `bench` is the layer above `training`.

Weights of every ``nn.Linear`` are stored as int8 (per tensor); activations are
quantised on the fly per batch; attention, layer norms, the time encoding and the
softmax stay float32. Runs on CPU only (fbgemm/x86 or qnnpack kernels).
"""
import warnings

import torch
import torch.nn as nn


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` with every ``nn.Linear`` dynamically quantised to int8, in eval mode.

    Parameters
    ----------
    model : nn.Module
        On CPU, e.g. an `models.model.AlertTransformer`; left unchanged.

    Returns
    -------
    nn.Module
        The same class with the same methods (``predict_proba``, ``config``), whose
        linear layers are ``torch.ao.nn.quantized.dynamic.Linear``.

    Raises
    ------
    ValueError
        If the model is not on the CPU.

    Examples
    --------
    >>> q = quantize_int8(nn.Sequential(nn.Linear(4, 2)))
    >>> type(q[0]).__name__, q(torch.ones(1, 4)).shape
    ('Linear', torch.Size([1, 2]))
    >>> type(q[0]).__module__
    'torch.ao.nn.quantized.dynamic.modules.linear'
    """
    devices = {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
    if devices - {"cpu"}:
        raise ValueError(f"int8 dynamic quantisation runs on the CPU; the model is on {sorted(devices)}")
    with warnings.catch_warnings():
        # torch >= 2.10 flags torch.ao.quantization and quantized tensors as deprecated in favour of
        # torchao, which is not a dependency; the eager dynamic path still works (tests/unit/test_quantize.py).
        warnings.filterwarnings("ignore", r"torch\.ao\.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", r"torch\.quantize_per_tensor", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=False).eval()
