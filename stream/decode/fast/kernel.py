"""The compiled part: run skip plans over a batch of messages, write the light curves into flat arrays.

Everything here is ``@njit(cache=True, nogil=True)``: the first process on a
machine compiles it (about 15 s) and caches the machine code next to this
file in ``__pycache__``; later processes load it (about 0.5 s).

Reading untrusted bytes: every read checks the bounds of its message first,
varints stop after 10 bytes, lengths are checked against what is left, array
loops consume at least one byte per item (the compiler refuses items that can
take none) and union/enum indices are checked against the schema. A message
that fails any check gets a nonzero reason (`plan.REASONS`) and no points; it
never reads outside its own bytes and never loops without consuming them.

Costs: helpers on the hot path are inlined (a call passing arrays costs
reference counting), and nothing is allocated per message: scratch arrays are
made once per batch.
"""
import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from stream.decode.fast.plan import (
    BAD_BAND, BAD_BLOCK, BAD_HEADER, BAD_INDEX, BAD_LENGTH, BAD_NULL, BAD_OBJECT, BAD_TIMESTAMP, BAD_TRAILING,
    BAD_TRUNCATED, BAD_UTF8, BAD_VALUE, BAD_VARINT, DETECTION, F_DEC, F_ERR, F_FIRST_MJD, F_FLUX, F_MJD, F_RA,
    F_RELIABILITY, FORCED, K_BYTES,
    K_FIXED, K_READ_BAND, K_READ_DOUBLE, K_READ_FLOAT, K_READ_LONG, K_READ_TEXT, K_VARINT, N_POINT_FLOAT, N_POINT_INT,
    N_REGISTERS, NULLABLE, OK, OP_ARRAY, OP_ARRAY_END, OP_BAD, OP_END, OP_ENUM, OP_FIELDS, OP_JUMP,
    OP_NULL_FLOAT, OP_NULL_INT, OP_POINT_BEGIN, OP_POINT_END, OP_TIMESTAMP, OP_UNION, R_ALERT_ID, R_BAND, R_ID,
    R_N_DIA_SOURCES, R_OBJECT, R_SS_OBJECT, R_VISIT, TRIGGER,
)

WIRE_HEADER_BYTES = 5  # magic byte 0, big-endian 32-bit schema id
_INT64_MIN = np.int64(-9223372036854775808)
_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)
_HASH_MULTIPLIER = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15, Fibonacci hashing
_SMALL_SORT = 16  # runs shorter than this are insertion-sorted

# Raw point columns: a point's integer registers in one (3, S) int64 array, its floats in one (3, S) float64.
S_ID, S_VISIT, S_BAND = R_ID, R_VISIT, R_BAND
S_MJD, S_FLUX, S_ERR = F_MJD, F_FLUX, F_ERR
# Bits of a raw point's null mask (`_parse`): which of its registers were null (or absent).
_NULL_VISIT = 1 << R_VISIT


