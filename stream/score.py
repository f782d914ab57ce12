"""The model in the stream: load a checkpoint, score a batch of windows on the CPU or a GPU.

`Scorer.score` sorts a batch by window length and runs the forward pass in chunks of
`Scorer.chunk_curves` curves: similar lengths share a chunk, so little padding is
computed, and on the CPU a chunk of 64 curves keeps the activations in cache (the
bench's ``score_chunks`` measures the gain; figures in the README's Performance
section). This departs from "one forward pass per batch" for speed only. On CUDA a
batch is one chunk by default, copied from pinned host memory without blocking (and
run under bf16 autocast if ``scoring.precision`` says so); the probabilities come
back in one copy, the one host sync per batch.

On the CPU a chunk a few tokens short of a multiple of `CPU_TOKEN_MULTIPLE` is padded up to
it with masked tokens, which the fused attention kernel runs faster than the lengths in between.

`score` is three steps the scoring service runs on two threads: `encode_batch`
(Python and numpy: the service's thread), `probabilities` (the forward passes: a
worker thread, overlapping the service's other work) and `scores`. On the CPU the
forward pass runs a TorchScript trace of the model, which executes without holding
Python's GIL (the eager model takes the GIL back after every operator and would
stall behind the service's thread); the trace is checked against the eager model
when it is made, and a model that cannot be traced runs eagerly.
"""
import dataclasses
import hashlib
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import CheckpointMismatch, load_checkpoint
from models.device import device_of
from models.encode import FEATURE_NAMES, Batch, encode_curves
from models.lightcurve import LightCurve
from models.lightcurves import LightCurves
from models.model import AlertTransformer
from models.priors import apply_prior, prior_weights
from models.paths import SHIPPED_CHECKPOINT, checkpoint_path
from models.registry import ModelRegistry
from models.taxonomy import flare_likelihood, sn_likelihood
from stream.config import ScoringSettings
from stream.errors import ConfigError

log = logging.getLogger(__name__)
DET_FEATURE = FEATURE_NAMES.index("det")
CPU_CHUNK_CURVES = 64  # default curves per forward call on the CPU (scoring.forward_chunk_curves)
# The CPU's fused attention runs whole blocks of 16 query and key tokens fast and a remainder
# slowly (60 tokens took 1.7x as long as 64 at 16-wide heads), so a CPU chunk a few tokens
# short of a multiple of 16 (the context token included) is padded up to it with masked tokens
# (`cpu_padded_tokens`; the scan behind the rule is in the README's Performance section).
CPU_TOKEN_MULTIPLE = 16
CPU_PAD_AT_MOST = 6  # padding more tokens than this cost more in the other layers than attention saved
PRECISIONS = ("fp32", "bf16")
TRACE_TOLERANCE = 1e-5  # largest probability difference allowed between the trace and the eager model


def pick_device(name: str) -> torch.device:
    """`models.device.device_of` for the ``scoring.device`` setting: a ConfigError naming it."""
    try:
        return device_of(name)
    except ValueError as err:
        raise ConfigError(f"scoring.device: {err}") from None


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX or AVX-512 BF16), where bf16 beats fp32.

    Without either, oneDNN emulates bf16 and it is slower than fp32, so bf16 is refused there.
    """
    try:
        capability = torch._C._cpu._get_cpu_capability()  # private; its keys vary by torch version
    except (AttributeError, RuntimeError):
        return False
    return bool(capability.get("amx_bf16") or capability.get("avx512_bf16"))


def pick_precision(name: str, device: torch.device) -> str:
    """Check that `device` can run ``scoring.precision`` `name`; return it.

    >>> pick_precision("fp32", torch.device("cpu"))
    'fp32'
    """
    if name not in PRECISIONS:  # a name from code, not from validated settings
        raise ConfigError(f"scoring.precision: {name!r} is not one of {', '.join(PRECISIONS)}")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("scoring.precision: bf16 needs a CUDA device with bf16 support (scoring.device)")
    if name == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        raise ConfigError("scoring.precision: bf16 on the CPU needs AMX or AVX-512 BF16, which this CPU lacks "
                          "(scoring.device)")
    return name


def cpu_padded_tokens(tokens: int) -> int:
    """The token count a CPU chunk of `tokens` tokens (the context token included) is run at.

    >>> cpu_padded_tokens(60), cpu_padded_tokens(65), cpu_padded_tokens(21), cpu_padded_tokens(64)
    (64, 65, 21, 64)
    """
    short = -tokens % CPU_TOKEN_MULTIPLE
    return tokens + short if short <= CPU_PAD_AT_MOST else tokens


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op threads of this process (``scoring.torch_threads``); 0 keeps torch's default."""
    if threads:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class ServedCheckpoint:
    """The checkpoint a scorer started now serves, and why (`served_checkpoint`)."""

    path: Path
    version: str | None  # the registry's version; None: named by `checkpoint_version`
    source: str  # "scoring.checkpoint", "registry champion" or "shipped model"


