"""What the Rubin and ZTF batch decoders share: linking plans, handing the kernel the payloads, growing
its output, the physical checks, and putting fastavro's alerts back into the columns."""
import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.lightcurve import LightCurve
from models.lightcurves import LightCurves
from stream.alert import AlertBatch, DecodedAlert
from stream.decode.fast.plan import IMPLAUSIBLE, OP_ARRAY, OP_ARRAY_END, OP_FIELDS, OP_JUMP, OP_UNION, Plan
from stream.decode.physical import implausible, position_plausible

# CPython keeps a bytes object's data at a fixed offset from its address (the last
# member of PyBytesObject); the kernel reads messages there, without copying them
# into one buffer (which, for 100 kB alerts with cutouts, cost more than decoding).
_BYTES_DATA_OFFSET = bytes.__basicsize__ - 1


def _bytes_layout_known() -> bool:
    probe = b"alertformer"
    return ctypes.string_at(id(probe) + _BYTES_DATA_OFFSET, len(probe)) == probe


_BYTES_LAYOUT_KNOWN = _bytes_layout_known()


def as_bytes(payloads: Sequence[bytes | None]) -> list[bytes]:
    """The payloads as `bytes` objects (None and other buffers converted; None counts as empty)."""
    return [p if type(p) is bytes else bytes(p or b"") for p in payloads]


