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
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.lightcurve import LightCurve
from stream.decode.fast import kernel
from stream.decode.fast.plan import OK, Plan, Unsupported, compile_plan
from stream.decode.fast.shared import (
    AlertColumns, as_bytes, link, located, physically_checked, redecode, run_growing, with_curves,
)
from stream.decode.rubin import (
    BAND_CODES, decode_rubin, object_key, parse_object_key, rubin_contexts, rubin_schema, rubin_versions, schema_id,
)

log = logging.getLogger(__name__)

# Fewest points per message a batch's output is sized for; it follows the last batch
# (plus a quarter), and grows when short.
POINTS_PER_MESSAGE_GUESS = 64


@dataclass(frozen=True, kw_only=True)
class RubinBatch(AlertColumns):
    """The alerts of a batch of messages as columns: message i's light curve is ``curves[i]``.

    Per message, (B,): `ok` says whether it decoded; for those that did,
    `alert_id`, `source_id`, `object_id` (the diaObjectId, or the ssObjectId of
    a solar-system source, where `object_is_ss`; `object_key` makes the text key),
    `ra_deg`/`dec_deg`, ``schema_names[schema_index]`` and `context` ((B, N_CONTEXT)) are
    `DecodedAlert`'s fields. `curves` (`LightCurves`, ids the alert ids): per point `source_id`,
    `mjd_tai` (MJD TAI, float64), `band` (int8 code), `flux_njy`/`flux_err_njy` (nJy, float32),
    `is_detection`; each message's curve is one validated `LightCurve`, sorted by time, with
    unique source ids. A message that did not decode has no points, and its `errors` entry says why.

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

    object_is_ss: np.ndarray

    SURVEY = "rubin"

    def object_key(self, i: int) -> str:
        return object_key(int(self.object_id[i]), bool(self.object_is_ss[i]))

    def object_keys(self) -> list[str]:
        return [object_key(o, ss) for o, ss in zip(self.object_id.tolist(), self.object_is_ss.tolist())]


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
        self.schema_names = tuple(plan.name for plan in self.plans.values())
        self.schema_ids = np.array([schema_id(v) for v in self.plans], dtype=np.int64)
        linked = link(list(self.plans.values()))
        self.program, self.fields, self.jumps = linked.program, linked.fields, linked.jumps
        self.entries = linked.entries
        self.max_depth, self.min_point_bytes = linked.max_depth, linked.min_point_bytes
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
        batch = self._run(as_bytes(payloads))
        return batch, batch.errors

    def _run(self, payloads: list[bytes]) -> RubinBatch:
        n = len(payloads)
        lengths, where = located(payloads)  # `payloads` holds the bytes alive through the kernel calls
        scratch = int(lengths.max(initial=0)) // self.min_point_bytes + 2
        reason = np.zeros(n, dtype=np.int8)
        plan_index = np.full(n, -1, dtype=np.int16)
        alert_id, source_id, object_id = (np.zeros(n, dtype=np.int64) for _ in range(3))
        object_is_ss = np.zeros(n, dtype=np.bool_)
        ra_deg, dec_deg = np.zeros(n, dtype=np.float64), np.zeros(n, dtype=np.float64)
        reliability, first_mjd_tai, n_dia_sources = (np.full(n, np.nan) for _ in range(3))
        offsets = np.zeros(n + 1, dtype=np.int64)
        columns = run_growing(lambda first, columns: kernel.decode_messages(
            where, lengths, first, self.version is None, self.fixed_entry, self.fixed_plan,
            self.schema_ids, self.entries, self.program, self.fields, self.jumps, self.band_lut,
            self.max_depth, scratch, reason, plan_index, alert_id, source_id, object_id, object_is_ss,
            ra_deg, dec_deg, reliability, first_mjd_tai, n_dia_sources, offsets, *columns),
            LightCurve.DTYPES, n, n * self._points_guess, scratch, offsets)
        used = int(offsets[n])
        if n:  # size the next batch's output for this one's points, with a margin
            self._points_guess = max(POINTS_PER_MESSAGE_GUESS, 5 * used // (4 * n) + 1)
        offsets, columns, dropped = physically_checked(reason, source_id, ra_deg, dec_deg, offsets, columns)
        context = rubin_contexts(object_is_ss, reliability, first_mjd_tai, n_dia_sources)
        batch = dict(schema_index=plan_index, ok=reason == OK, alert_id=alert_id, source_id=source_id,
                     object_id=object_id, object_is_ss=object_is_ss, ra_deg=ra_deg, dec_deg=dec_deg, context=context,
                     offsets=offsets,
                     **dict(zip(RubinBatch.POINT_COLUMNS, columns)), fallback=reason, dropped_points=dropped)
        names = list(self.schema_names)
        slow, errors = redecode(batch, RubinBatch.POINT_COLUMNS, payloads, reason,
                                lambda payload: decode_rubin(payload, version=self.version, registry=self.registry),
                                names)
        for i, alert in slow.items():
            batch["object_id"][i], batch["object_is_ss"][i] = parse_object_key(alert.object_id)
        return RubinBatch(schema_names=tuple(names), errors=errors, **with_curves(batch, RubinBatch.POINT_COLUMNS))

