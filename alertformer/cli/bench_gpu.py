"""``alertformer bench-gpu``: the short device check (`bench.gpu`; ``deploy/gpu_bench.sh`` runs it)."""
import argparse


def add_parser(subparsers) -> None:
    """Register ``alertformer bench-gpu``."""
    from bench import gpu

    p = subparsers.add_parser(
        "bench-gpu", help="measurement: the device check (model throughput per precision, the scoring loop)",
        description=gpu.__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", metavar="FILE", help=f"JSON report (default: $OUT/{gpu.REPORT_NAME} if OUT is set, "
                   "else stdout)")
    p.add_argument("--config", help="TOML config (default: $ALERTFORMER_CONFIG, then built-in defaults)")
    p.add_argument("--checkpoint", help="model (default: scoring.checkpoint, then the shipped model, else "
                   "random weights of the default architecture)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: scoring.device")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers: also run the pipeline there")
    p.add_argument("--redis-url", help="Redis URL for the pipeline (default: redis.url)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the report in seconds")
    p.add_argument("--compile", action="store_true", help="also measure the torch.compile forward pass on the CPU "
                   "(on CUDA it always is; compiling takes about a minute on a small CPU)")
    p.add_argument("--seed", type=int, default=20261201, help="simulation seed")
    p.set_defaults(func=run)


def run(args) -> int:
    from bench.gpu import cmd_bench_gpu

    return cmd_bench_gpu(args)
