"""``alertformer evaluate``: the transformer beside its peers on the test sets."""
import argparse

from models.paths import SHIPPED_CHECKPOINT


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` on an ``argparse`` subparsers object."""
    from training.evaluation.run import DEFAULT_N_TEST, DEFAULT_N_TRAIN_PEERS, PEER_CHOICES, PRECISIONS
    from training.evaluation.sets import TEST_SETS

    p = subparsers.add_parser(
        "evaluate", help="score the transformer and its peers on the test sets at early prefixes; JSON + PNGs",
        description="Evaluate a checkpoint beside peer classifiers (light-curve features + gradient-boosted "
                    "trees; SuperNNova in its own virtual environment) on the same test sets: simulated LSST "
                    "(balanced and at the realistic stream mix) and the held-out real ZTF BTS test split (as "
                    "published, and in the form a ZTF packet gives the service: upper limits and context), each "
                    "at N_det = 1, 2, 3, 5, 10 and all detections and at 1, 3, 7, 14 and 30 days after the first "
                    "detection. Reports macro-F1, per-class precision/recall, confusion matrices, SN-vs-rest and "
                    "flare-vs-rest ROC-AUC and PR-AUC, ECE with reliability diagrams, and light curves/s. Writes "
                    "report.json and PNG figures to --out.",
    )
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT),
                   help="model checkpoint to evaluate (default: the shipped model, %(default)s)")
    p.add_argument("--out", default="out/eval",
                   help="output directory for report.json and figures (default: %(default)s)")
    p.add_argument("--n-test", type=int, default=DEFAULT_N_TEST,
                   help="curves per simulated test set (default: %(default)s)")
    p.add_argument("--n-train-peers", type=int, default=DEFAULT_N_TRAIN_PEERS,
                   help="simulated training curves per survey for each peer; ZTF adds the real BTS train split "
                   "(default: %(default)s)")
    p.add_argument("--peers", choices=PEER_CHOICES, default="all",
                   help="peer models to train and compare: features = light-curve features + gradient boosting, "
                        "supernnova = SuperNNova RNN (creates ~/.cache/alertformer/supernnova-venv on first use); "
                        "default: %(default)s")
    p.add_argument("--test-sets", nargs="+", choices=TEST_SETS, default=list(TEST_SETS),
                   help="test sets to use (default: all three)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of test sets, peer training sets and peers (default: %(default)s)")
    p.add_argument("--device", default="auto",
                   help="transformer device: auto (CUDA if available), cpu or cuda (default: %(default)s)")
    p.add_argument("--quantize", choices=("none", "int8"), default="none",
                   help="int8: evaluate the transformer with its linear layers dynamically quantised to int8 (CPU), "
                        "to measure what int8 would cost; not a serving option because it moved the metrics by "
                        "more than 0.5 points, see README Performance (default: %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="the transformer's scoring.precision, on the test sets and the real packets (CPU): bf16 "
                        "needs CUDA or a CPU with AMX or AVX-512 BF16 (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads of every model, so light curves/s compare per core (default: %(default)s)")
    p.add_argument("--data-dir", help="shared data directory holding labeled/ (default: "
                   "$ALERTFORMER_DATA, then the repository's data/)")
    p.add_argument("--peer-cache", help="directory to keep trained peers in and reuse them from when their "
                   "training settings match (default: retrain every run)")
    p.add_argument("--packets-only", action="store_true",
                   help="only the real ZTF alert packets of data/labeled/ztf_packets (held-out test part), scored "
                        "through the service's own decode -> window -> score -> rules path: SN-vs-non-SN ROC/PR-AUC "
                        "and ECE by N_det, and each follow-up rule's firing rate per real class")
    p.add_argument("--quick", action="store_true", help="tiny sizes everywhere, for tests (minutes -> seconds)")
    p.add_argument("--no-figures", action="store_true", help="write report.json only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from training.evaluation.run import cmd_evaluate

    return cmd_evaluate(args)
