"""``alertformer show``: one object's stored light curve and latest scores."""
from alertformer.cli.options import add_config_argument


def add_parser(subparsers) -> None:
    """Register ``alertformer show``."""
    p = subparsers.add_parser(
        "show", help="one object's stored light curve and latest scores: a table, and a PNG with --png",
        description="Print one object's latest scores (top class, sn_likelihood, flare_likelihood, model) and its "
                    "light curve as the scorers stored it in Redis (one row per point: MJD TAI, band, flux and "
                    "error in nJy, AB magnitude, detection or not); --png also draws it.")
    add_config_argument(p)
    p.add_argument("object_id", help="the object id, as in scored records (objectId), e.g. ZTF17aaajnnn")
    p.add_argument("--png", metavar="FILE", help="also write the light curve as a PNG figure (needs matplotlib)")
    p.set_defaults(func=run)


def run(args) -> int:
    from stream.show import cmd_show

    return cmd_show(args)
