"""``alertformer subscribe``: read alertformer's output topics, filter, print JSON lines.

Three kinds of record, each on its own topic (defaults from the config's ``[topics]``):

==================  ============================================  ===============================
kind                schema                                        encoding
==================  ============================================  ===============================
``scored``          ``alertformer.scored_alert``                  single-object Avro (`avro_io`)
``classifications`` ``elasticc.v0_9_1.brokerClassification``      schemaless Avro
``followup``        ``alertformer.followup``                      single-object Avro (`avro_io`)
==================  ============================================  ===============================

Filters (all must hold) are parsed once by `build_filter`; `RecordFilter` is a
pure predicate over a decoded record, so both are testable without Kafka:

- ``--where FIELD OP VALUE`` (repeatable): OP one of ``> >= < <= = == !=``; FIELD a
  field of the kind's schema, camelCase or snake_case (``sn_likelihood>0.8``,
  ``n_visits>=3``, ``survey=ztf``). Numeric fields take numbers; string fields
  only ``=``/``!=``. A null field (e.g. ``latestMagAb``) never passes. Avro
  ``float`` fields carry float32 values: 0.85 arrives as 0.8500000238.
- ``--class ID|NAME``: scored records whose most probable class is that one;
  classification records with that class above ``--min-prob`` (default 0.5). Any
  spelling `models.taxonomy.class_id` accepts (``2222``, ``Ia``, ``SN Ia``, ``flare``).

Printed records name each class beside its id (``className``), and scored records
add their most probable class (``topClassId``, ``topClass``).
- ``--cone RA,DEC,RADIUS_DEG``: scored and follow-up records within the cone.

Timestamps of classification records (Avro ``timestamp-millis``) are printed
and compared as ms since the Unix epoch.
"""
import base64
import json
import logging
import operator
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaError
from pydantic import ValidationError

from models.taxonomy import ID_TO_NAME, NOT_CLASSIFIED_ID, RESIDUAL_ID, class_id
from stream import avro_io
from stream.config import SkyRegion, load_config
from stream.errors import BadPacket, ConfigError
from stream.kafka_io import check_readable, make_consumer
from stream.rules import in_region

log = logging.getLogger(__name__)

SCHEMAS = {
    "scored": "alertformer.scored_alert",
    "classifications": "elasticc.v0_9_1.brokerClassification",
    "followup": "alertformer.followup",
    "deadletter": "alertformer.deadletter",
}
CLASS_FIELDS = {"scored": "classProbabilities", "classifications": "classifications"}
DEFAULT_MIN_PROB = 0.5
POLL_TIMEOUT_S = 0.5  # one consumer poll; bounds how late --idle-timeout-s is noticed

_OPS = {">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq, "=": operator.eq,
        ">": operator.gt, "<": operator.lt}
_WHERE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*(>=|<=|!=|==|=|>|<)\s*(\S(?:.*\S)?)\s*$")
_NUMERIC = {"int", "long", "float", "double"}


@dataclass(frozen=True)
class Comparison:
    """``record[field] op value``; False when the field is null or absent."""

    field: str
    op: str
    value: int | float | str

    def __call__(self, record: dict) -> bool:
        value = record.get(self.field)
        return value is not None and _OPS[self.op](value, self.value)


@dataclass(frozen=True)
class RecordFilter:
    """A predicate over decoded records: every set condition must hold.

    Attributes
    ----------
    comparisons : tuple of Comparison
    class_id : int or None
        ELAsTiCC2 class id looked for in the list field `class_field`.
    class_field : str or None
        ``classProbabilities`` (scored) or ``classifications`` (classification records).
    min_prob : float or None
        None: the class must be the most probable one. Otherwise: its probability
        must exceed this.
    cone : SkyRegion or None
        Records with ``raDeg``/``decDeg`` (degrees) inside it pass.
    """

    comparisons: tuple[Comparison, ...] = ()
    class_id: int | None = None
    class_field: str | None = None
    min_prob: float | None = None
    cone: SkyRegion | None = None

    def __call__(self, record: dict) -> bool:
        return (all(c(record) for c in self.comparisons)
                and (self.class_id is None or self._has_class(record[self.class_field]))
                and (self.cone is None or bool(in_region(record["raDeg"], record["decDeg"], self.cone))))

    def _has_class(self, classes: list[dict]) -> bool:
        if self.min_prob is None:
            return bool(classes) and max(classes, key=lambda c: c["probability"])["classId"] == self.class_id
        return any(c["classId"] == self.class_id and c["probability"] > self.min_prob for c in classes)


