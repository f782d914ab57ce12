"""``alertformer run``: the scoring service."""
from alertformer.cli.options import add_config_argument, add_stop_arguments, positive


def add_parser(sub) -> None:
    """Register ``alertformer run``."""
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
    p.add_argument("--processes", type=positive(int), default=1,
                   help="run this many scorer processes under one supervisor, with instance ids <id>-0 .. <id>-N-1; "
                        "it restarts a crashed one and stops all on SIGTERM (default 1: this process scores). "
                        "--max-messages applies to each")
    add_stop_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.processes > 1:
        from stream.supervisor import cmd_supervise

        return cmd_supervise(args)
    from stream.service import cmd_run

    return cmd_run(args)
