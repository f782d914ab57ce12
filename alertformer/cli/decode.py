"""``alertformer decode``: consume the input topics and print what each message decodes to."""
from alertformer.cli.options import add_config_argument, add_stop_arguments


def add_parser(sub) -> None:
    """Register ``alertformer decode``."""
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
    add_stop_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from stream.diagnose import cmd_decode

    return cmd_decode(args)
