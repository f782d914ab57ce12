"""The ``alertformer`` command: one subcommand per job, each with ``--help``."""
import argparse
import importlib
import json
import logging
import sys
import uuid

from models.checkpoint import CheckpointMismatch
from models.registry import RegistryError
from stream.config import add_config_argument
from stream.errors import AlertformerError, Fatal

from alertformer import __version__

log = logging.getLogger("alertformer")

# The commands defined in other modules, by the module whose ``add_parser`` registers them: only the
# module of the command being run is imported (``alertformer run`` loads no training code).
COMMAND_MODULES = {
    "monitor": "stream.monitor", "subscribe": "stream.subscribe", "models": "stream.models_cli",
    "simulate": "training.simulate_cli", "train": "training.train", "evaluate": "training.evaluate",
    "trainer": "training.refit_service", "bench": "bench", "show": "stream.show",
}


def cmd_replay(args) -> int:
    from stream.config import load_config
    from stream.kafka_io import check_readable, make_producer
    from stream.replay import load_packets, replay

    config = load_config(args.config)
    packets = load_packets(args.sources, rubin_schema_version=args.rubin_schema_version)
    topic = args.topic or config.input_subscription()[0]  # into the input cluster: the alert topics are there
    kafka = config.input_kafka().as_kafka()
    role, _ = config.roles()
    check_readable(kafka, [("--topic" if args.topic else config.input_topics_field(), topic)], role,
                   "input.kafka" if config.two_clusters else "kafka")
    report = replay(make_producer(kafka), topic, packets, count=args.count, rate_per_s=args.rate,
                    visit_size=args.visit_size, visit_interval_s=args.visit_interval_s, progress=not args.quiet)
    print(json.dumps(report))
    return 0 if report["failed"] == 0 else 1


def decode_batch(ingest, messages, send_dead_letters: bool, write) -> list:
    """`write` one JSON line per message of a batch: each alert's summary, or why it does not decode.

    Returns the dead-letter outputs to produce: none unless `send_dead_letters`, because
    ``alertformer run`` dead-letters the same messages of the topics it scores.
    """
    from stream import avro_io

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
    from stream.config import load_config
    from stream.decode.registry import registry_schemas
    from stream.ingest import Ingest
    from stream.kafka_io import check_cluster, check_input, input_label, make_consumer, make_producer
    from stream.loop import TransactionalLoop, sequential
    from stream.positions import stored_positions

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


def cmd_run(args) -> int:
    from stream.config import load_config
    from stream.service import ScoringService

    overrides = {}
    if args.checkpoint or args.instance_id:
        overrides["scoring"] = {k: v for k, v in (("checkpoint", args.checkpoint), ("instance_id", args.instance_id)) if v}
    config = load_config(args.config)
    if overrides:
        config = config.model_copy(update={"scoring": config.scoring.model_copy(update=overrides["scoring"])})
    service = ScoringService(config)
    service.loop.install_signal_handlers()
    stats = service.run(max_messages=args.max_messages, idle_timeout_s=args.idle_timeout_s)
    log.info("stopped messages_in=%d messages_out=%d batches=%d aborts=%d",
             stats.messages_in, stats.messages_out, stats.batches, stats.aborts)
    print(json.dumps(service.summary.as_dict()))  # what this process committed
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, given the `command` about to run, of that one and the built-in ones."""
    parser = argparse.ArgumentParser(prog="alertformer", description="Real-time transformer scoring of astronomical alert streams.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"alertformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("replay", help="produce alert packets from files into a topic at a chosen rate",
                       description="Produce alert packets (Avro container files such as ZTF's, the Rubin sample "
                                   "Parquet re-encoded in the Confluent wire format, directories of packets) into a "
                                   "topic, keyed by object id.")
    add_config_argument(p)
    p.add_argument("sources", nargs="+", help="files or directories of alert packets")
    p.add_argument("--topic", help="target topic (default: the first input topic of the config)")
    p.add_argument("--rate", type=float, default=0.0, help="alerts/s; 0 = as fast as possible (default)")
    p.add_argument("--count", type=int, help="messages to send, cycling through the sources (default: each once)")
    p.add_argument("--visit-size", type=int, default=0,
                   help="LSST-like bursts: send this many alerts as fast as possible every --visit-interval-s")
    p.add_argument("--visit-interval-s", type=float, default=30.0, help="seconds between bursts (default 30)")
    p.add_argument("--rubin-schema-version", help="Rubin schema version for Parquet sources, e.g. 10.0 "
                   "(default: the lsst_schema_version column)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("decode", help="consume the input topics, decode alerts, print one JSON line per message",
                       description="Consume the configured input topics as a consumer-group member, decode every alert "
                                   "and print one JSON line per message: the alert's summary, or why it does not "
                                   "decode. Undecodable messages are not sent to the dead-letter topic again (alertformer "
                                   "run does that for the topics it scores) unless --dead-letter is given.")
    add_config_argument(p)
    p.add_argument("--dead-letter", action="store_true",
                   help="also produce undecodable messages to the dead-letter topic, in the transaction of the "
                        "consumer offsets (for input topics no scorer reads)")
    p.add_argument("--group", help="consumer group id (default: a new one, reading from the start)")
    p.add_argument("--max-messages", type=int, help="stop after this many messages")
    p.add_argument("--idle-timeout-s", type=float, help="stop after this many seconds without messages")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("run", help="the scoring service: consume alerts, score them, publish exactly once",
                       description="Join the consumer group, and per batch: decode (bad messages to the dead-letter "
                                   "topic), window each alert with the object's stored history, score the batch in "
                                   "one forward pass, produce scored alerts, ELAsTiCC2 classifications and follow-up "
                                   "requests in one Kafka transaction with the consumer offsets, then update Redis. "
                                   "SIGTERM finishes the batch, commits and leaves the group. On stopping, prints "
                                   "what it committed as one JSON line: alerts scored, dead letters, follow-up "
                                   "requests, scored alerts by top class.")
    add_config_argument(p)
    p.add_argument("--checkpoint", help="model checkpoint (default: scoring.checkpoint, then the shipped model)")
    p.add_argument("--instance-id", help="stable id of this process (default: scoring.instance_id, then the host name)")
    p.add_argument("--max-messages", type=int, help="stop after this many messages")
    p.add_argument("--idle-timeout-s", type=float, help="stop after this many seconds without messages")
    p.set_defaults(func=cmd_run)

    modules = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else (
        [] if command in sub.choices else COMMAND_MODULES.values())
    for module in modules:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The global options take no value, so the first other word is the command.
    command = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except Fatal as err:
        print(f"alertformer {args.command}: fatal: {err}", file=sys.stderr)
        return 3
    except (AlertformerError, RegistryError, CheckpointMismatch) as err:
        print(f"alertformer {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