def located(payloads: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(B,) int64 length and address of each payload's bytes; the payloads must stay alive while they are used."""
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
    if _BYTES_LAYOUT_KNOWN:
        return lengths, np.fromiter(map(id, payloads), dtype=np.int64, count=len(payloads)) + _BYTES_DATA_OFFSET
    return lengths, np.array([np.frombuffer(p, dtype=np.uint8).__array_interface__["data"][0] if p else 0
                              for p in payloads], dtype=np.int64)


@dataclass(frozen=True)
class Linked:
    """Plans concatenated into one program (jump targets relocated); plan j starts at ``entries[j]``."""

    program: np.ndarray
    fields: np.ndarray
    jumps: np.ndarray
    entries: np.ndarray
    max_depth: int
    min_point_bytes: int


def link(plans: Sequence[Plan]) -> Linked:
    """The plans as one program for the kernel."""
    programs, fields, jumps, entries = [], [], [], []
    pc = fc = jc = 0
    for plan in plans:
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
    return Linked(
        np.concatenate(programs) if programs else np.zeros((1, 5), dtype=np.int64),
        np.concatenate(fields) if fields else np.zeros(1, dtype=np.int64),
        np.concatenate(jumps) if jumps else np.zeros(1, dtype=np.int64),
        np.array(entries, dtype=np.int64),
        max((plan.max_depth for plan in plans), default=1),
        min((plan.min_point_bytes for plan in plans), default=1))


def run_growing(decode: Callable[[int, list[np.ndarray]], int], dtypes: Sequence, n: int, capacity: int,
                scratch: int, offsets: np.ndarray) -> list[np.ndarray]:
    """Run a kernel over messages ``0..n`` with point outputs of `dtypes`, growing them when it runs out of room.

    `decode(first, columns)` decodes from message `first` and returns where it stopped (n when done); message
    i's points are then ``columns[offsets[i]:offsets[i + 1]]``, and `scratch` bounds one message's points.
    Returns the columns cut to the points written.
    """
    columns = [np.empty(max(capacity, 1), dtype=dtype) for dtype in dtypes]
    first = 0
    while True:
        first = decode(first, columns)
        if first == n:
            return [c[:offsets[n]] for c in columns]
        used = offsets[first]
        grown = [np.empty(2 * len(c) + scratch, dtype=c.dtype) for c in columns]  # room for message `first`
        for new, old in zip(grown, columns):
            new[:used] = old[:used]
        columns = grown


def physically_checked(reason: np.ndarray, source_id: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray,
                       offsets: np.ndarray, columns: list[np.ndarray]) -> tuple[np.ndarray, list, np.ndarray]:
    """`stream.decode.physical.checked_curve` for every message the fast path decoded, at once.

    `columns` are in `LightCurve.FIELDS` order; messages whose `reason` is not 0 have no rows. A
    message whose own source or position is implausible gets reason `IMPLAUSIBLE` (in place):
    fastavro decodes it again, for its BadPacket text. From the others, implausible points of the
    history are dropped. Returns the new offsets, the point columns and the (B,) dropped counts.
    """
    n = len(reason)
    mjd, flux, err, is_detection = (columns[LightCurve.FIELDS.index(f)] for f in
                                    ("mjd_tai", "flux_njy", "flux_err_njy", "is_detection"))
    point_bad = implausible(mjd, flux, err)
    fast = reason == 0
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


def redecode(batch: dict, point_columns: Sequence[str], payloads: list[bytes], reason: np.ndarray,
             decode: Callable[[bytes], DecodedAlert], names: list[str]) -> tuple[dict, dict]:
    """Decode each message whose `reason` is not 0 with `decode` (the survey's fastavro decoder) and put
    its alert into the columns of `batch`, or its error into the returned errors; schema names it
    brings are added to `names`. Returns ``(alerts, errors)`` by message index; the survey's own
    columns (object ids) are the caller's to fill from the alerts.
    """
    errors, slow = {}, {}
    for i in np.flatnonzero(reason != 0).tolist():
        try:
            slow[i] = decode(payloads[i])
        except Exception as err:  # BadPacket; anything else is a decoder bug for the caller to log
            errors[i] = err
    if slow or errors:
        _splice(batch, point_columns, slow, errors, names)
    return slow, errors


def _splice(batch: dict, point_columns: Sequence[str], slow: dict[int, DecodedAlert], errors: dict[int, Exception],
            names: list[str]) -> None:
    """Put the alerts fastavro decoded into the batch's columns (in place of `batch`'s entries), and
    leave no rows to those it rejected; the survey's own columns (object ids) are the caller's."""
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
    for name, lc_name in zip(point_columns, LightCurve.FIELDS):
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
        batch["ra_deg"][i] = alert.ra_deg
        batch["dec_deg"][i] = alert.dec_deg
        batch["context"][i] = alert.context
        batch["dropped_points"][i] = alert.dropped_points


def with_curves(batch: dict, point_columns: Sequence[str]) -> dict:
    """`batch` (the decoders' working dict) with its ``offsets`` and `point_columns` (in `LightCurve.FIELDS`
    order) replaced by one `LightCurves`, ids the alert ids."""
    columns = [batch.pop(name) for name in point_columns]
    return batch | {"curves": LightCurves(offsets=batch.pop("offsets"), ids=batch["alert_id"],
                                          **dict(zip(LightCurves.FIELDS, columns)))}


@dataclass(frozen=True, kw_only=True)
class AlertColumns:
    """The columns every batch decoder gives (`RubinBatch`, `ZtfBatch` describe them); message i's light
    curve is ``curves[i]`` (no points where it did not decode)."""

    schema_names: tuple[str, ...]
    schema_index: np.ndarray
    ok: np.ndarray
    alert_id: np.ndarray
    source_id: np.ndarray
    object_id: np.ndarray
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    context: np.ndarray
    curves: LightCurves
    fallback: np.ndarray
    dropped_points: np.ndarray
    errors: dict[int, Exception] = field(default_factory=dict)

    POINT_COLUMNS = ("point_source_id", "mjd_tai", "band", "flux_njy", "flux_err_njy", "is_detection")
    SURVEY = ""  # DecodedAlert.survey

    def object_key(self, i: int) -> str:
        """Message `i`'s object id as `DecodedAlert.object_id` (text)."""
        raise NotImplementedError

    def object_keys(self) -> list[str]:
        """`object_key` of every message."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ok)

    def light_curve(self, i: int) -> LightCurve:
        """Message `i`'s curve: views of the point columns, no copy (empty if it did not decode)."""
        return self.curves[i]

    def alert(self, i: int) -> DecodedAlert:
        """Message `i` as the survey's fastavro decoder returns it; raises its error if it did not decode."""
        if not self.ok[i]:
            raise self.errors[i]
        return DecodedAlert(self.SURVEY, self.schema_names[self.schema_index[i]], int(self.alert_id[i]),
                            int(self.source_id[i]), self.object_key(i), float(self.ra_deg[i]), float(self.dec_deg[i]),
                            self.light_curve(i), self.context[i].copy(), int(self.dropped_points[i]))

    def alerts(self) -> list[DecodedAlert | None]:
        """One `DecodedAlert` per message, in order; None where it did not decode (see `errors`).

        Same as `alert` for each message, with the per-message columns turned
        into Python numbers once for the batch.
        """
        names, columns = self.schema_names, [getattr(self.curves, name) for name in LightCurves.FIELDS]
        offsets = self.curves.offsets.tolist()
        alerts = []
        for i, (ok, schema, alert_id, source_id, object_id, ra_deg, dec_deg, dropped) in enumerate(zip(
                *(column.tolist() for column in (self.ok, self.schema_index, self.alert_id, self.source_id)),
                self.object_keys(), *(column.tolist() for column in (self.ra_deg, self.dec_deg,
                                                                     self.dropped_points)))):
            if not ok:
                alerts.append(None)
                continue
            a, b = offsets[i], offsets[i + 1]
            alerts.append(DecodedAlert(self.SURVEY, names[schema], alert_id, source_id, object_id, ra_deg, dec_deg,
                                       LightCurve(*(column[a:b] for column in columns)), self.context[i].copy(),
                                       dropped))
        return alerts

    def decoded(self) -> tuple[AlertBatch, np.ndarray]:
        """The messages that decoded, as an `AlertBatch` (no per-alert object), and their (K,) indices."""
        index = np.flatnonzero(self.ok)
        names = np.array(self.schema_names + ("",), dtype=object)  # "" keeps the array 1-d when there is no name
        object_id = np.empty(len(index), dtype=object)
        object_id[:] = self.object_keys() if len(index) == len(self) else [self.object_key(i) for i in index]
        return AlertBatch(
            survey=np.full(len(index), self.SURVEY, dtype=object), schema=names[self.schema_index[index]],
            alert_id=self.alert_id[index], source_id=self.source_id[index], object_id=object_id,
            ra_deg=self.ra_deg[index], dec_deg=self.dec_deg[index], context=self.context[index],
            dropped_points=self.dropped_points[index],
            curves=self.curves if len(index) == len(self) else self.curves.take(index)), index
