"""`FastZtfDecoder`: a batch of ZTF alert packets (Avro container files) in, their light curves as flat arrays out.

The same alerts as `stream.decode.decode_ztf`, field for field, without a
Python object per record or point: each packet embeds its writer schema, and
each distinct schema text is compiled once, the first time it is seen, into a
skip plan (`plan`, with the ZTF fields of `_ZtfCompiler`); one compiled loop
(`ztf_kernel`) checks every container and reads, per packet, only the ~25
fields the light curve and the context need, skipping the other ~100 per
candidate and the cutouts. Fluxes (signed by isdiffpos), upper limits, MJD
(TAI, `tai`, astropy's numbers without astropy) and the checks of
`LightCurve` and `stream.decode.physical` run in numpy over the whole batch.

A packet the fast path cannot vouch for (a schema version it does not know,
a writer schema it has no plan for, corrupt bytes, a null or non-finite
value, an implausible position, ...) is decoded again by decode_ztf
(fastavro and astropy), so a bad packet gets exactly decode_ztf's `BadPacket`.
"""
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import fastavro
import numpy as np
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException

from stream.decode.fast import ztf_kernel
from stream.decode.fast.plan import DETECTION, OK, TRIGGER, Plan, Unsupported, _Compiler
from stream.decode.fast.shared import (
    AlertColumns, as_bytes, link, located, physically_checked, redecode, run_growing, with_curves,
)
from stream.decode.fast.tai import jd_utc_to_mjd_tai
from stream.decode.fast.ztf_kernel import (
    BAD_VALUE, F_CONTEXT, F_DEC, F_JD, F_LIMIT, F_MAG, F_RA, F_SIGMA, NEW_SCHEMA, OBJECT_ID_BYTES, R_ALERT_ID,
    R_CANDID, R_FID, R_NDETHIST, R_OBJECT_ID, R_SIGN, R_VERSION, RAW_CONTEXT_FIELDS,
)
from stream.decode.ztf import (
    CONTEXT_SOURCES, DIFF_SIGN, FID_CODES, JD_RANGE, UPPER_LIMIT_SNR, decode_ztf, detection_flux_njy,
    flux_njy_of_mag, ztf_contexts,
)

log = logging.getLogger(__name__)

# schemavsn values the fast path decodes: those checked against decode_ztf on real packets (3.2 and
# 3.3 from ZTF, 4.02 as Fink keeps them); a packet of any other version goes to decode_ztf.
KNOWN_VERSIONS = ("3.2", "3.3", "4.02")
MAX_WRITER_SCHEMAS = 16  # distinct schema texts remembered; packets of further ones go to decode_ztf
POINTS_PER_MESSAGE_GUESS = 48  # first sizing of a batch's output (then it follows the last batch)

# What the kernel reads, by record: field -> (role, register).
_POINT_FIELDS = {"candid": ("long", R_CANDID), "fid": ("long", R_FID), "isdiffpos": ("band", R_SIGN),
                 "jd": ("number", F_JD), "magpsf": ("number", F_MAG), "sigmapsf": ("number", F_SIGMA),
                 "diffmaglim": ("number", F_LIMIT)}
_CANDIDATE_FIELDS = {**_POINT_FIELDS, "ra": ("number", F_RA), "dec": ("number", F_DEC),
                     **{name: ("number", F_CONTEXT + c) for c, name in enumerate(RAW_CONTEXT_FIELDS[:-1])},
                     RAW_CONTEXT_FIELDS[-1]: ("long", R_NDETHIST)}
assert set(RAW_CONTEXT_FIELDS) == {"jdstarthist", *CONTEXT_SOURCES}

_FID_LUT = np.full(max(FID_CODES) + 1, -1, dtype=np.int8)
for _fid, _code in FID_CODES.items():
    _FID_LUT[_fid] = _code
_SIGN_LUT = np.full(256, -1, dtype=np.int8)  # isdiffpos (one byte) -> 1 positive, 0 negative
for _text, _sign in DIFF_SIGN.items():
    _SIGN_LUT[ord(_text)] = int(_sign > 0)
