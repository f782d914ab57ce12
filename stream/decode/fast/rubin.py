"""`FastRubinDecoder`: a batch of Rubin messages in, the light curves of all of them as flat arrays out.

The same alerts as `stream.decode.decode_rubin`, field for field, at a
fraction of the cost: per schema version the Avro schema is compiled once
into a skip plan (`plan`), and one compiled loop (`kernel`) walks every
message of the batch, reading only the ~10 fields the light curve needs and
skipping the other ~100 per diaSource without building a Python object.

A message the fast path cannot vouch for (corrupt bytes, a NaN flux, an
unknown band, a schema id it has no plan for, an implausible value in the alert's
own source or position, ...) is decoded again by `decode_rubin`, so a bad message gets exactly decode_rubin's `BadPacket`
text, and a message that only looked odd (say, fastavro's leniency with a
truncated cutout) gets exactly decode_rubin's alert.
"""
import ctypes
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.lightcurve import LightCurve
from stream.alert import DecodedAlert
from stream.decode.fast import kernel
from stream.decode.fast.plan import (
    IMPLAUSIBLE, OK, OP_ARRAY, OP_ARRAY_END, OP_FIELDS, OP_JUMP, OP_UNION, Plan, Unsupported, compile_plan,
)
from stream.decode.physical import implausible, position_plausible
from stream.decode.rubin import (
    BAND_CODES, decode_rubin, object_key, parse_object_key, rubin_contexts, rubin_schema, rubin_versions, schema_id,
)

log = logging.getLogger(__name__)

# CPython keeps a bytes object's data at a fixed offset from its address (the last
# member of PyBytesObject); the kernel reads messages there, without copying them
# into one buffer (which, for 100 kB alerts with cutouts, cost more than decoding).
_BYTES_DATA_OFFSET = bytes.__basicsize__ - 1


def _bytes_layout_known() -> bool:
    probe = b"alertformer"
    return ctypes.string_at(id(probe) + _BYTES_DATA_OFFSET, len(probe)) == probe


def _addresses(payloads: list[bytes]) -> np.ndarray:
    """(B,) int64 address of each payload's first byte; the payloads must stay alive while it is used."""
    if _BYTES_LAYOUT_KNOWN:
        return np.fromiter(map(id, payloads), dtype=np.int64, count=len(payloads)) + _BYTES_DATA_OFFSET
    return np.array([np.frombuffer(p, dtype=np.uint8).__array_interface__["data"][0] if p else 0
                     for p in payloads], dtype=np.int64)


_BYTES_LAYOUT_KNOWN = _bytes_layout_known()

# Fewest points per message a batch's output is sized for; it follows the last batch
# (plus a quarter), and grows when short.
POINTS_PER_MESSAGE_GUESS = 64


