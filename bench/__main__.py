"""``python -m bench``: the same as ``alertformer bench``."""
import argparse
import logging
import sys

from bench import PARSER_TEXT, add_arguments, cmd_bench
from stream.errors import AlertformerError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, **PARSER_TEXT)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    try:
        return cmd_bench(args)
    except AlertformerError as err:
        print(f"python -m bench: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