def snake_to_camel(name: str) -> str:
    """``sn_likelihood`` → ``snLikelihood``; camelCase names are returned unchanged.

    >>> snake_to_camel("n_visits"), snake_to_camel("latestMjdTai")
    ('nVisits', 'latestMjdTai')
    """
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def _field_types(kind: str) -> dict[str, str]:
    """Each field of `kind`'s schema → ``number``, ``string`` or ``other`` (arrays, records)."""
    def simple(avro_type) -> str:
        if isinstance(avro_type, list):  # nullable X
            return simple(next(t for t in avro_type if t != "null"))
        if isinstance(avro_type, dict):  # logical types keep their base type
            avro_type = avro_type["type"]
        return "number" if avro_type in _NUMERIC else "string" if avro_type == "string" else "other"

    return {f["name"]: simple(f["type"]) for f in avro_io.load_schema(SCHEMAS[kind])["fields"]}


def parse_where(text: str, kind: str) -> Comparison:
    """Parse one ``--where`` condition for records of `kind`.

    Parameters
    ----------
    text : str
        ``FIELD OP VALUE``, e.g. ``sn_likelihood>0.8`` or ``survey = ztf``.
    kind : str
        ``scored``, ``classifications`` or ``followup``: whose fields are known.

    Raises
    ------
    ConfigError
        Naming `text` and what is wrong with it.

    >>> parse_where("n_visits>=3", "scored")
    Comparison(field='nVisits', op='>=', value=3)
    """
    match = _WHERE.match(text)
    if match is None:
        raise ConfigError(f"--where {text!r}: expected FIELD OP VALUE with OP one of {' '.join(_OPS)}, "
                          "e.g. sn_likelihood>0.8")
    name, op, value = match.groups()
    types = _field_types(kind)
    field = snake_to_camel(name)
    if field not in types:
        raise ConfigError(f"--where {text!r}: {kind} records have no field {name!r}; known: {', '.join(types)}")
    if types[field] == "number":
        try:  # integers stay int: ids beyond 2**53 would not survive a float
            return Comparison(field, op, int(value))
        except ValueError:
            pass
        try:
            return Comparison(field, op, float(value))
        except ValueError:
            raise ConfigError(f"--where {text!r}: {field} is a number, {value!r} is not") from None
    if types[field] == "string" and op in ("=", "==", "!="):
        return Comparison(field, op, value)
    raise ConfigError(f"--where {text!r}: {field} can only be compared with = or !=" if types[field] == "string"
                      else f"--where {text!r}: {field} is not a single value (use --class for class probabilities)")


def parse_class(text: str) -> int:
    """An ELAsTiCC2 class id from an id or a class name in any spelling `models.taxonomy.class_id` accepts.

    >>> parse_class("2222"), parse_class("m-dwarf flare"), parse_class("SLSN"), parse_class("SN Ia")
    (2222, 2233, 2242, 2222)
    """
    try:
        return class_id(text)
    except ValueError as err:
        raise ConfigError(f"--class {err}") from None


