"""The compiled part of the ZTF batch decoder: Avro container files in, each alert's raw points out.

Per message: the container header (magic, metadata, sync marker) is checked and
its writer schema matched, byte for byte, against the schemas the decoder has
plans for; the one data block must hold exactly one record and be followed by
the sync marker and nothing else; the record runs through the plan
(`kernel._parse`); then decode_ztf's checks of the points that it reads
(detections: candid, jd, fid, magpsf, sigmapsf, isdiffpos; upper limits: jd,
fid, diffmaglim). The points are written in decode_ztf's order (candidate,
previous detections, upper limits) and then stably sorted by jd, each with
whether it is the first of its id; fluxes, MJD (TAI), the float32 checks and
the physical checks are numpy's, after the kernel (`stream.decode.fast.ztf`).
Anything unexpected gives the message a nonzero reason, and fastavro decodes it.
"""
import numpy as np
from numba import carray, njit, types

from stream.decode.fast.kernel import (
    _INT64_MIN, _insert, _length, _parse, _pointer, _sort_by, _utf8_ok, _varint, pointer_to, scratch,
)
from stream.decode.fast.plan import BAD_BAND, BAD_NULL, BAD_OBJECT, BAD_VALUE, OK, REASONS, TRIGGER
from stream.decode.ztf import JD_MINUS_MJD, JD_RANGE, SECONDS_PER_DAY

# Integer registers: the point's (candid, fid, isdiffpos as 1/0, -1 if unknown), then the alert's
# (objectId and schemavsn are (offset, length) pairs).
R_CANDID, R_FID, R_SIGN, R_ALERT_ID, R_OBJECT_ID, R_OBJECT_ID_LENGTH, R_VERSION, R_VERSION_LENGTH, R_NDETHIST = range(9)
# The candidate's fields of the context, as the kernel's raw context columns: all but the last (an
# integer register) are float registers from F_CONTEXT on.
RAW_CONTEXT_FIELDS = ("jdstarthist", "drb", "rb", "sgscore1", "distpsnr1", "ssdistnr", "neargaia", "distnr", "magnr",
                      "ndethist")
N_RAW_CONTEXT = len(RAW_CONTEXT_FIELDS)
# Float registers: the point's, then the candidate's position, then its context fields.
F_JD, F_MAG, F_SIGMA, F_LIMIT, F_RA, F_DEC, F_CONTEXT = range(7)
N_INT, N_FLOAT = 9, F_CONTEXT + N_RAW_CONTEXT - 1
N_POINT_INT, N_POINT_FLOAT = 3, 4
# Null-mask bits (`kernel._parse`): integer register r is bit r, float register r bit N_POINT_INT + r.
_NULL_MAG = 1 << (N_POINT_INT + F_MAG)
_DETECTION_NEEDS = ((1 << R_CANDID) | (1 << R_FID) | (1 << R_SIGN) | (1 << (N_POINT_INT + F_JD)) | _NULL_MAG
                    | (1 << (N_POINT_INT + F_SIGMA)))
_LIMIT_NEEDS = (1 << R_FID) | (1 << (N_POINT_INT + F_JD)) | (1 << (N_POINT_INT + F_LIMIT))

OBJECT_ID_BYTES = 32  # room for an objectId (ZTF's are 12 ASCII characters); longer ones go to fastavro
SYNC_BYTES = 16
N_FIDS = 3  # fid 1, 2, 3: g, r, i

ZTF_REASONS = REASONS + (
    "not a one-record Avro container file without compression",
    "writer schema not seen before",
    "writer schema left to fastavro",
    "schema version the fast path does not know",
)
BAD_CONTAINER, NEW_SCHEMA, SCHEMA_LEFT, BAD_VERSION = range(len(REASONS), len(ZTF_REASONS))

_MAGIC = np.frombuffer(b"Obj\x01", dtype=np.uint8)
_SCHEMA_KEY = np.frombuffer(b"avro.schema", dtype=np.uint8)
_CODEC_KEY = np.frombuffer(b"avro.codec", dtype=np.uint8)
_NULL_CODEC = np.frombuffer(b"null", dtype=np.uint8)


@njit(cache=True, nogil=True, inline="always")
def _equal(buf, pos, n, text, start, end):
    """Whether ``buf[pos:pos + n]`` is ``text[start:end]``; no early exit, so that the loop vectorises
    (a writer schema is ~23 kB)."""
    if n != end - start:
        return False
    differ = 0
    for k in range(n):
        differ |= buf[pos + k] ^ text[start + k]
    return differ == 0


