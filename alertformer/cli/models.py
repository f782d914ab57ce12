"""``alertformer models``: the model registry from the terminal."""
from alertformer.cli.options import add_config_argument


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="the model registry: list, show, promote, rollback, import",
                       description="Inspect and change the model registry (registry.path). promote and rollback "
                                   "announce the new champion; running scorers swap to it between two batches.")
    add_config_argument(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every version (* marks the champion), then the model a scorer started now "
                       "serves; without registry.path only the latter")
    show = actions.add_parser("show", help="one version's metadata (default: the champion)")
    show.add_argument("version", nargs="?")
    promote = actions.add_parser("promote", help="make a version champion")
    promote.add_argument("version")
    promote.add_argument("--reason", default="manual promotion")
    rollback = actions.add_parser("rollback", help="undo the latest promotion")
    rollback.add_argument("--reason", default="manual rollback")
    imp = actions.add_parser("import", help="register a checkpoint file as a new version, with the metrics it carries")
    imp.add_argument("checkpoint")
    imp.add_argument("--promote", action="store_true", help="and make it champion")
    imp.add_argument("--unless-champion", action="store_true",
                     help="import nothing if the registry has a champion already (a start-up step that may run "
                          "again, e.g. in docker compose)")
    imp.add_argument("--reason", default="imported")
    p.set_defaults(func=run)


def run(args) -> int:
    from stream.model_admin import cmd_models

    return cmd_models(args)
