"""Fast batch decoding of Rubin alerts: only the light curve's fields, straight into numpy columns.

`FastRubinDecoder(versions).decode_batch(payloads) -> (RubinBatch, errors)`
gives, for every message, what `stream.decode.decode_rubin` gives, field for
field, without a Python object per record or point. How: `plan` compiles each
schema version into a skip plan at start-up, `kernel` (numba) runs the plans
over the whole batch, and messages the fast path cannot vouch for go to
decode_rubin (fastavro), so bad input gets decode_rubin's own `BadPacket`.
`FastZtfDecoder` does the same for ZTF's container files, against decode_ztf.
"""
from stream.decode.fast.plan import REASONS, Unsupported, compile_plan
from stream.decode.fast.rubin import FastRubinDecoder, RubinBatch
from stream.decode.fast.ztf import FastZtfDecoder, ZtfBatch

__all__ = ["FastRubinDecoder", "RubinBatch", "FastZtfDecoder", "ZtfBatch", "REASONS", "Unsupported", "compile_plan"]
