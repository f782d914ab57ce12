"""``alertformer bench-decode``: the batch Rubin decoder against fastavro, side by side, on one core."""


def add_parser(subparsers) -> None:
    """Register ``alertformer bench-decode`` (`bench.decode`)."""
    from bench.decode import SEED

    p = subparsers.add_parser(
        "bench-decode", help="measurement: fastavro against the batch Rubin decoder, one core, JSON report",
        description="Benchmark: fastavro (decode_rubin) against FastRubinDecoder, side by side, one core, on "
                    "simulated lsst.v11_1 alerts with every field filled and on the real LSSTCam sample; prints "
                    "one JSON report of alerts/s and ratios.")
    p.add_argument("--seconds", type=float, default=3.0, help="timing per decoder and case, s")
    p.add_argument("--batch-size", type=int, default=512, help="messages per decode_batch call")
    p.add_argument("--prv", type=int, default=40, help="previous diaSources per simulated alert")
    p.add_argument("--forced", type=int, default=40, help="previous forced sources per simulated alert")
    p.add_argument("--seed", type=int, default=SEED)
    p.set_defaults(func=run)


def run(args) -> int:
    from bench.decode import cmd_bench_decode

    return cmd_bench_decode(args)
