"""``alertformer evaluate-diff``: two evaluation reports side by side (`training.evaluation.compare`)."""
from pathlib import Path

from alertformer.cli.options import positive


def add_parser(subparsers) -> None:
    """Register ``alertformer evaluate-diff``."""
    p = subparsers.add_parser(
        "evaluate-diff", help="how far a candidate model's evaluation moved from the served one's; JSON, exit 1 "
                              "if a metric fell by more than the tolerance",
        description="Compare the transformer of two `alertformer evaluate` reports made on the same test sets "
                    "(a set only one of them holds is left out and named): "
                    "macro-F1, SN-vs-rest and flare-vs-rest PR-AUC per test set and condition, and SN-vs-non-SN "
                    "ROC-AUC and PR-AUC on the real packets, in points; which fell by more than the tolerance, and "
                    "which macro-F1 left the before report's 95%% bootstrap interval. Exit 0 if none fell by more "
                    "than the tolerance, 1 otherwise.")
    p.add_argument("before", type=Path, help="report.json of the served model")
    p.add_argument("after", type=Path, help="report.json of the candidate")
    p.add_argument("--tolerance-points", type=positive(float), default=0.5,
                   help="largest allowed fall of a metric, in points (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from training.evaluation.compare import cmd_evaluate_diff

    return cmd_evaluate_diff(args)
