"""Options and argument types that several commands share."""
import argparse


def add_config_argument(parser) -> None:
    """The ``--config`` option every service command shares."""
    parser.add_argument("--config", help="TOML config file (default: $ALERTFORMER_CONFIG, then built-in defaults); "
                        "ALERTFORMER_SECTION__KEY environment variables override it")


def add_stop_arguments(parser) -> None:
    """When a consuming command stops by itself: ``--max-messages``, ``--idle-timeout-s``."""
    parser.add_argument("--max-messages", type=int, help="stop after this many messages")
    parser.add_argument("--idle-timeout-s", type=float, help="stop after this many seconds without messages")


def positive(kind):
    """An argparse type: `kind` of the text, which must be > 0."""

    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse
