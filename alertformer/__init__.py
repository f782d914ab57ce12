"""alertformer: real-time transformer scoring of astronomical alert streams.

The command line is `alertformer.cli`; the code lives in the top-level packages `models`,
`stream` and `training`. The Python API (`alertformer.api`) is loaded on first use, so
``import alertformer`` loads neither numpy nor torch:

- `score`, `score_magnitudes`: score one light curve with the shipped model;
- `Model`: a loaded checkpoint with the same two methods; `Score`: what they return;
- `FluxScaleWarning`: fluxes implausible for the survey (a likely unit mistake).
"""
from models.version import __version__

_API = ("FluxScaleWarning", "Model", "Score", "score", "score_magnitudes")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """The API's names, imported from `alertformer.api` when first asked for (PEP 562)."""
    if name in _API:
        from alertformer import api

        return getattr(api, name)
    raise AttributeError(f"module 'alertformer' has no attribute {name!r}")