@dataclass(frozen=True)
class RubinBatch:
    """The alerts of a batch of messages as columns: message i's light curve is rows ``offsets[i]:offsets[i + 1]``.

    Per message, (B,): `ok` says whether it decoded; for those that did,
    `alert_id`, `source_id`, `object_id` (the diaObjectId, or the ssObjectId of
    a solar-system source, where `object_is_ss`; `object_key` makes the text key),
    `ra_deg`/`dec_deg`, ``schema_names[schema_index]`` and `context` ((B, N_CONTEXT)) are `DecodedAlert`'s fields. Per point, (P,): `point_source_id`, `mjd_tai`
    (MJD TAI, float64), `band` (int8 code), `flux_njy`/`flux_err_njy` (nJy,
    float32), `is_detection`; each message's rows are one validated
    `LightCurve`, sorted by time, with unique source ids. A message that did not
    decode has no rows, and its `errors` entry says why.

    Attributes
    ----------
    errors : dict of int to Exception
        Message index -> `BadPacket` (bad input, with decode_rubin's text); any
        other exception is a decoder bug, kept for the caller to log.
    fallback : (B,) int8
        0 where the fast path decoded the message, else the reason it was
        handed to decode_rubin (an index into `plan.REASONS`).
    dropped_points : (B,) int64
        Implausible history points left out of each message's curve (`DecodedAlert.dropped_points`).
    """

    schema_names: tuple[str, ...]
    schema_index: np.ndarray
    ok: np.ndarray
    alert_id: np.ndarray
    source_id: np.ndarray
    object_id: np.ndarray
    object_is_ss: np.ndarray
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    context: np.ndarray
    offsets: np.ndarray
    point_source_id: np.ndarray
    mjd_tai: np.ndarray
    band: np.ndarray
    flux_njy: np.ndarray
    flux_err_njy: np.ndarray
    is_detection: np.ndarray
    fallback: np.ndarray
    dropped_points: np.ndarray
    errors: dict[int, Exception] = field(default_factory=dict)

    POINT_COLUMNS = ("point_source_id", "mjd_tai", "band", "flux_njy", "flux_err_njy", "is_detection")

    def __len__(self) -> int:
        return len(self.ok)

    def light_curve(self, i: int) -> LightCurve:
        """Message `i`'s curve: views of the point columns, no copy (empty if it did not decode)."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return LightCurve(*(getattr(self, name)[a:b] for name in self.POINT_COLUMNS))

    def alert(self, i: int) -> DecodedAlert:
        """Message `i` as decode_rubin returns it; raises its error if it did not decode."""
        if not self.ok[i]:
            raise self.errors[i]
        return DecodedAlert(
            survey="rubin", schema=self.schema_names[self.schema_index[i]], alert_id=int(self.alert_id[i]),
            source_id=int(self.source_id[i]), object_id=object_key(int(self.object_id[i]), bool(self.object_is_ss[i])),
            ra_deg=float(self.ra_deg[i]),
            dec_deg=float(self.dec_deg[i]), light_curve=self.light_curve(i),
            context=self.context[i].copy(), dropped_points=int(self.dropped_points[i]))

    def alerts(self) -> list[DecodedAlert | None]:
        """One `DecodedAlert` per message, in order; None where it did not decode (see `errors`).

        Same as `alert` for each message, with the per-message columns turned
        into Python numbers once for the batch.
        """
        names, columns = self.schema_names, [getattr(self, name) for name in self.POINT_COLUMNS]
        offsets = self.offsets.tolist()
        alerts = []
        for i, (ok, schema, alert_id, source_id, object_id, is_ss, ra_deg, dec_deg, dropped) in enumerate(zip(*(
                column.tolist() for column in (self.ok, self.schema_index, self.alert_id, self.source_id,
                                               self.object_id, self.object_is_ss, self.ra_deg, self.dec_deg,
                                               self.dropped_points)))):
            if not ok:
                alerts.append(None)
                continue
            a, b = offsets[i], offsets[i + 1]
            alerts.append(DecodedAlert("rubin", names[schema], alert_id, source_id, object_key(object_id, is_ss),
                                       ra_deg, dec_deg,
                                       LightCurve(*(column[a:b] for column in columns)), self.context[i].copy(),
                                       dropped))
        return alerts


class FastRubinDecoder:
    """Batch decoder of Rubin alerts, equivalent to `decode_rubin` on each message.

    Parameters
    ----------
    versions : iterable of str, optional
        Schema versions (``"M.m"``) to compile plans for, default all of
        `stream.decode.rubin_versions`. Messages of other known versions are
        still decoded, by decode_rubin (fastavro), as are those of a version
        whose schema the plan compiler does not handle.
    version : str, optional
        Decode schemaless payloads of this version (decode_rubin's `version`);
        by default payloads are in the Confluent wire format.
    registry : stream.decode.registry.RegistrySchemas, optional
        decode_rubin's `registry`, for the ids no plan knows.

    Attributes
    ----------
    plans : dict of str to Plan
        The compiled versions.
    jit_s : float
        Seconds the first call of the compiled kernel took in this process:
        compiling it (about 9-14 s on one core) or loading it from numba's
        cache (about 0.5 s).

    Raises
    ------
    ConfigError
        For an unknown version.

    Examples
    --------
    >>> from stream.decode import encode_rubin
    >>> source = {"diaSourceId": 1, "diaObjectId": 2, "visit": 3, "midpointMjdTai": 60000.5,
    ...           "band": "r", "psfFlux": 150.0, "psfFluxErr": 10.0, "ra": 1.0, "dec": 2.0}
    >>> good = encode_rubin({"diaSourceId": 1, "diaSource": source}, "10.0", fill_defaults=True)
    >>> batch, errors = FastRubinDecoder(["10.0"]).decode_batch([good, b"\\x00\\x00"])
    >>> batch.ok.tolist(), batch.light_curve(0).flux_njy.tolist(), str(errors[1])
    ([True, False], [150.0], 'truncated Confluent wire-format header: 2 byte(s), need 5')
    """

    def __init__(self, versions: Iterable[str] | None = None, *, version: str | None = None, registry=None):
        self.version, self.registry = version, registry
        if version is not None:
            versions = [version]
        versions = list(rubin_versions() if versions is None else versions)
        self.plans: dict[str, Plan] = {}
        self._points_guess = POINTS_PER_MESSAGE_GUESS
        for v in versions:
            schema = rubin_schema(v)  # ConfigError for an unknown version
            try:
                self.plans[v] = compile_plan(schema)
            except Unsupported as err:
                log.warning("fast decoder: lsst schema %s left to fastavro reason=%s", v, err)
        self._link()
        started = time.perf_counter()
        self._run([])
        self.jit_s = time.perf_counter() - started
        log.info("fast decoder ready versions=%s fastavro_only=%s jit_s=%.2f", ",".join(self.plans),
                 ",".join(v for v in versions if v not in self.plans) or "-", self.jit_s)

    def _link(self) -> None:
        """Concatenate the plans into one program, relocating jump targets."""
        programs, fields, jumps = [], [], []
        self.schema_names = tuple(plan.name for plan in self.plans.values())
        self.schema_ids = np.array([schema_id(v) for v in self.plans], dtype=np.int64)
        entries, pc, fc, jc = [], 0, 0, 0
        for plan in self.plans.values():
            prog = plan.program.copy()
            op = prog[:, 0]
            prog[op == OP_JUMP, 1] += pc
            prog[(op == OP_ARRAY) | (op == OP_ARRAY_END), 2] += pc
            prog[op == OP_UNION, 2] += jc
            prog[op == OP_FIELDS, 2] += fc
            programs.append(prog)
            fields.append(plan.fields)
            jumps.append(plan.jumps + pc)
            entries.append(pc)
            pc += len(prog)
            jc += len(plan.jumps)
            fc += len(plan.fields)
        self.program = np.concatenate(programs) if programs else np.zeros((1, 5), dtype=np.int64)
        self.fields = np.concatenate(fields) if fields else np.zeros(1, dtype=np.int64)
        self.jumps = np.concatenate(jumps) if jumps else np.zeros(1, dtype=np.int64)
        self.entries = np.array(entries, dtype=np.int64)
        self.max_depth = max((plan.max_depth for plan in self.plans.values()), default=1)
        self.min_point_bytes = min((plan.min_point_bytes for plan in self.plans.values()), default=1)
        self.band_lut = np.full(256, -1, dtype=np.int8)
        for letter, code in BAND_CODES.items():
            self.band_lut[ord(letter)] = code
        fixed = self.version is not None and self.version in self.plans
        self.fixed_plan = list(self.plans).index(self.version) if fixed else -1
        self.fixed_entry = int(self.entries[self.fixed_plan]) if fixed else -1

    def decode_batch(self, payloads: Sequence[bytes | None]) -> tuple[RubinBatch, dict[int, Exception]]:
        """Decode a batch of messages.

        Parameters
        ----------
        payloads : sequence of bytes
            Message values (None counts as empty).

        Returns
        -------
        batch : RubinBatch
            Every message's alert as columns; ``batch.alert(i)`` is what
            ``decode_rubin(payloads[i])`` returns.
        errors : dict of int to Exception
            ``batch.errors``: for each message that did not decode, what
            ``decode_rubin`` raised (a `BadPacket`, whose text names the problem).
        """
        payloads = [p if type(p) is bytes else bytes(p or b"") for p in payloads]
        batch = self._run(payloads)
        return batch, batch.errors

    def _run(self, payloads: list[bytes]) -> RubinBatch:
        n = len(payloads)
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
        addresses = _addresses(payloads)  # `payloads` holds the bytes alive through the kernel calls
        scratch = int(lengths.max(initial=0)) // self.min_point_bytes + 2
        reason = np.zeros(n, dtype=np.int8)
        plan_index = np.full(n, -1, dtype=np.int16)
        alert_id, source_id, object_id = (np.zeros(n, dtype=np.int64) for _ in range(3))
        object_is_ss = np.zeros(n, dtype=np.bool_)
        ra_deg, dec_deg = np.zeros(n, dtype=np.float64), np.zeros(n, dtype=np.float64)
        reliability, first_mjd_tai, n_dia_sources = (np.full(n, np.nan) for _ in range(3))
        offsets = np.zeros(n + 1, dtype=np.int64)
        columns = _empty_columns(max(n * self._points_guess, 1))
        first = 0
        while True:
            first = kernel.decode_messages(
                addresses, lengths, first, self.version is None, self.fixed_entry, self.fixed_plan,
                self.schema_ids, self.entries, self.program, self.fields, self.jumps, self.band_lut,
                self.max_depth, scratch, reason, plan_index, alert_id, source_id, object_id, object_is_ss,
                ra_deg, dec_deg, reliability, first_mjd_tai, n_dia_sources, offsets, *columns)
            if first == n:
                break
            grown = _empty_columns(2 * len(columns[0]) + scratch)  # room for message `first` at least
            used = offsets[first]
            for new, old in zip(grown, columns):
                new[:used] = old[:used]
            columns = grown
        used = int(offsets[n])
        if n:  # size the next batch's output for this one's points, with a margin
            self._points_guess = max(POINTS_PER_MESSAGE_GUESS, 5 * used // (4 * n) + 1)
        columns = [c[:used] for c in columns]
        offsets, columns, dropped = _physically_checked(reason, source_id, ra_deg, dec_deg, offsets, columns)
        context = rubin_contexts(object_is_ss, reliability, first_mjd_tai, n_dia_sources)
        batch = dict(schema_index=plan_index, ok=reason == OK, alert_id=alert_id, source_id=source_id,
                     object_id=object_id, object_is_ss=object_is_ss, ra_deg=ra_deg, dec_deg=dec_deg, context=context,
                     offsets=offsets,
                     **dict(zip(RubinBatch.POINT_COLUMNS, columns)), fallback=reason, dropped_points=dropped)
        names = list(self.schema_names)
        errors, slow = {}, {}
        for i in np.flatnonzero(reason != OK).tolist():
            try:
                slow[i] = decode_rubin(payloads[i], version=self.version, registry=self.registry)
            except Exception as err:  # BadPacket; anything else is a decoder bug for the caller to log
                errors[i] = err
        if slow or errors:
            _splice(batch, slow, errors, names)
        return RubinBatch(schema_names=tuple(names), errors=errors, **batch)


def _physically_checked(reason: np.ndarray, source_id: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray,
                        offsets: np.ndarray, columns: list[np.ndarray]) -> tuple[np.ndarray, list, np.ndarray]:
    """`stream.decode.physical.checked_curve` for every message the fast path decoded, at once.

    A message whose own source or position is implausible gets reason `IMPLAUSIBLE` (in place): decode_rubin
    decodes it again, for its BadPacket text. From the others, implausible points of the history are
    dropped. Returns the new offsets, the point columns and the (B,) dropped counts.
    """
    n = len(reason)
    mjd, flux, err, is_detection = (columns[LightCurve.FIELDS.index(f)] for f in
                                 ("mjd_tai", "flux_njy", "flux_err_njy", "is_detection"))
    point_bad = implausible(mjd, flux, err)
    fast = reason == OK
    if not point_bad.any() and position_plausible(ra_deg[fast], dec_deg[fast]).all():
        return offsets, columns, np.zeros(n, dtype=np.int64)
    owner = np.repeat(np.arange(n), np.diff(offsets))
    own_bad = point_bad & is_detection & (columns[0] == source_id[owner])  # the alert's own detection
    rerouted = fast & ((np.bincount(owner[own_bad], minlength=n) > 0) | ~position_plausible(ra_deg, dec_deg))
    reason[rerouted] = IMPLAUSIBLE
    drop = point_bad & fast[owner] & ~rerouted[owner]
    dropped = np.bincount(owner[drop], minlength=n).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(np.diff(offsets) - dropped)])
    return offsets, [c[~drop] for c in columns], dropped


def _empty_columns(capacity: int) -> list[np.ndarray]:
    return [np.empty(capacity, dtype=dtype) for dtype in LightCurve.DTYPES]


def _splice(batch: dict, slow: dict[int, DecodedAlert], errors: dict[int, Exception], names: list[str]) -> None:
    """Put the alerts decode_rubin decoded into the batch's columns (in place of `batch`'s entries), and
    leave no rows to those it rejected."""
    offsets = batch["offsets"]
    old_lengths = np.diff(offsets)
    lengths = old_lengths.copy()
    lengths[list(errors)] = 0
    for i, alert in slow.items():
        lengths[i] = len(alert.light_curve)
    new_offsets = np.concatenate([[0], np.cumsum(lengths)])
    owner = np.repeat(np.arange(len(old_lengths)), old_lengths)  # message of each fast-path point
    kept = ~np.isin(owner, [*slow, *errors])  # rows of the messages the fast path decoded
    moved = np.arange(offsets[-1]) - offsets[owner] + new_offsets[owner]
    for name, lc_name in zip(RubinBatch.POINT_COLUMNS, LightCurve.FIELDS):
        column = np.empty(new_offsets[-1], dtype=batch[name].dtype)
        column[moved[kept]] = batch[name][kept]
        for i, alert in slow.items():
            column[new_offsets[i]:new_offsets[i + 1]] = getattr(alert.light_curve, lc_name)
        batch[name] = column
    batch["offsets"] = new_offsets
    for i, alert in slow.items():
        if alert.schema not in names:
            names.append(alert.schema)
        batch["schema_index"][i] = names.index(alert.schema)
        batch["ok"][i] = True
        batch["alert_id"][i] = alert.alert_id
        batch["source_id"][i] = alert.source_id
        batch["object_id"][i], batch["object_is_ss"][i] = parse_object_key(alert.object_id)
        batch["ra_deg"][i] = alert.ra_deg
        batch["dec_deg"][i] = alert.dec_deg
        batch["context"][i] = alert.context
        batch["dropped_points"][i] = alert.dropped_points