_words = pointer_to(types.uint64)  # x86 and ARM64 load unaligned words


@njit(cache=True, nogil=True, inline="always")
def _schema_equal(address, buf, pos, n, texts, words, start, end):
    """`_equal` for a writer schema (~23 kB in every packet), eight bytes at a time: `words` is `texts`
    as uint64, and `start` a multiple of 8."""
    if n != end - start:
        return False
    m = n // 8
    message = carray(_words(address + pos), m)
    first = start // 8
    differ = np.uint64(0)
    for k in range(m):
        differ |= message[k] ^ words[first + k]
    for k in range(8 * m, n):
        differ |= np.uint64(buf[pos + k] ^ texts[start + k])
    return differ == 0


@njit(cache=True, nogil=True)
def _container(buf, end):
    """The frame of a one-record container file: (reason, schema offset, schema length, record start, record end).

    As fastavro reads it: magic, a map of metadata (every value UTF-8, which for the schema the
    match with a known text ensures; ``avro.codec`` absent or ``null``), a 16-byte sync marker; then
    one block of one record, the sync marker again, and nothing else.
    """
    if end < 4 or not _equal(buf, 0, 4, _MAGIC, 0, 4):
        return BAD_CONTAINER, 0, 0, 0, 0
    pos, schema_pos, schema_len, codec_ok = 4, -1, 0, True
    while True:
        count, pos = _varint(buf, pos, end)
        if pos < 0 or count == _INT64_MIN:
            return BAD_CONTAINER, 0, 0, 0, 0
        if count == 0:
            break
        if count < 0:  # followed by the block's size in bytes
            count = -count
            _, pos = _varint(buf, pos, end)
            if pos < 0:
                return BAD_CONTAINER, 0, 0, 0, 0
        for _ in range(count):
            key_len, pos = _length(buf, pos, end)
            if pos < 0 or not _utf8_ok(buf, pos, pos + key_len):
                return BAD_CONTAINER, 0, 0, 0, 0
            key_pos = pos
            value_len, pos = _length(buf, pos + key_len, end)
            if pos < 0:
                return BAD_CONTAINER, 0, 0, 0, 0
            if _equal(buf, key_pos, key_len, _SCHEMA_KEY, 0, len(_SCHEMA_KEY)):
                if schema_pos >= 0:  # twice: fastavro would check the first one's UTF-8 too
                    return BAD_CONTAINER, 0, 0, 0, 0
                schema_pos, schema_len = pos, value_len  # UTF-8 if it is one of the known texts
            elif not _utf8_ok(buf, pos, pos + value_len):
                return BAD_CONTAINER, 0, 0, 0, 0
            elif _equal(buf, key_pos, key_len, _CODEC_KEY, 0, len(_CODEC_KEY)):
                codec_ok = _equal(buf, pos, value_len, _NULL_CODEC, 0, len(_NULL_CODEC))
            pos += value_len
    if schema_pos < 0 or not codec_ok or pos + SYNC_BYTES > end:
        return BAD_CONTAINER, 0, 0, 0, 0
    sync = pos
    records, pos = _varint(buf, pos + SYNC_BYTES, end)
    if pos < 0 or records != 1:
        return BAD_CONTAINER, 0, 0, 0, 0
    size, pos = _length(buf, pos, end)
    if (pos < 0 or pos + size + SYNC_BYTES != end
            or not _equal(buf, pos + size, SYNC_BYTES, buf, sync, sync + SYNC_BYTES)):
        return BAD_CONTAINER, 0, 0, 0, 0
    return OK, schema_pos, schema_len, pos, pos + size


@njit(cache=True, nogil=True, inline="always")
def _alert_ok(buf, ireg, ipresent, freg, fpresent, versions, version_bounds):
    """decode_ztf's checks of the alert's own fields: (reason, index of its schema version)."""
    if not (ipresent[R_ALERT_ID] and ipresent[R_OBJECT_ID] and ipresent[R_VERSION]):
        return BAD_NULL, -1
    start, n = ireg[R_OBJECT_ID], ireg[R_OBJECT_ID_LENGTH]
    if n > OBJECT_ID_BYTES:
        return BAD_OBJECT, -1
    for k in range(start, start + n):  # ASCII without NUL: numpy's fixed-width bytes keep it as it is
        if buf[k] == 0 or buf[k] >= 0x80:
            return BAD_OBJECT, -1
    if not (fpresent[F_RA] and fpresent[F_DEC]):
        return BAD_NULL, -1
    if not (np.isfinite(freg[F_RA]) and np.isfinite(freg[F_DEC])):
        return BAD_VALUE, -1
    for j in range(len(version_bounds)):
        if _equal(buf, ireg[R_VERSION], ireg[R_VERSION_LENGTH], versions, version_bounds[j, 0], version_bounds[j, 1]):
            return OK, j
    return BAD_VERSION, -1


