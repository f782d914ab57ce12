"""The ``alertformer`` command: one subcommand per job, each with ``--help``.

Each command is a module of this package holding its argparse options and a ``run(args)`` that
imports the one library function doing the work when the command runs. Only the module of the
command being run is imported, so ``alertformer run`` loads no training or bench code
(tests/unit/test_cli.py checks).
"""
import argparse
import importlib
import logging
import sys

from models.errors import AlertformerError
from stream.errors import Fatal

from alertformer import __version__

# Command -> its module in this package, in the order `alertformer --help` lists them.
COMMANDS = {
    "replay": "replay", "decode": "decode", "run": "run", "monitor": "monitor", "subscribe": "subscribe",
    "models": "models", "simulate": "simulate", "train": "train", "evaluate": "evaluate",
    "evaluate-diff": "evaluate_diff", "trainer": "trainer",
    "bench": "bench", "show": "show", "health": "health", "bench-decode": "bench_decode",
    "bench-simulate": "bench_simulate", "bench-gpu": "bench_gpu", "bench-forward": "bench_forward", "web": "web",
    "bench-web": "bench_web",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, given the `command` about to run, of that one only."""
    parser = argparse.ArgumentParser(prog="alertformer", description="Real-time transformer scoring of astronomical alert streams.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"alertformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [command] if command in COMMANDS else COMMANDS:
        importlib.import_module(f"alertformer.cli.{COMMANDS[name]}").add_parser(sub)
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
    except AlertformerError as err:
        print(f"alertformer {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
