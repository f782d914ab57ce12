"""``alertformer simulate``: a simulated Rubin alert stream, as packet files or into a topic."""
import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``simulate`` subcommand on `subparsers` (from ``ArgumentParser.add_subparsers``).

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    p = subparsers.add_parser(
        "simulate", help="simulate a Rubin alert stream: packet files for replay, or straight into a topic",
        description="Simulate N LSST objects (seeded), turn every detection into the Rubin alert that would "
                    "announce it (diaSource, 12 months of prvDiaSources and prvDiaForcedSources, Confluent wire "
                    "format) and emit the alerts in time order across objects: one file per packet in --out "
                    "(replay them with 'alertformer replay DIR'), and/or produced to --topic. The labels "
                    "(object_id, class_id, class_name) of the alerted objects go to a CSV beside the packets. "
                    "Prints a JSON summary (seed, counts, seconds, alerts/s of encoding and writing).")
    p.add_argument("--n", type=int, required=True, help="number of objects to simulate")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of numpy.random.default_rng, >= 0 (default 0); it also picks the object ids, so "
                        "streams of different seeds (modulo 46,000,000) never share an object")
    p.add_argument("--survey", choices=["lsst"], default="lsst",
                   help="survey to simulate; only lsst has an alert format here (default lsst)")
    p.add_argument("--mix", choices=["realistic", "balanced"], default="realistic",
                   help="class mix: realistic (PLAsTiCC shares, SN Ia ~47%%) or balanced (equal counts); "
                        "default realistic")
    p.add_argument("--out", type=Path, help="directory for the packet files (created; must be empty)")
    p.add_argument("--labels", type=Path,
                   help="labels CSV (default: DIR_labels.csv beside --out; not inside it, or replay would "
                        "send it as a packet)")
    p.add_argument("--schema-version", help="Rubin alert schema version M.m, e.g. 10.0 (default: the latest "
                   "shipped by lsst-alert-packet)")
    p.add_argument("--start-mjd", type=float,
                   help="keep alerts from this MJD TAI on (default: the first alert); packets still carry "
                        "the history before it")
    p.add_argument("--days", type=float, help="keep alerts of this many days from --start-mjd, e.g. 0.5 for a "
                   "night (default: all)")
    p.add_argument("--topic", help="also produce the alerts to this topic (Kafka settings from --config)")
    p.add_argument("--config", help="TOML config file for --topic (default: $ALERTFORMER_CONFIG, then built-in "
                   "defaults); ALERTFORMER_SECTION__KEY environment variables override it")
    p.add_argument("--rate", type=float, default=0.0,
                   help="with --topic: alerts/s; 0 = as fast as possible (default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from training.simulate_stream import cmd_simulate

    return cmd_simulate(args)