_SCHEMA_ERRORS = (Unsupported, ValueError, TypeError, KeyError, AttributeError, RecursionError,
                  SchemaParseException, SchemaResolutionError)


class _ZtfCompiler(_Compiler):
    """Compiles a ``ztf.alert`` writer schema: the alert's ids, the candidate and the previous candidates."""

    def alert(self, schema: dict) -> None:
        fields = {f["name"]: f["type"] for f in schema["fields"]}
        for needed in ("schemavsn", "objectId", "candid", "candidate"):
            if needed not in fields:
                raise Unsupported(f"no {needed} field")
        self.enter(schema)
        for name, ftype in fields.items():
            if name == "candid":
                self.scalar(ftype, "long", R_ALERT_ID, nullable=False)
            elif name in ("objectId", "schemavsn"):
                self.scalar(ftype, "text", R_OBJECT_ID if name == "objectId" else R_VERSION, nullable=False)
            elif name == "candidate":
                self.points(ftype, TRIGGER, _CANDIDATE_FIELDS, in_array=False)
            elif name == "prv_candidates":
                self.points(ftype, DETECTION, _POINT_FIELDS, in_array=True)
            else:
                self.skip(ftype)
        self.leave(schema)


def compile_ztf_plan(schema: dict) -> Plan:
    """Compile a parsed ZTF alert schema into a `Plan`; `Unsupported` for one the fast path leaves to fastavro."""
    compiler = _ZtfCompiler(schema.get("__named_schemas", {}))
    compiler.alert(schema)
    return compiler.plan(schema["name"])


@dataclass(frozen=True)
class ZtfBatch(AlertColumns):
    """The alerts of a batch of ZTF packets as columns: message i's light curve is ``curves[i]``.

    Per message, (B,): `ok`; for those that decoded, `alert_id`, `source_id`, `object_id` (str, in an
    object array), `ra_deg`/`dec_deg`, ``schema_names[schema_index]`` and `context` ((B, N_CONTEXT))
    are `DecodedAlert`'s fields. `curves` (`LightCurves`, ids the alert ids): per point `source_id` (candid,
    or the derived negative id of an upper limit), `mjd_tai` (MJD TAI), `band`, `flux_njy`/`flux_err_njy`
    (nJy, float32), `is_detection`; each message's curve is one validated `LightCurve`.

    Attributes
    ----------
    errors : dict of int to Exception
        Message index -> decode_ztf's `BadPacket`; any other exception is a decoder bug, kept for the caller.
    fallback : (B,) int8
        0 where the fast path decoded the message, else why decode_ztf did (`ztf_kernel.ZTF_REASONS`).
    dropped_points : (B,) int64
        Implausible history points left out (`DecodedAlert.dropped_points`).
    """


    SURVEY = "ztf"

    def object_key(self, i: int) -> str:
        return self.object_id[i]

    def object_keys(self) -> list[str]:
        return list(self.object_id)


