"""``alertformer bench-simulate``: the light-curve simulator's throughput."""


def add_parser(subparsers) -> None:
    """Register ``alertformer bench-simulate`` (`bench.simulate`)."""
    p = subparsers.add_parser(
        "bench-simulate", help="measurement: light curves and points per second of the simulator, JSON report",
        description="Throughput of the light-curve simulator: light curves and points per second (wall clock, "
                    "and per CPU second) for each survey, balanced over all classes; prints one JSON report.")
    p.add_argument("--n", type=int, default=20_000, help="light curves per survey")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--surveys", nargs="+", default=["lsst", "ztf"])
    p.set_defaults(func=run)


def run(args) -> int:
    from bench.simulate import cmd_bench_simulate

    return cmd_bench_simulate(args)