@njit(cache=True, nogil=True)
def _points(n_raw, s_int, s_float, s_kind, s_null, order, tmp, ids, keep, table, stamp, generation,
            out_id, out_jd, out_fid, out_mag, out_sigma, out_sign, out_det, out_keep, used):
    """decode_ztf's points of one message from its raw points: (reason, points written at `used`, trigger candid).

    The candidate, then the previous detections (magpsf not null), then the upper limits; each
    checked as decode_ztf checks it; an upper limit's id is ``-(round(seconds of MJD at jd) * 10 + fid)``;
    each point is kept if it is the first of its id; all are written, stably sorted by jd.
    """
    n = 0
    for k in range(n_raw):
        if s_kind[k] == TRIGGER:
            order[n] = k
            n += 1
    if n != 1:  # the schema's candidate is one record
        return BAD_NULL, 0, 0
    for k in range(n_raw):
        if s_kind[k] != TRIGGER and (s_null[k] & _NULL_MAG) == 0:
            order[n] = k
            n += 1
    n_det = n
    for k in range(n_raw):
        if s_kind[k] != TRIGGER and (s_null[k] & _NULL_MAG) != 0:
            order[n] = k
            n += 1
    for j in range(n):
        k = order[j]
        jd, fid = s_float[F_JD, k], s_int[R_FID, k]
        if j < n_det:
            if s_null[k] & _DETECTION_NEEDS:
                return BAD_NULL, 0, 0
            sigma = s_float[F_SIGMA, k]
            if s_int[R_SIGN, k] < 0 or not (np.isfinite(s_float[F_MAG, k]) and np.isfinite(sigma) and sigma > 0):
                return BAD_VALUE, 0, 0
            ids[k] = s_int[R_CANDID, k]
        else:
            if s_null[k] & _LIMIT_NEEDS:
                return BAD_NULL, 0, 0
            if not np.isfinite(s_float[F_LIMIT, k]):
                return BAD_VALUE, 0, 0
        if not (JD_RANGE[0] <= jd <= JD_RANGE[1]):
            return BAD_VALUE, 0, 0
        if fid < 1 or fid > N_FIDS:
            return BAD_BAND, 0, 0
        if j >= n_det:
            ids[k] = -(np.int64(np.rint((jd - JD_MINUS_MJD) * SECONDS_PER_DAY)) * 10 + fid)
        keep[k] = _insert(table, stamp, generation, ids[k])
    trigger = ids[order[0]]
    _sort_by(order, n, s_float[F_JD], tmp)
    for j in range(n):
        k = order[j]
        detection = s_kind[k] == TRIGGER or (s_null[k] & _NULL_MAG) == 0
        out_id[used + j] = ids[k]
        out_jd[used + j] = s_float[F_JD, k]
        out_fid[used + j] = s_int[R_FID, k]
        out_mag[used + j] = s_float[F_MAG, k] if detection else s_float[F_LIMIT, k]
        out_sigma[used + j] = s_float[F_SIGMA, k] if detection else 0.0
        out_sign[used + j] = 2 * s_int[R_SIGN, k] - 1 if detection else 0
        out_det[used + j] = detection
        out_keep[used + j] = keep[k]
    return OK, n, trigger