def parse_cone(text: str) -> SkyRegion:
    """``RA,DEC,RADIUS_DEG`` (degrees) as a `SkyRegion`.

    >>> parse_cone("359.5,-30,0.25")
    SkyRegion(ra_deg=359.5, dec_deg=-30.0, radius_deg=0.25)
    """
    try:
        ra_deg, dec_deg, radius_deg = (float(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(f"--cone {text!r}: expected RA,DEC,RADIUS_DEG, three numbers in degrees") from None
    try:
        return SkyRegion(ra_deg=ra_deg, dec_deg=dec_deg, radius_deg=radius_deg)
    except ValidationError as err:
        problems = "; ".join(f"{e['loc'][0]} {e['msg']}" for e in err.errors())
        raise ConfigError(f"--cone {text!r}: {problems}") from None


def build_filter(kind: str, where: Sequence[str] = (), class_text: str | None = None,
                 min_prob: float | None = None, cone_text: str | None = None) -> RecordFilter:
    """The `RecordFilter` of the command-line options, checked against `kind`'s schema.

    Raises
    ------
    ConfigError
        For any option that is malformed or does not apply to `kind`, naming it.
    """
    if kind not in SCHEMAS:
        raise ConfigError(f"--kind {kind!r}: expected one of {', '.join(SCHEMAS)}")
    if class_text is not None and kind not in CLASS_FIELDS:
        raise ConfigError(f"--class: {kind} records carry no class probabilities")
    if min_prob is not None and (class_text is None or kind != "classifications"):
        raise ConfigError("--min-prob applies only with --class to classification records")
    if min_prob is not None and not 0 <= min_prob < 1:
        raise ConfigError(f"--min-prob {min_prob}: expected a probability in [0, 1)")
    if cone_text is not None and kind == "classifications":
        raise ConfigError("--cone: classification records carry no position")
    return RecordFilter(
        comparisons=tuple(parse_where(w, kind) for w in where),
        class_id=None if class_text is None else parse_class(class_text),
        class_field=CLASS_FIELDS.get(kind) if class_text is not None else None,
        min_prob=(DEFAULT_MIN_PROB if min_prob is None else min_prob) if kind == "classifications" else None,
        cone=None if cone_text is None else parse_cone(cone_text),
    )


def _jsonable(value):
    """Avro ``timestamp-millis`` values (datetime) back to ms since the epoch, bytes (a dead letter's
    original message) to base64, recursively."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


# ELAsTiCC2 names of every class id a record can carry (the meta classes from taxonomy_classIds.csv).
CLASS_NAMES_BY_ID = ID_TO_NAME | {RESIDUAL_ID: "Residual", NOT_CLASSIFIED_ID: "NotClassified"}


def with_class_names(record: dict, kind: str) -> dict:
    """`record` with each class named beside its id (``className``) and, for scored records, the
    most probable class (``topClassId``, ``topClass``); records of other kinds are returned as they are.

    >>> with_class_names({"classProbabilities": [{"classId": 2222, "probability": 0.3},
    ...                                          {"classId": 2233, "probability": 0.7}]}, "scored")
    {'classProbabilities': [{'classId': 2222, 'className': 'Ia', 'probability': 0.3}, \
{'classId': 2233, 'className': 'M-dwarf Flare', 'probability': 0.7}], 'topClassId': 2233, 'topClass': 'M-dwarf Flare'}
    """
    field = CLASS_FIELDS.get(kind)
    if field is None:
        return record
    classes = [{"classId": c["classId"], "className": CLASS_NAMES_BY_ID.get(c["classId"]),
                "probability": c["probability"]} for c in record[field]]
    named = record | {field: classes}
    if kind == "scored" and classes:
        top = max(classes, key=lambda c: c["probability"])
        named |= {"topClassId": top["classId"], "topClass": top["className"]}
    return named


def record_decoder(kind: str) -> Callable[[bytes], dict]:
    """``decode(payload) -> record`` for messages of `kind`, classes named (`with_class_names`);
    raises `BadPacket` for anything else."""
    schema = SCHEMAS[kind]
    if kind == "classifications":
        return lambda payload: with_class_names(_jsonable(avro_io.decode_schemaless(schema, payload)), kind)

    def decode(payload: bytes) -> dict:
        name, record = avro_io.decode(payload)
        if name != schema:
            raise BadPacket(f"an {name} record, not {schema}")
        return with_class_names(_jsonable(record), kind)

    return decode


@dataclass
class SubscribeStats:
    """Messages read, records written (passed the filter), messages that could not be decoded."""

    read: int = 0
    written: int = 0
    undecodable: int = 0


def subscribe(consumer: Consumer, decode: Callable[[bytes], dict], keep: Callable[[dict], bool],
              write: Callable[[str], None], max_records: int | None = None,
              idle_timeout_s: float | None = None) -> SubscribeStats:
    """Poll `consumer`, decode, filter and `write` one JSON line per kept record.

    Parameters
    ----------
    consumer : Consumer
        Subscribed already, with ``enable.auto.offset.store`` off: the offset of each
        message is stored once it is written or filtered out, so a committing
        group resumes after the last message handled. (With automatic storing,
        librdkafka 2.x under read_committed was seen to commit past transaction
        markers, beyond messages not yet returned.)
    decode, keep, write
        From `record_decoder`, `build_filter`, and the output's ``write``.
    max_records : int, optional
        Stop after writing this many records.
    idle_timeout_s : float, optional
        Stop after this many seconds without a message, counted once partitions
        are assigned (joining a new group can take seconds).

    Returns
    -------
    SubscribeStats
        Also when stopped by Ctrl-C (KeyboardInterrupt), the usual way to end a live tail.

    Raises
    ------
    ConfigError
        If the topic does not exist.
    """
    stats = SubscribeStats()
    last_message_s = time.monotonic()
    try:
        while max_records is None or stats.written < max_records:
            msg = consumer.poll(POLL_TIMEOUT_S)
            if msg is None:
                if not consumer.assignment():  # still joining the group: not idle yet
                    last_message_s = time.monotonic()
                elif idle_timeout_s is not None and time.monotonic() - last_message_s >= idle_timeout_s:
                    break
                continue
            last_message_s = time.monotonic()
            if msg.error():
                if msg.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise ConfigError(f"topic {msg.topic()!r} does not exist")
                log.warning("consumer error=%s", msg.error())
                continue
            stats.read += 1
            try:
                record = decode(msg.value())
                if keep(record):
                    write(json.dumps(record) + "\n")
                    stats.written += 1
            except BadPacket as err:
                stats.undecodable += 1
                log.warning("undecodable message skipped topic=%s partition=%d offset=%d reason=%r",
                            msg.topic(), msg.partition(), msg.offset(), str(err))
            consumer.store_offsets(msg)
    except KeyboardInterrupt:
        pass
    return stats


def cmd_subscribe(args) -> int:
    config = load_config(args.config)
    topics_by_kind = {"scored": config.topics.scored, "classifications": config.topics.classifications,
                      "followup": config.topics.followup, "deadletter": config.topics.deadletter}
    kind = args.kind or next((k for k, t in topics_by_kind.items() if t == args.topic), "scored")
    topic = args.topic or topics_by_kind[kind]
    keep = build_filter(kind, args.where, args.class_text, args.min_prob, args.cone)
    _, role = config.roles()
    check_readable(config.output_kafka(), [("--topic" if args.topic else f"topics.{kind}", topic)], role,
                   config.output_section())
    try:
        out = open(args.output, "w") if args.output else sys.stdout
    except OSError as err:
        raise ConfigError(f"--output {args.output}: {err.strerror}") from None
    group = args.group or f"alertformer-subscribe-{uuid.uuid4().hex[:8]}"
    # A named group resumes where it stopped: commit what was read. A new group commits nothing.
    consumer = make_consumer(config.output_kafka(), group, **{"auto.offset.reset": args.offset_reset,
                                                     "enable.auto.commit": args.group is not None,
                                                     "enable.auto.offset.store": False})
    consumer.subscribe([topic])
    log.info("subscribed topic=%s kind=%s group=%s start=%s", topic, kind, group, args.offset_reset)

    def write(line: str) -> None:  # flushed per record, so a pipe or `tail -f` sees it at once
        out.write(line)
        out.flush()

    try:
        stats = subscribe(consumer, record_decoder(kind), keep, write, args.max, args.idle_timeout_s)
    finally:
        consumer.close()
        if args.output:
            out.close()
    log.info("stopped read=%d written=%d undecodable=%d", stats.read, stats.written, stats.undecodable)
    return 0
