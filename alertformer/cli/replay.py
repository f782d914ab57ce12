"""``alertformer replay``: produce alert packets from files into a topic."""
from alertformer.cli.options import add_config_argument


def add_parser(sub) -> None:
    """Register ``alertformer replay``."""
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
    p.set_defaults(func=run)


def run(args) -> int:
    from stream.replay import cmd_replay

    return cmd_replay(args)
