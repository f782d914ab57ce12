"""``alertformer decode``: a diagnostic that consumes the input topics and prints what each message decodes to.

Undecodable messages are dead-lettered only when asked, since ``alertformer run`` does that already.
"""
import json
import sys
import uuid

from stream import avro_io
from stream.config import load_config
from stream.decode.registry import registry_schemas
from stream.ingest import Ingest
from stream.kafka_io import check_cluster, check_input, input_label, make_consumer, make_producer
from stream.loop import TransactionalLoop, sequential
from stream.positions import stored_positions


def decode_batch(ingest, messages, send_dead_letters: bool, write) -> list:
    """`write` one JSON line per message of a batch: each alert's summary, or why it does not decode.

    Returns the dead-letter outputs to produce: none unless `send_dead_letters`, because
    ``alertformer run`` dead-letters the same messages of the topics it scores.
    """
    good, dead = ingest(messages)
    for item in good:
        lc = item.alert.light_curve
        write(json.dumps({
            "objectId": item.alert.object_id, "alertId": item.alert.alert_id, "survey": item.alert.survey,
            "topic": item.topic, "partition": item.partition, "offset": item.offset,
            "n_points": len(lc), "n_detections": int(lc.is_detection.sum()),
            "last_mjd_tai": float(lc.mjd_tai[-1]) if len(lc) else None,
            "last_flux_njy": float(lc.flux_njy[-1]) if len(lc) else None,
        }))
    for out in dead:
        _, record = avro_io.decode(out.value)
        write(json.dumps({"undecodable": record["reason"], "errorType": record["errorType"], "topic": record["topic"],
                          "partition": record["partition"], "offset": record["offset"],
                          "dead_lettered": send_dead_letters}))
    return dead if send_dead_letters else []


def cmd_decode(args) -> int:
    """``alertformer decode``: consume the input topics as a group member and `decode_batch` each batch."""
    config = load_config(args.config)
    input_kafka, output_kafka = config.input_kafka(), config.output_kafka()
    ingest = Ingest(config.topics.inputs, config.topics.deadletter, input_kafka.max_input_message_bytes,
                    output_kafka.deadletter_max_payload_bytes, registry_schemas(config))

    def process(messages):
        return decode_batch(ingest, messages, args.dead_letter, lambda line: print(line, flush=True))

    _, output_role = config.roles()
    check_input(config)
    topics = config.topics
    check_cluster(output_kafka, {"deadletter": topics.deadletter} | (
        {"input_offsets": topics.input_offsets} if config.two_clusters else {}), compacted=("input_offsets",),
        role=output_role, section=config.output_section())
    group = args.group or f"alertformer-decode-{uuid.uuid4().hex[:8]}"
    transactional_id = f"{group}-{uuid.uuid4()}"
    loop = TransactionalLoop(make_consumer(input_kafka, group), make_producer(output_kafka, transactional_id),
                             config.input_subscription(), sequential(process), dead_letter=ingest.dead,
                             positions=stored_positions(config, transactional_id, group) if config.two_clusters
                             else None, input_label=input_label(config, group))
    loop.install_signal_handlers()
    stats = loop.run(max_messages=args.max_messages, idle_timeout_s=args.idle_timeout_s)
    print(json.dumps({"messages_in": stats.messages_in, "dead_lettered": stats.messages_out,
                      "batches": stats.batches, "aborts": stats.aborts}), file=sys.stderr)
    return 0
