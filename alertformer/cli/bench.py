"""``alertformer bench``: the scoring stream's throughput and latency on the real stack (`bench`)."""
import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bench`` on `subparsers` (the ``alertformer`` command's)."""
    import bench

    p = subparsers.add_parser(
        "bench", help="benchmark the scoring stream on the local Kafka + Redis: limits, pipeline, alternative",
        description=bench.__doc__.split("\n    alertformer bench")[0],
        epilog="The JSON report goes to --out (else stdout, with the table on stderr). Default run: ~4-5 minutes "
               "on 2 cores; --quick: under a minute. Exit status 1 if a pipeline run lost or duplicated a record.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench's options, on `p`."""
    from bench import SETTINGS, SURVEYS

    p.add_argument("--config", help="TOML config (default: $ALERTFORMER_CONFIG, then built-in defaults); its kafka, "
                   "redis and scoring settings are used, with fresh topics, group and Redis prefix")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides kafka.bootstrap_servers)")
    p.add_argument("--redis-url", help="Redis URL (overrides redis.url)")
    p.add_argument("--checkpoint", help="model to serve (default: scoring.checkpoint, then the shipped model, "
                   "else a random-weight model of the default architecture, same cost)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: scoring.device")
    p.add_argument("--precision", choices=("fp32", "bf16"), help="default: scoring.precision")
    p.add_argument("--out", metavar="FILE", help="write the JSON report here (the table then goes to stdout)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the report's structure in < 1 min")
    p.add_argument("--surveys", default=",".join(SURVEYS), help="comma-separated, of rubin,ztf (default both)")
    p.add_argument("--pool", type=int, help=f"distinct packets per survey, cycled (default {SETTINGS['pool']})")
    p.add_argument("--n-backlog", type=int, help="alerts of the sustained-rate backlog "
                   f"(default {SETTINGS['n_backlog']})")
    p.add_argument("--rate", type=float, help=f"steady phase, alerts/s (default {SETTINGS['rate']:g})")
    p.add_argument("--duration-s", type=float, help=f"steady phase, s (default {SETTINGS['duration_s']:g})")
    p.add_argument("--n-burst", type=int, help=f"alerts in the burst (default {SETTINGS['n_burst']})")
    p.add_argument("--skip-alternative", action="store_true", help="do not run the obvious alternative")
    p.add_argument("--alt-backlog", type=int, help="alerts of the alternative's backlog "
                   f"(default {SETTINGS['alt_backlog']})")
    p.add_argument("--alt-duration-s", type=float, help="the alternative's steady phase, s "
                   f"(default {SETTINGS['alt_duration_s']:g})")
    p.add_argument("--supernnova-model", metavar="PATH",
                   help="SuperNNova model (.pt, or a peer .pkl of `alertformer evaluate --peer-cache`) to "
                        "compare the model's light curves/s with; default: not measured")
    p.add_argument("--torch-threads", type=int, metavar="N",
                   help="torch intra-op threads of the scorer, the alternative and the forward limits (default: "
                        "scoring.torch_threads, as `alertformer run` uses; 0 = torch's default); the limits also "
                        "show the forward pass on another thread count")
    p.add_argument("--keep-topics", action="store_true", help="keep the bench's topics and Redis keys")
    p.add_argument("--seed", type=int, default=20261201, help="simulation and synthetic data seed")


def run(args) -> int:
    from bench import cmd_bench

    return cmd_bench(args)