@njit(cache=True, nogil=True)
def decode_containers(addresses, lengths, first, schema_texts, schema_bounds, schema_entries, versions,
                      version_bounds, prog, fields, jumps, sign_lut, max_depth, scratch_points,
                      reason, schema_at, version_index, alert_id, source_id, object_id, ra_deg, dec_deg, context,
                      offsets, out_id, out_jd, out_fid, out_mag, out_sigma, out_sign, out_det, out_keep):
    """Decode ZTF messages ``first..`` of a batch into the output arrays; return where it stopped.

    Parameters
    ----------
    addresses, lengths : (B,) int64
        Where message i's bytes are and how many (kept alive and unchanged by the caller).
    first : int
        First message to decode (a call resumes where the previous ran out of room).
    schema_texts, schema_bounds, schema_entries : (T,) uint8, (S, 2) int64, (S,) int64
        The writer schemas seen so far (JSON text s is ``schema_texts[bounds[s, 0]:bounds[s, 1]]``, each
        starting at a multiple of 8, T too) and each one's plan entry in `prog` (-1: left to fastavro).
    versions, version_bounds : (V,) uint8, (K, 2) int64
        The ``schemavsn`` values the fast path knows, likewise.
    prog, fields, jumps, max_depth : the linked plans
    sign_lut : (256,) int8
        isdiffpos (one byte) -> 1 (positive), 0 (negative), -1 (not a value decode_ztf knows).
    scratch_points : int
        Most points one message can carry.
    reason : (B,) int8
        0 where decoded, else why not (`ZTF_REASONS`).
    schema_at : (B, 2) int64
        Offset and length of the writer schema of each message whose reason is `NEW_SCHEMA`.
    version_index, alert_id, source_id, ra_deg, dec_deg : (B,)
        Per decoded message.
    object_id : (B, OBJECT_ID_BYTES) uint8
        The objectId, NUL-padded.
    context : (B, N_RAW_CONTEXT) float64
        The candidate's `RAW_CONTEXT_FIELDS`; NaN where null or absent.
    offsets : (B + 1,) int64
        Message i's points are ``out_*[offsets[i]:offsets[i + 1]]``.
    out_id, out_jd, out_fid, out_mag, out_sigma, out_sign, out_det, out_keep : (P,)
        Per point, sorted by jd within each message: source id, jd (UTC), fid, magpsf (detections) or
        diffmaglim (upper limits), sigmapsf (0 for limits), sign (+-1, 0 for limits), detection, first
        of its id.
    """
    n_messages = len(addresses)
    schema_words = schema_texts.view(np.uint64)
    (ireg, freg, ipresent, fpresent, depth_left, word, word_f64, word_f32, s_int, s_float, s_kind, s_null, order, tmp,
     table, stamp) = scratch(N_INT, N_FLOAT, N_POINT_INT, N_POINT_FLOAT, max_depth, scratch_points)
    ids = np.empty(scratch_points, dtype=np.int64)
    keep = np.empty(scratch_points, dtype=np.bool_)
    generation = 0
    capacity = len(out_id)
    used = offsets[first]
    for i in range(first, n_messages):
        end = lengths[i]
        buf = carray(_pointer(addresses[i]), end)
        offsets[i + 1] = used
        why, schema_pos, schema_len, pos, record_end = _container(buf, end)
        if why != OK:
            reason[i] = why
            continue
        entry, why = -1, NEW_SCHEMA
        for s in range(len(schema_entries)):
            if _schema_equal(addresses[i], buf, schema_pos, schema_len, schema_texts, schema_words,
                             schema_bounds[s, 0], schema_bounds[s, 1]):
                entry, why = schema_entries[s], OK if schema_entries[s] >= 0 else SCHEMA_LEFT
                break
        if why != OK:
            reason[i] = why
            schema_at[i, 0], schema_at[i, 1] = schema_pos, schema_len
            continue
        for r in range(N_INT):
            ipresent[r] = False
        for r in range(N_FLOAT):
            fpresent[r] = False
        why, n_raw = _parse(buf, pos, record_end, entry, prog, fields, jumps, sign_lut, ireg, ipresent, freg,
                            fpresent, depth_left, word, word_f64, word_f32, s_int, s_float, s_kind, s_null)
        version = -1
        if why == OK:
            why, version = _alert_ok(buf, ireg, ipresent, freg, fpresent, versions, version_bounds)
        if why == OK:
            if used + n_raw > capacity:
                return i
            generation += 1
            why, n_points, trigger = _points(n_raw, s_int, s_float, s_kind, s_null, order, tmp, ids, keep, table,
                                             stamp, generation, out_id, out_jd, out_fid, out_mag, out_sigma,
                                             out_sign, out_det, out_keep, used)
            if why == OK:
                used += n_points
                offsets[i + 1] = used
                version_index[i] = version
                alert_id[i] = ireg[R_ALERT_ID]
                source_id[i] = trigger
                object_id[i, :] = 0
                for k in range(ireg[R_OBJECT_ID_LENGTH]):
                    object_id[i, k] = buf[ireg[R_OBJECT_ID] + k]
                ra_deg[i] = freg[F_RA]
                dec_deg[i] = freg[F_DEC]
                for c in range(N_RAW_CONTEXT - 1):
                    r = F_CONTEXT + c
                    context[i, c] = freg[r] if fpresent[r] else np.nan
                context[i, N_RAW_CONTEXT - 1] = np.float64(ireg[R_NDETHIST]) if ipresent[R_NDETHIST] else np.nan
        reason[i] = why
    return n_messages