def served_checkpoint(scoring: ScoringSettings, registry: ModelRegistry | None) -> ServedCheckpoint:
    """An explicit ``scoring.checkpoint``, else the registry's champion, else the shipped model.

    Raises RegistryError if the champion's files are missing.
    """
    if scoring.checkpoint:
        return ServedCheckpoint(Path(scoring.checkpoint), None, "scoring.checkpoint")
    champion = registry.champion() if registry is not None else None
    if champion is not None:
        return ServedCheckpoint(registry.get(champion).checkpoint, champion, "registry champion")
    return ServedCheckpoint(SHIPPED_CHECKPOINT, None, "shipped model")


def checkpoint_version(path: Path, meta: dict) -> str:
    """The registry version recorded in the checkpoint, else ``sha-`` + 12 hex of the file's SHA-256."""
    if meta.get("version"):
        return str(meta["version"])
    return "sha-" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


class _CompiledProbabilities(torch.nn.Module):
    """``softmax(logits / temperature)`` of the model over plain tensors, for `torch.compile`.

    Unlike `_Probabilities` it does not go through `AlertTransformer.predict_proba`, whose
    `torch.inference_mode` a compiled graph cannot trace; the caller runs it under `torch.no_grad`.
    """

    def __init__(self, model: AlertTransformer):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, dt_days: torch.Tensor, mask: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model(Batch(features, dt_days, mask, context, context_mask))  # (B, C)
        return torch.softmax(logits / self.model.temperature, dim=-1)  # (B, C)


