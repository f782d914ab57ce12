"""``alertformer bench-forward``: the CPU forward pass in each runtime, side by side (`bench.forward`)."""
import argparse

from alertformer.cli.options import add_config_argument, positive


def add_parser(subparsers) -> None:
    """Register ``alertformer bench-forward``."""
    p = subparsers.add_parser(
        "bench-forward", help="measurement: the CPU forward pass in TorchScript, eager, ONNX Runtime and "
                              "torch.compile, side by side, with its GFLOP/s; JSON report",
        description="Benchmark: the model's CPU forward pass on the scorer's chunks of simulated Rubin and real "
                    "ZTF windows, in each runtime (the served TorchScript trace, eager, ONNX Runtime if installed, "
                    "torch.compile with --compile), in alternating rounds in one process; prints one JSON report "
                    "of light curves/s, ratios to the trace, probability differences and GFLOP/s.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(p)
    p.add_argument("--checkpoint", help="model (default: scoring.checkpoint, then the shipped model)")
    p.add_argument("--against", help="another checkpoint (e.g. a smaller model) whose trace is measured beside "
                                     "the served one on the same chunks")
    p.add_argument("--survey", choices=("rubin", "ztf", "both"), default="both")
    p.add_argument("--curves", type=positive(int), default=2048, help="light curves per survey")
    p.add_argument("--rounds", type=positive(int), default=3, help="timed rounds per runtime (best kept)")
    p.add_argument("--threads", type=positive(int), default=1, help="CPU threads of every runtime")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (a minute of compiling)")
    p.add_argument("--seed", type=int, default=20261205, help="simulation seed of the Rubin alerts")
    p.set_defaults(func=run)


def run(args) -> int:
    from bench.forward import cmd_bench_forward

    return cmd_bench_forward(args)
