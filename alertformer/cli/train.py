"""``alertformer train``: the training recipe, its defaults overridden by --config and --key=value."""
import argparse

USAGE = "%(prog)s [--config FILE] [--key=value ...]"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand on an argparse ``subparsers`` object: --config, and one hidden
    --key=value option per default of the recipe (`training.recipe.DEFAULTS`)."""
    import training.recipe as recipe

    p = subparsers.add_parser(
        "train", help="run the training recipe (pretrain, fine-tune, calibrate) and save a checkpoint", usage=USAGE,
        description=recipe.__doc__.split("\n\n")[0] + "\n\nThe defaults, then --config, then --key=value overrides; "
        "unknown keys and wrong types are errors.",
        epilog="config keys and defaults (the shipped recipe; each is explained in training/recipe.py):\n"
               + "\n".join(f"  --{k}={v}  ({type(v).__name__})" for k, v in recipe.DEFAULTS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE",
                   help="Python file of plain assignments applied over the defaults, or a name in "
                        "training/config/ (e.g. smoke)")
    for key, value in recipe.DEFAULTS.items():
        p.add_argument(f"--{key}", dest=f"override_{key}", metavar=type(value).__name__.upper(),
                       default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from training.train import cmd_train

    return cmd_train(args)
