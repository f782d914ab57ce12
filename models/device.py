"""Where a model runs: the one place that picks a torch device (serving, training, evaluation)."""
import torch


def device_of(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA if available, else the CPU; otherwise the named device.

    Raises
    ------
    ValueError
        For ``"cuda"`` on a machine without a CUDA device, or a name torch does not know.

    >>> device_of("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{name} requested but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}: {err}") from None