def pointer_to(element):
    """An intrinsic giving the ``element *`` at an integer address."""
    @intrinsic
    def pointer(typingctx, address):
        if not isinstance(address, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return types.CPointer(element)(address), codegen

    return pointer


_pointer = pointer_to(types.uint8)  # each message is read where Python keeps its bytes, uncopied


@njit(cache=True, nogil=True, inline="always")
def _varint(buf, pos, end):
    """Zig-zag varint at `pos` as fastavro's read_long decodes it: (value, next pos), next pos < 0 on error.

    -1: the bytes end first; -2: longer than 10 bytes (fastavro's result is
    then a C shift beyond 64 bits, so leave it to fastavro).
    """
    n = np.int64(0)
    shift = 0
    while True:
        if pos >= end:
            return np.int64(0), -1
        b = np.int64(buf[pos])
        pos += 1
        if shift < 63:
            n |= (b & 0x7F) << shift
        elif shift == 63:
            if b & 1:  # fastavro: (b & 0x7F) << 63 in unsigned 64 bits keeps only the low bit
                n |= _INT64_MIN
        else:
            return np.int64(0), -2
        if b & 0x80 == 0:
            break
        shift += 7
    return ((n >> 1) & _LOW63) ^ -(n & 1), pos


@njit(cache=True, nogil=True, inline="always")
def _varint_error(pos):
    return BAD_TRUNCATED if pos == -1 else BAD_VARINT


@njit(cache=True, nogil=True)
def _utf8_tail_ok(buf, pos, end):
    """Whether ``buf[pos:end]`` is UTF-8 that Python's strict decoder accepts (no surrogates, <= U+10FFFF)."""
    while pos < end:
        b = buf[pos]
        if b < 0x80:
            pos += 1
            continue
        if 0xC2 <= b <= 0xDF:
            n = 1
        elif 0xE0 <= b <= 0xEF:
            n = 2
        elif 0xF0 <= b <= 0xF4:
            n = 3
        else:
            return False
        if pos + n >= end:  # the sequence runs past the string
            return False
        lo, hi = 0x80, 0xBF  # range of the second byte
        if b == 0xE0:
            lo = 0xA0
        elif b == 0xED:
            hi = 0x9F
        elif b == 0xF0:
            lo = 0x90
        elif b == 0xF4:
            hi = 0x8F
        c = buf[pos + 1]
        if c < lo or c > hi:
            return False
        for k in range(2, n + 1):
            c = buf[pos + k]
            if c < 0x80 or c > 0xBF:
                return False
        pos += n + 1
    return True


@njit(cache=True, nogil=True, inline="always")
def _utf8_ok(buf, pos, end):
    """`_utf8_tail_ok`, with the all-ASCII case inline."""
    for k in range(pos, end):
        if buf[k] >= 0x80:
            return _utf8_tail_ok(buf, k, end)
    return True


@njit(cache=True, nogil=True, inline="always")
def _length(buf, pos, end):
    """Length prefix of a string or bytes: (length, next pos); next pos < 0 is a reason code, negated."""
    size, pos = _varint(buf, pos, end)
    if pos < 0:
        return 0, -_varint_error(pos)
    if size < 0:
        return 0, -BAD_LENGTH
    if size > end - pos:
        return 0, -BAD_TRUNCATED
    return size, pos


@njit(cache=True, nogil=True, inline="always")
def _fields(buf, pos, end, fields, first, count, band_lut, ireg, ipresent, freg, fpresent, word, word_f64,
            word_f32):
    """Skip or read the fields whose codes are ``fields[first:first + count]``: next pos, or a negated reason."""
    for t in range(first, first + count):
        code = fields[t]
        kind = code & 15
        arg = code >> 8
        if code & NULLABLE:
            if pos >= end:
                return -BAD_TRUNCATED
            index = buf[pos]  # union index 0 or 1: one zig-zag byte, 0 or 2; anything else is out of range
            pos += 1
            branch = (code >> 4) & 1  # the value's index
            if index != 2 * branch:
                if index != 2 - 2 * branch:
                    return -BAD_INDEX
                if kind == K_READ_DOUBLE or kind == K_READ_FLOAT:  # null
                    fpresent[arg] = False
                elif kind == K_READ_LONG or kind == K_READ_BAND or kind == K_READ_TEXT:
                    ipresent[arg] = False
                continue
        if kind == K_FIXED:
            pos += arg
            if pos > end:
                return -BAD_TRUNCATED
        elif kind == K_VARINT:
            for k in range(10):
                if pos >= end:
                    return -BAD_TRUNCATED
                pos += 1
                if buf[pos - 1] < 0x80:
                    break
                if k == 9:
                    return -BAD_VARINT
        elif kind == K_READ_DOUBLE or kind == K_READ_FLOAT:
            size = 8 if kind == K_READ_DOUBLE else 4
            if pos + size > end:
                return -BAD_TRUNCATED
            for k in range(size):  # via a word whose float views exist once: a slice per read costs more
                word[k] = buf[pos + k]
            freg[arg] = word_f64[0] if size == 8 else word_f32[0]
            fpresent[arg] = True
            pos += size
        elif kind == K_READ_LONG:
            value, pos = _varint(buf, pos, end)
            if pos < 0:
                return -_varint_error(pos)
            ireg[arg] = value
            ipresent[arg] = True
        else:  # string, bytes, band, text
            n, pos = _length(buf, pos, end)
            if pos < 0:
                return pos
            if kind != K_BYTES and not _utf8_ok(buf, pos, pos + n):
                return -BAD_UTF8
            if kind == K_READ_BAND:
                ireg[arg] = band_lut[buf[pos]] if n == 1 else -1  # the code of a band letter, or -1
                ipresent[arg] = True
            elif kind == K_READ_TEXT:  # where the string's bytes are, and how many
                ireg[arg] = pos
                ireg[arg + 1] = n
                ipresent[arg] = True
            pos += n
    return pos


@njit(cache=True, nogil=True)
def _parse(buf, pos, end, pc, prog, fields, jumps, band_lut, ireg, ipresent, freg, fpresent, depth_left,
           word, word_f64, word_f32, s_int, s_float, s_kind, s_null):
    """Run a plan from instruction `pc` over ``buf[pos:end]``: (reason, number of raw points).

    A point's registers are the first ``len(s_int)`` integer and ``len(s_float)`` float registers; its
    null mask has bit r for integer register r and bit ``len(s_int) + r`` for float register r.
    """
    n_raw = 0
    n_int, n_float, cap = s_int.shape[0], s_float.shape[0], s_int.shape[1]
    while True:
        op = prog[pc, 0]
        a = prog[pc, 1]
        if op == OP_FIELDS:
            pos = _fields(buf, pos, end, fields, prog[pc, 2], a, band_lut, ireg, ipresent, freg, fpresent, word,
                          word_f64, word_f32)
            if pos < 0:
                return -pos, n_raw
            pc += 1
        elif op == OP_POINT_BEGIN:
            for r in range(n_int):
                ipresent[r] = False
            for r in range(n_float):
                fpresent[r] = False
            pc += 1
        elif op == OP_POINT_END:
            if n_raw >= cap:  # cannot happen: the scratch holds every record the bytes can carry
                return BAD_TRUNCATED, n_raw
            null = 0
            for r in range(n_int):
                s_int[r, n_raw] = ireg[r]
                null |= 0 if ipresent[r] else 1 << r
            for r in range(n_float):
                s_float[r, n_raw] = freg[r]
                null |= 0 if fpresent[r] else 1 << (n_int + r)
            s_kind[n_raw] = a
            s_null[n_raw] = null
            n_raw += 1
            pc += 1
        elif op == OP_ARRAY or op == OP_ARRAY_END:
            if op == OP_ARRAY_END:
                depth_left[a] -= 1
                if depth_left[a] > 0:
                    pc = prog[pc, 2]
                    continue
            count, pos = _varint(buf, pos, end)  # the (next) block's item count
            if pos < 0:
                return _varint_error(pos), n_raw
            if count < 0:  # a negative count is followed by the block's size in bytes, unused
                if count == _INT64_MIN:
                    return BAD_BLOCK, n_raw
                count = -count
                _, pos = _varint(buf, pos, end)
                if pos < 0:
                    return _varint_error(pos), n_raw
            if count == 0:  # end of the array
                pc = prog[pc, 2] if op == OP_ARRAY else pc + 1
            else:
                depth_left[a] = count
                pc = pc + 1 if op == OP_ARRAY else prog[pc, 2]
        elif op == OP_UNION:
            index, pos = _varint(buf, pos, end)
            if pos < 0:
                return _varint_error(pos), n_raw
            if index < 0 or index >= a:
                return BAD_INDEX, n_raw
            pc = jumps[prog[pc, 2] + index]
        elif op == OP_JUMP:
            pc = a
        elif op == OP_NULL_INT:
            ipresent[a] = False
            pc += 1
        elif op == OP_NULL_FLOAT:
            fpresent[a] = False
            pc += 1
        elif op == OP_TIMESTAMP:
            value, pos = _varint(buf, pos, end)
            if pos < 0:
                return _varint_error(pos), n_raw
            if value < a or value > prog[pc, 2]:
                return BAD_TIMESTAMP, n_raw
            pc += 1
        elif op == OP_ENUM:
            index, pos = _varint(buf, pos, end)
            if pos < 0:
                return _varint_error(pos), n_raw
            if index < 0 or index >= a:
                return BAD_INDEX, n_raw
            pc += 1
        elif op == OP_END:
            if pos != end:
                return BAD_TRAILING, n_raw
            return OK, n_raw
        elif op == OP_BAD:
            return a, n_raw
        else:  # a plan bug; never for a compiled plan
            return BAD_HEADER, n_raw


@njit(cache=True, nogil=True, inline="always")
def _finite32(x):
    return np.isfinite(x) and np.isfinite(np.float32(x))


@njit(cache=True, nogil=True, inline="always")
def _point_ok(null, band, mjd, flux, err):
    """decode_rubin's checks of one kept point: nothing null, a known band, finite values, error > 0.

    LightCurve keeps flux and error as float32, so both widths are checked.
    """
    if null != 0:
        return BAD_NULL
    if band < 0:
        return BAD_BAND
    if not (np.isfinite(mjd) and _finite32(flux) and _finite32(err) and err > 0 and np.float32(err) > 0):
        return BAD_VALUE
    return OK


@njit(cache=True, nogil=True, inline="always")
def _find(table, stamp, generation, key):
    """Slot of `key` in an open-addressing set (slots whose stamp is `generation` are in use), or the
    free slot where it would go; and whether it is there."""
    mask = len(table) - 1
    slot = ((key * _HASH_MULTIPLIER) >> 20) & mask
    while stamp[slot] == generation:
        if table[slot] == key:
            return slot, True
        slot = (slot + 1) & mask
    return slot, False


@njit(cache=True, nogil=True, inline="always")
def _insert(table, stamp, generation, key):
    """Add `key` to the set: False if it was present."""
    slot, found = _find(table, stamp, generation, key)
    if found:
        return False
    stamp[slot] = generation
    table[slot] = key
    return True


@njit(cache=True, nogil=True, inline="always")
def _contains(table, stamp, generation, key):
    return _find(table, stamp, generation, key)[1]


@njit(cache=True, nogil=True)
def _sort_by(index, n, key, tmp):
    """Stable sort of ``index[:n]`` by ``key[index]``: insertion-sorted runs, then merged bottom-up.

    A packet's points come in few sorted runs (the trigger, the previous
    detections, the forced sources), so this is close to linear.
    """
    for lo in range(0, n, _SMALL_SORT):
        hi = min(lo + _SMALL_SORT, n)
        for j in range(lo + 1, hi):
            item = index[j]
            value = key[item]
            k = j - 1
            while k >= lo and key[index[k]] > value:
                index[k + 1] = index[k]
                k -= 1
            index[k + 1] = item
    width = _SMALL_SORT
    src, dst = index, tmp
    in_tmp = False
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            if mid >= hi or key[src[mid - 1]] <= key[src[mid]]:  # already in order
                for k in range(lo, hi):
                    dst[k] = src[k]
                continue
            i, j = lo, mid
            for k in range(lo, hi):
                if j >= hi or (i < mid and key[src[i]] <= key[src[j]]):
                    dst[k] = src[i]
                    i += 1
                else:
                    dst[k] = src[j]
                    j += 1
        src, dst = dst, src
        in_tmp = not in_tmp
        width *= 2
    if in_tmp:
        for k in range(n):
            index[k] = tmp[k]


@njit(cache=True, nogil=True)
def _finish(n_raw, s_int, s_float, s_kind, s_null, order, tmp, table, stamp, generation,
            out_id, out_mjd, out_band, out_flux, out_err, out_det, used):
    """decode_rubin's light curve from one message's raw points: (reason, points written at `used`).

    The trigger, then the previous detections, then the forced points whose
    visit no detection has, each checked; repeated source ids keep the first
    (np.unique's first index); then a stable sort by time. `table`/`stamp` is
    a hash set of at least 2 * n_raw slots, reused with a new `generation`
    for the visits and then the ids.
    """
    n = 0
    for kind in (TRIGGER, DETECTION, FORCED):  # decode_rubin's concatenation order
        for k in range(n_raw):
            if s_kind[k] == kind:
                order[n] = k
                n += 1
    n_det = 0
    for j in range(n):
        k = order[j]
        if s_kind[k] == FORCED:
            break
        reason = _point_ok(s_null[k], s_int[S_BAND, k], s_float[S_MJD, k], s_float[S_FLUX, k], s_float[S_ERR, k])
        if reason != OK:
            return reason, 0
        _insert(table, stamp, generation, s_int[S_VISIT, k])
        n_det += 1
    kept = n_det
    for j in range(n_det, n):
        k = order[j]
        if s_null[k] & _NULL_VISIT:
            return BAD_NULL, 0
        if _contains(table, stamp, generation, s_int[S_VISIT, k]):
            continue  # forced photometry of a detection's visit: dropped unchecked
        reason = _point_ok(s_null[k], s_int[S_BAND, k], s_float[S_MJD, k], s_float[S_FLUX, k], s_float[S_ERR, k])
        if reason != OK:
            return reason, 0
        order[kept] = k
        kept += 1
    unique = 0
    for j in range(kept):
        k = order[j]
        if _insert(table, stamp, generation + 1, s_int[S_ID, k]):
            order[unique] = k
            unique += 1
    _sort_by(order, unique, s_float[S_MJD], tmp)
    for j in range(unique):
        k = order[j]
        out_id[used + j] = s_int[S_ID, k]
        out_mjd[used + j] = s_float[S_MJD, k]
        out_band[used + j] = s_int[S_BAND, k]
        out_flux[used + j] = np.float32(s_float[S_FLUX, k])
        out_err[used + j] = np.float32(s_float[S_ERR, k])
        out_det[used + j] = s_kind[k] != FORCED
    return OK, unique


@njit(cache=True, nogil=True, inline="always")
def _alert_fields_ok(ireg, ipresent, freg, fpresent):
    """decode_rubin's checks of the alert: an id, an object id, a finite position."""
    if not ipresent[R_ALERT_ID]:
        return BAD_NULL
    if not ((ipresent[R_OBJECT] and ireg[R_OBJECT] != 0) or (ipresent[R_SS_OBJECT] and ireg[R_SS_OBJECT] != 0)):
        return BAD_OBJECT
    if not (fpresent[F_RA] and fpresent[F_DEC]):
        return BAD_NULL
    if not (np.isfinite(freg[F_RA]) and np.isfinite(freg[F_DEC])):
        return BAD_VALUE
    return OK


@njit(cache=True, nogil=True)
def scratch(n_int, n_float, n_point_int, n_point_float, max_depth, scratch_points):
    """A decode loop's working arrays, made once per batch.

    Integer and float registers with their presence flags; one block counter per array depth; an
    8-byte word with its float64 and float32 views (a float is read through them); the raw points
    of one message (their first `n_point_int` / `n_point_float` registers, kind, null mask); an
    order and a merge buffer for sorting them; an open-addressing hash set (table and stamps) of at
    least ``2 * scratch_points`` slots.
    """
    word = np.zeros(8, dtype=np.uint8)  # little-endian bytes of one float or double, and their views
    slots = 1
    while slots < 2 * scratch_points:
        slots *= 2
    return (np.zeros(n_int, dtype=np.int64), np.zeros(n_float, dtype=np.float64), np.zeros(n_int, dtype=np.bool_),
            np.zeros(n_float, dtype=np.bool_), np.zeros(max(max_depth, 1), dtype=np.int64), word,
            word.view(np.float64), word[:4].view(np.float32),
            np.empty((n_point_int, scratch_points), dtype=np.int64),
            np.empty((n_point_float, scratch_points), dtype=np.float64),
            np.empty(scratch_points, dtype=np.int8), np.empty(scratch_points, dtype=np.int8),
            np.empty(scratch_points, dtype=np.int64), np.empty(scratch_points, dtype=np.int64),
            np.empty(slots, dtype=np.int64), np.zeros(slots, dtype=np.int64))


@njit(cache=True, nogil=True)
def decode_messages(addresses, lengths, first, wire, fixed_entry, fixed_plan, schema_ids, entries,
                    prog, fields, jumps, band_lut, max_depth, scratch_points,
                    reason, plan_index, alert_id, source_id, object_id, object_is_ss, ra_deg, dec_deg,
                    reliability, first_detection_mjd_tai, n_dia_sources, offsets,
                    out_id, out_mjd, out_band, out_flux, out_err, out_det):
    """Decode messages ``first..`` of a batch into the output arrays; return where it stopped.

    Parameters
    ----------
    addresses, lengths : (B,) int64
        Where message i's bytes are and how many: the caller keeps them alive
        and unchanged for the call.
    first : int
        First message to decode (a call resumes where the previous ran out of room).
    wire : bool
        Messages carry the Confluent header, whose schema id picks the plan
        (``schema_ids[j]`` -> entry ``entries[j]``, plan ``j``); else every
        message is schemaless Avro of plan `fixed_plan`, entry `fixed_entry`
        (-1: no plan).
    prog, fields, jumps : the plans, concatenated
    band_lut : (256,) int8
        Band code of each one-letter band, -1 for others.
    max_depth : int
        Array nesting of the deepest plan.
    scratch_points : int
        Most photometry records one message can carry.
    reason, plan_index, alert_id, source_id, object_id, object_is_ss, ra_deg, dec_deg : (B,) outputs
        Per message; `reason` 0 where decoded, else why not (`plan.REASONS`); `object_is_ss`
        True where `object_id` is the ssObjectId (no diaObjectId: a solar-system source).
    reliability, first_detection_mjd_tai, n_dia_sources : (B,) float64 outputs
        The context fields the packet carries (`stream.decode.rubin.rubin_context`): the
        diaSource's reliability, the diaObject's first detection (MJD TAI) and detection count;
        NaN where null or absent.
    offsets : (B + 1,) int64
        Message i's points are ``out_*[offsets[i]:offsets[i + 1]]`` (none if not decoded).
    out_id, out_mjd, out_band, out_flux, out_err, out_det : (P,) outputs
        The light curves, each sorted by time.

    Returns
    -------
    int
        The number of messages, or the first message whose points did not fit
        (grow the outputs and call again from there).
    """
    n_messages = len(addresses)
    (ireg, freg, ipresent, fpresent, depth_left, word, word_f64, word_f32, s_int, s_float, s_kind, s_null, order, tmp,
     table, stamp) = scratch(N_REGISTERS, N_REGISTERS, N_POINT_INT, N_POINT_FLOAT, max_depth, scratch_points)
    generation = 0
    capacity = len(out_id)
    used = offsets[first]
    for i in range(first, n_messages):
        end = lengths[i]
        buf = carray(_pointer(addresses[i]), end)
        pos = 0
        plan_index[i] = -1
        offsets[i + 1] = used
        if wire:
            if end < WIRE_HEADER_BYTES or buf[0] != 0:
                reason[i] = BAD_HEADER
                continue
            sid = (np.int64(buf[1]) << 24) | (np.int64(buf[2]) << 16) | (np.int64(buf[3]) << 8) | np.int64(buf[4])
            entry = -1
            for j in range(len(schema_ids)):
                if schema_ids[j] == sid:
                    entry = entries[j]
                    plan_index[i] = j
            pos = WIRE_HEADER_BYTES
        else:
            entry = fixed_entry
            plan_index[i] = fixed_plan
        if entry < 0:  # a schema id without a plan (unknown, or left to fastavro)
            reason[i] = BAD_HEADER
            continue
        for r in range(N_REGISTERS):
            ipresent[r] = False
            fpresent[r] = False
        why, n_raw = _parse(buf, pos, end, entry, prog, fields, jumps, band_lut, ireg, ipresent, freg, fpresent,
                            depth_left, word, word_f64, word_f32, s_int, s_float, s_kind, s_null)
        if why == OK:
            why = _alert_fields_ok(ireg, ipresent, freg, fpresent)
        if why == OK:
            if used + n_raw > capacity:
                return i
            generation += 2
            why, n_points = _finish(n_raw, s_int, s_float, s_kind, s_null, order, tmp, table, stamp, generation,
                                    out_id, out_mjd, out_band, out_flux, out_err, out_det, used)
            if why == OK:
                used += n_points
                offsets[i + 1] = used
                for k in range(n_raw):
                    if s_kind[k] == TRIGGER:
                        source_id[i] = s_int[S_ID, k]
                alert_id[i] = ireg[R_ALERT_ID]
                has_dia_object = ipresent[R_OBJECT] and ireg[R_OBJECT] != 0
                object_id[i] = ireg[R_OBJECT] if has_dia_object else ireg[R_SS_OBJECT]
                object_is_ss[i] = not has_dia_object
                ra_deg[i] = freg[F_RA]
                dec_deg[i] = freg[F_DEC]
                reliability[i] = freg[F_RELIABILITY] if fpresent[F_RELIABILITY] else np.nan
                first_detection_mjd_tai[i] = freg[F_FIRST_MJD] if fpresent[F_FIRST_MJD] else np.nan
                n_dia_sources[i] = np.float64(ireg[R_N_DIA_SOURCES]) if ipresent[R_N_DIA_SOURCES] else np.nan
        reason[i] = why
    return n_messages