class FastZtfDecoder:
    """Batch decoder of ZTF alert packets, equivalent to `decode_ztf` on each message.

    Attributes
    ----------
    plans : dict of bytes to Plan or None
        Per writer schema text seen (at most `MAX_WRITER_SCHEMAS`), its plan, or None where the
        compiler refused it (its packets go to decode_ztf).
    jit_s : float
        Seconds the first kernel call took in this process (compiling it, or loading numba's cache).

    Examples
    --------
    >>> from pathlib import Path
    >>> packet = (Path(__file__).parents[3] / "data/ztf/alerts/472263571115115000.avro").read_bytes()
    >>> batch, errors = FastZtfDecoder().decode_batch([packet, b"Obj"])
    >>> batch.ok.tolist(), batch.object_id[0], str(errors[1])
    ([True, False], 'ZTF17aaajnnn', "not an Avro object container file (starts with b'Obj')")
    """

    def __init__(self):
        self.plans: dict[bytes, Plan | None] = {}
        self.schema_names = tuple(f"ztf {v}" for v in KNOWN_VERSIONS)
        self._versions, self._version_bounds = _text_table([v.encode() for v in KNOWN_VERSIONS])
        self._points_guess = POINTS_PER_MESSAGE_GUESS
        self._link()
        started = time.perf_counter()
        self._run([])
        self.jit_s = time.perf_counter() - started
        log.info("fast ZTF decoder ready versions=%s jit_s=%.2f", ",".join(KNOWN_VERSIONS), self.jit_s)

    def _link(self) -> None:
        texts = list(self.plans)
        compiled = [plan for plan in self.plans.values() if plan is not None]
        self._linked = link(compiled)
        entries, j = [], 0
        for plan in self.plans.values():
            entries.append(-1 if plan is None else int(self._linked.entries[j]))
            j += plan is not None
        self._schema_texts, self._schema_bounds = _text_table(texts)
        self._schema_entries = np.array(entries, dtype=np.int64)

    def _learn(self, texts: set[bytes]) -> bool:
        """Compile the writer schemas `texts` (while there is room); whether any was new.

        When the table is full, a schema that did not compile (a corrupt packet's, say) learnt before this
        call gives its place up, so such packets cannot keep a later valid schema off the fast path."""
        new = False
        for text in sorted(texts):
            if text in self.plans or (len(self.plans) >= MAX_WRITER_SCHEMAS and not self._forget_failed(texts)):
                continue
            try:
                plan = compile_ztf_plan(fastavro.parse_schema(json.loads(text)))
            except _SCHEMA_ERRORS as err:
                log.warning("fast ZTF decoder: a writer schema left to fastavro reason=%s: %s", type(err).__name__, err)
                plan = None
            self.plans[text] = plan
            new = True
        if new:
            self._link()
        return new

    def _forget_failed(self, keep: set[bytes]) -> bool:
        """Forget the oldest writer schema that did not compile and is not in `keep`; whether there was one."""
        failed = next((text for text, plan in self.plans.items() if plan is None and text not in keep), None)
        if failed is not None:
            del self.plans[failed]
        return failed is not None

    def decode_batch(self, payloads: Sequence[bytes | None]) -> tuple[ZtfBatch, dict[int, Exception]]:
        """Decode a batch of messages (None counts as empty): ``batch.alert(i)`` is ``decode_ztf(payloads[i])``,
        and ``errors`` (``batch.errors``) holds what decode_ztf raised for each message that did not decode."""
        batch = self._run(as_bytes(payloads))
        return batch, batch.errors

    def _run(self, payloads: list[bytes], learn: bool = True) -> ZtfBatch:
        """The batch decode; with `learn`, new writer schemas are compiled and the batch decoded once more."""
        n = len(payloads)
        lengths, where = located(payloads)  # `payloads` holds the bytes alive through the kernel calls
        linked = self._linked
        scratch = int(lengths.max(initial=0)) // linked.min_point_bytes + 2
        reason = np.zeros(n, dtype=np.int8)
        schema_at = np.zeros((n, 2), dtype=np.int64)
        version_index = np.zeros(n, dtype=np.int16)
        alert_id, source_id = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        object_bytes = np.zeros((n, OBJECT_ID_BYTES), dtype=np.uint8)
        ra_deg, dec_deg = np.zeros(n), np.zeros(n)
        raw_context = np.full((n, len(RAW_CONTEXT_FIELDS)), np.nan)
        offsets = np.zeros(n + 1, dtype=np.int64)
        point_id, jd, fid, mag, sigma, sign, is_detection, first_of_id = run_growing(
            lambda first, columns: ztf_kernel.decode_containers(
                where, lengths, first, self._schema_texts, self._schema_bounds, self._schema_entries,
                self._versions, self._version_bounds, linked.program, linked.fields, linked.jumps, _SIGN_LUT,
                linked.max_depth, scratch, reason, schema_at, version_index, alert_id, source_id, object_bytes,
                ra_deg, dec_deg, raw_context, offsets, *columns),
            (np.int64, np.float64, np.int8, np.float64, np.float64, np.int8, np.bool_, np.bool_),
            n, n * self._points_guess, scratch, offsets)
        unseen = np.flatnonzero(reason == NEW_SCHEMA)
        if len(unseen) and learn and self._learn({payloads[i][s:s + k]
                                                  for i, (s, k) in zip(unseen, schema_at[unseen].tolist())}):
            return self._run(payloads, learn=False)
        if n:  # size the next batch's output for this one's points, with a margin
            self._points_guess = max(POINTS_PER_MESSAGE_GUESS, 5 * int(offsets[n]) // (4 * n) + 1)

        owner = np.repeat(np.arange(n), np.diff(offsets))
        flux_njy, flux_err_njy = np.zeros(len(jd)), np.empty(len(jd))
        flux_njy[is_detection], flux_err_njy[is_detection] = detection_flux_njy(
            sign[is_detection], mag[is_detection], sigma[is_detection])
        flux_err_njy[~is_detection] = flux_njy_of_mag(mag[~is_detection]) / UPPER_LIMIT_SNR
        with np.errstate(over="ignore"):  # to inf, refused below
            columns = [point_id, jd_utc_to_mjd_tai(jd), _FID_LUT[fid], flux_njy.astype(np.float32),
                       flux_err_njy.astype(np.float32), is_detection]
        # LightCurve.from_arrays's checks, on every point (repeated ids too, as decode_ztf checks them)
        bad = ~(np.isfinite(columns[1]) & np.isfinite(columns[3]) & np.isfinite(columns[4]) & (columns[4] > 0))
        reason[(reason == OK) & (np.bincount(owner[bad], minlength=n) > 0)] = BAD_VALUE
        kept = first_of_id & (reason[owner] == OK)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(owner[kept], minlength=n))])
        offsets, columns, dropped = physically_checked(reason, source_id, ra_deg, dec_deg, offsets,
                                                       [c[kept] for c in columns])

        start = raw_context[:, RAW_CONTEXT_FIELDS.index("jdstarthist")]
        known_start = (start >= JD_RANGE[0]) & (start <= JD_RANGE[1])  # False for NaN
        first_mjd_tai = np.where(known_start, jd_utc_to_mjd_tai(np.where(known_start, start, JD_RANGE[0])), np.nan)
        context = ztf_contexts({name: raw_context[:, c] for c, name in enumerate(RAW_CONTEXT_FIELDS)}, first_mjd_tai)
        object_id = np.empty(n, dtype=object)
        object_id[:] = object_bytes.view(f"S{OBJECT_ID_BYTES}")[:, 0].astype(str).tolist()
        batch = dict(schema_index=version_index, ok=reason == OK, alert_id=alert_id, source_id=source_id,
                     object_id=object_id, ra_deg=ra_deg, dec_deg=dec_deg, context=context, offsets=offsets,
                     **dict(zip(ZtfBatch.POINT_COLUMNS, columns)), fallback=reason, dropped_points=dropped)
        names = list(self.schema_names)
        slow, errors = redecode(batch, ZtfBatch.POINT_COLUMNS, payloads, reason, decode_ztf, names)
        for i, alert in slow.items():
            batch["object_id"][i] = alert.object_id
        return ZtfBatch(schema_names=tuple(names), errors=errors, **with_curves(batch, ZtfBatch.POINT_COLUMNS))


def _text_table(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings as one (T,) uint8 array, each starting at a multiple of 8 bytes (the kernel compares
    writer schemas as words) and T too, and (S, 2) int64 start/end bounds, for the kernel."""
    padded = [text + bytes(-len(text) % 8) for text in texts]
    starts = np.cumsum([0] + [len(p) for p in padded[:-1]], dtype=np.int64) if texts else np.zeros(0, np.int64)
    bounds = np.stack([starts, starts + [len(t) for t in texts]], axis=1) if texts else np.zeros((0, 2), np.int64)
    pool = np.frombuffer(b"".join(padded) or bytes(8), dtype=np.uint8).copy()
    return pool, bounds.astype(np.int64)