class _Probabilities(torch.nn.Module):
    """`AlertTransformer.predict_proba` over plain tensors, the form `torch.jit.trace` takes.

    ``bf16``: under CPU bf16 autocast, which runs the linear layers in bf16 and keeps the
    time encoding, attention (`models.model.SelfAttention`) and the softmax in fp32; a
    frozen trace then holds the weights in bf16 once instead of casting them every call.
    """

    def __init__(self, model: AlertTransformer, bf16: bool = False):
        super().__init__()
        self.model, self.bf16 = model, bf16

    def forward(self, features: torch.Tensor, dt_days: torch.Tensor, mask: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.model.predict_proba(Batch(features, dt_days, mask, context, context_mask))


def _example_batch(n_features: int, n_context: int) -> Batch:
    """Two curves of 5 and 3 points, one with context (random values): what the trace records and is checked on."""
    generator = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    features = torch.randn(2, 5, n_features, generator=generator) * mask[..., None]
    dt_days = torch.rand(2, 5, generator=generator).cumsum(dim=1) * mask
    context_mask = torch.tensor([[True] * n_context, [False] * n_context])
    context = torch.randn(2, n_context, generator=generator) * context_mask
    return Batch(features, dt_days, mask, context, context_mask)


def trace_model(model: AlertTransformer, precision: str = "fp32") -> torch.jit.ScriptModule | None:
    """A frozen TorchScript trace of ``model.predict_proba`` on the CPU at `precision`, or None if it does not
    match the model run eagerly at that precision.

    TorchScript is deprecated in favour of torch.compile and torch.export, which need a
    compiler at run time; its deprecation warnings (FutureWarning or DeprecationWarning,
    by torch version) are silenced here.
    """
    example = _example_batch(model.config.n_features, model.config.n_context)
    probabilities = _Probabilities(model, bf16=precision == "bf16").eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
            traced = torch.jit.freeze(torch.jit.trace(probabilities, example.as_tuple(), check_trace=False))
            difference = (traced(*example.as_tuple()) - probabilities(*example.as_tuple())).abs().max().item()
    except (RuntimeError, TypeError, ValueError) as err:
        log.warning("model not traced, the forward pass runs eagerly (holding the GIL): %s", err)
        return None
    if not difference <= TRACE_TOLERANCE:
        log.warning("model trace differs from the model by %.2g: the forward pass runs eagerly", difference)
        return None
    return traced


@dataclass(frozen=True)
class EncodedBatch:
    """`Scorer.encode_batch`'s output: the chunks to run, and what `Scorer.scores` needs back."""

    order: np.ndarray  # (B,) int64: chunk position -> input index
    chunks: list[Batch]  # host tensors, in `order`
    n_visits: np.ndarray  # (B,) int32, input order
    n_detections: np.ndarray  # (B,) int32, input order


@dataclass(frozen=True)
class Scores:
    probs: np.ndarray  # (B, C) float32, calibrated
    sn_likelihood: np.ndarray  # (B,) float32
    flare_likelihood: np.ndarray  # (B,) float32
    n_visits: np.ndarray  # (B,) int32, points the model saw
    n_detections: np.ndarray  # (B,) int32
    model_version: str
    scored_ms: int  # ms since the Unix epoch, UTC

    def finite(self) -> np.ndarray:
        """(B,) bool: alerts whose probabilities are all finite (the others must not be published)."""
        return np.isfinite(self.probs).all(axis=1)

    def select(self, keep: np.ndarray) -> "Scores":
        """The scores of the alerts where `keep` ((B,) bool) is true, in order."""
        return dataclasses.replace(self, probs=self.probs[keep], sn_likelihood=self.sn_likelihood[keep],
                                   flare_likelihood=self.flare_likelihood[keep], n_visits=self.n_visits[keep],
                                   n_detections=self.n_detections[keep])


class Scorer:
    """A loaded model, the device and precision it runs at; `score` scores a batch of windows.

    Parameters
    ----------
    model : AlertTransformer
    version : str
    device : torch.device
    max_visits : int
        Window length passed to `encode`.
    precision : {"fp32", "bf16"}
        bf16: autocast, on CUDA or on a CPU with bf16 hardware (`cpu_has_bf16`).
    chunk_curves : int or None
        Curves per forward call; None: the whole batch in one call.
    prior_weights : (C,) ndarray, optional
        Class shares the published probabilities assume (`models.priors`); None: balanced, as trained.
    compile : bool
        Run the forward pass through `torch.compile` (dynamic shapes) instead of the
        TorchScript trace or the eager model. Measured by ``alertformer bench-gpu``, not a
        serving setting: on this project's 2-core CPU it was 0.8x the trace, and on CUDA
        it has not yet been shown to hold the evaluation's metrics.
    """

    def __init__(self, model: AlertTransformer, version: str, device: torch.device, max_visits: int,
                 precision: str = "fp32", chunk_curves: int | None = None, prior_weights: np.ndarray | None = None,
                 compile: bool = False):
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
        self.model = model.to(device).eval()
        self.n_params = self.model.get_num_params()
        self.version, self.device, self.max_visits = version, device, max_visits
        self.precision, self.chunk_curves, self.prior_weights = precision, chunk_curves, prior_weights
        self.compiled = torch.compile(_CompiledProbabilities(self.model), dynamic=True) if compile else None
        self.traced = trace_model(self.model, precision) if device.type == "cpu" and not compile else None

    @classmethod
    def from_file(cls, path: Path, version: str | None, scoring: ScoringSettings) -> "Scorer":
        """Load `path` to serve with `scoring`'s device, precision, window and chunks.

        `version` names it (default: `checkpoint_version`). Raises CheckpointMismatch, or
        ConfigError for a precision the device cannot run.
        """
        dev = pick_device(scoring.device)
        precision = pick_precision(scoring.precision, dev)
        model, meta = load_checkpoint(path, map_location=dev)
        version = version or checkpoint_version(path, meta)
        chunk = scoring.forward_chunk_curves or (CPU_CHUNK_CURVES if dev.type == "cpu" else None)
        log.info("model loaded version=%s device=%s precision=%s chunk_curves=%s torch_threads=%d params=%d",
                 version, dev, precision, chunk, torch.get_num_threads(), model.get_num_params())
        prior = scoring.prior_by_id()
        return cls(model, version, dev, scoring.max_visits, precision, chunk,
                   None if prior == "balanced" else prior_weights(prior))

    @classmethod
    def from_checkpoint(cls, path: str | Path | None, scoring: ScoringSettings) -> "Scorer":
        """The configured checkpoint (a path or a `models.paths.SHIPPED_CHECKPOINTS` name; default: the shipped
        one), with configuration errors for bad files."""
        path = checkpoint_path(path) if path else SHIPPED_CHECKPOINT
        if not path.is_file():
            raise ConfigError(f"scoring.checkpoint: {path} does not exist")
        try:
            return cls.from_file(path, None, scoring)
        except CheckpointMismatch as err:
            raise ConfigError(f"scoring.checkpoint: {path}: {err}") from None

    @property
    def context_fields_by_survey(self) -> dict[str, tuple[str, ...]]:
        """Which context fields the model is shown, per survey (its checkpoint's `ModelConfig`)."""
        return self.model.config.context_fields_by_survey

    def forward(self, batch: Batch) -> torch.Tensor:
        """Calibrated probabilities (B, C) of an encoded host batch, left on the device (no host sync).

        On CUDA the batch is copied from pinned memory without blocking the host.
        """
        if self.traced is not None:
            with torch.inference_mode():
                return self.traced(*batch.as_tuple())  # (B, C)
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            if self.compiled is not None:
                with torch.no_grad():
                    return self.compiled(*batch.to(self.device).as_tuple())  # (B, C)
            return self.model.predict_proba(batch)  # (B, C)

    def encode(self, curves: LightCurves | list[LightCurve], contexts: np.ndarray | None = None) -> Batch:
        """One forward call's input as this scorer runs it: `curves` encoded at its window with their
        (B, N_CONTEXT) `contexts` (None: unknown) and, on the CPU, padded by `cpu_padded_tokens`."""
        if not isinstance(curves, LightCurves):
            curves = LightCurves.from_list(curves)
        batch = encode_curves(curves, max_visits=self.max_visits, contexts=contexts)
        if self.device.type == "cpu":
            batch = batch.padded(cpu_padded_tokens(batch.mask.shape[1] + 1) - 1)  # + and - the context token
        return batch

    def encode_batch(self, curves: LightCurves | list[LightCurve], contexts: np.ndarray | None = None) -> EncodedBatch:
        """Sort `curves` (B >= 1) by window length and encode them, with their (B, N_CONTEXT) `contexts`
        (None: unknown), in chunks of `chunk_curves`."""
        n = len(curves)
        if n == 0:
            raise ValueError("score: no light curves")
        if not isinstance(curves, LightCurves):
            curves = LightCurves.from_list(curves)
        window = np.minimum(curves.lengths, self.max_visits)  # (B,)
        order = np.argsort(window, kind="stable")  # (B,) shortest windows first
        step = self.chunk_curves or n
        n_visits, n_detections = np.empty(n, np.int32), np.empty(n, np.int32)
        chunks = []
        for start in range(0, n, step):
            idx = order[start:start + step]  # (b,)
            batch = self.encode(curves.take(idx), None if contexts is None else contexts[idx])
            n_visits[idx] = batch.n_visits.numpy()
            n_detections[idx] = (batch.mask & (batch.features[..., DET_FEATURE] > 0.5)).sum(dim=1).numpy()
            chunks.append(batch)
        return EncodedBatch(order, chunks, n_visits, n_detections)

    def probabilities(self, encoded: EncodedBatch) -> np.ndarray:
        """(B, C) float32 probabilities of an encoded batch, in input order: the forward passes.

        Safe to run on another thread than `encode_batch` (the service does).
        """
        sorted_probs = torch.cat([self.forward(batch) for batch in encoded.chunks])  # (B, C) on the device
        sorted_probs = sorted_probs.float().cpu().numpy()  # the one host sync per batch
        probs = np.empty_like(sorted_probs)  # (B, C) in input order
        probs[encoded.order] = sorted_probs
        return probs

    def score(self, curves: LightCurves | list[LightCurve], contexts: np.ndarray | None = None) -> Scores:
        """Scores of `curves` (B >= 1) with their (B, N_CONTEXT) `contexts`, in their order (module docstring)."""
        encoded = self.encode_batch(curves, contexts)
        return self.scores(encoded, self.probabilities(encoded))

    def timed_probabilities(self, sets: Mapping[str, Sequence[LightCurve]],
                            contexts: Mapping[str, np.ndarray] | None = None) -> dict[str, tuple[np.ndarray, float]]:
        """``{name: (probs, seconds)}``: the (N, C) float32 probabilities of each named set of curves, with
        its (N, N_CONTEXT) contexts from `contexts` (None: unknown), and the wall seconds `encode_batch` and
        `probabilities` took for it, the host sync included (an empty set: (0, C) and 0 s).

        The evaluation's path: the class prior is not applied. One untimed warm-up call comes first.
        """
        first = next((curves for curves in sets.values() if len(curves)), None)
        if first is not None:
            self.probabilities(self.encode_batch(list(first[:8])))
        out = {}
        for name, curves in sets.items():
            if not len(curves):
                out[name] = (np.zeros((0, self.model.config.n_classes), np.float32), 0.0)
                continue
            start = time.perf_counter()
            probs = self.probabilities(self.encode_batch(list(curves), None if contexts is None else contexts[name]))
            out[name] = (probs, time.perf_counter() - start)
        return out

    def scores(self, encoded: EncodedBatch, probs: np.ndarray) -> Scores:
        """`Scores` of a batch from its `encode_batch` output and its `probabilities`, under the class prior."""
        if self.prior_weights is not None:
            probs = apply_prior(probs, self.prior_weights)
        return Scores(
            probs=probs,
            sn_likelihood=np.asarray(sn_likelihood(probs), dtype=np.float32),
            flare_likelihood=np.asarray(flare_likelihood(probs), dtype=np.float32),
            n_visits=encoded.n_visits,
            n_detections=encoded.n_detections,
            model_version=self.version,
            scored_ms=time.time_ns() // 1_000_000,
        )
