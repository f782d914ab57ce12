"""``alertformer subscribe``: an output topic's records as JSON lines, filtered."""
from alertformer.cli.options import add_config_argument
from stream.subscribe import DEFAULT_MIN_PROB, SCHEMAS


def add_parser(subparsers) -> None:
    """Register ``alertformer subscribe``."""
    p = subparsers.add_parser(
        "subscribe", help="print scored alerts, classifications or follow-up requests as JSON lines, filtered",
        description="Read one of alertformer's output topics as a read_committed consumer (so only records of "
                    "committed transactions), decode each record, keep those that pass every filter and print "
                    "them as JSON lines. Examples: --where 'sn_likelihood>0.8' --where 'n_visits>=3'; "
                    "--kind classifications --class Ia --min-prob 0.7; --kind followup --cone 150.1,2.2,1.5.")
    add_config_argument(p)
    p.add_argument("--kind", choices=list(SCHEMAS),
                   help="record kind (default: the kind of --topic if it is a configured output topic, else scored)")
    p.add_argument("--topic", help="topic to read (default: the configured topic of --kind)")
    p.add_argument("--group", help="consumer group; it commits what it read and resumes there next time "
                   "(default: a new group each run, committing nothing)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", dest="offset_reset", action="store_const", const="earliest",
                       help="a group without committed offsets starts at the oldest record")
    start.add_argument("--latest", dest="offset_reset", action="store_const", const="latest",
                       help="a group without committed offsets starts with new records (default)")
    p.set_defaults(offset_reset="latest")
    p.add_argument("--where", action="append", default=[], metavar="COND",
                   help="FIELD OP VALUE, OP one of > >= < <= = != (repeatable, all must hold); FIELD in "
                        "snake_case or camelCase, e.g. sn_likelihood>0.8, flare_likelihood>=0.9, n_visits>=3, "
                        "survey=ztf")
    p.add_argument("--class", dest="class_text", metavar="ID|NAME",
                   help="ELAsTiCC2 class id or name in a usual spelling (2222, Ia, 'SN Ia', KN, kilonova, "
                        "'M-dwarf Flare', flare): the top class of scored "
                        "records, or a class above --min-prob in classification records")
    p.add_argument("--min-prob", type=float,
                   help=f"with --class on classification records: the probability to exceed "
                        f"(default {DEFAULT_MIN_PROB})")
    p.add_argument("--cone", metavar="RA,DEC,RADIUS_DEG", help="keep records within this cone (ICRS, degrees)")
    p.add_argument("--output", metavar="FILE", help="write the JSON lines to FILE (overwritten) instead of stdout")
    p.add_argument("--max", type=int, metavar="N", help="stop after writing N records")
    p.add_argument("--idle-timeout-s", type=float,
                   help="stop after this many seconds without a message (counted once partitions are assigned)")
    p.set_defaults(func=run)


def run(args) -> int:
    from stream.subscribe import cmd_subscribe

    return cmd_subscribe(args)
