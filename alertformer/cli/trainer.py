"""``alertformer trainer``: the re-fine-tuning service."""
from alertformer.cli.options import add_config_argument


def add_parser(sub) -> None:
    p = sub.add_parser("trainer", help="re-fine-tune on new labels; promote only when the holdout improves",
                       description="Consume the labels topic, snapshot each labeled object's light curve, and every "
                                   "trainer.retrain_every_labels labels (or retrain_every_hours) fine-tune a challenger "
                                   "from the champion (full or LoRA), evaluate both on a fixed holdout, and promote the "
                                   "challenger only if it wins by trainer.margin on trainer.metric. Needs registry.path.")
    add_config_argument(p)
    p.add_argument("--max-rounds", type=int, help="stop after this many retraining decisions")
    p.add_argument("--timeout-s", type=float, help="stop after this many seconds")
    p.set_defaults(func=run)


def run(args) -> int:
    from training.refit_service import cmd_trainer

    return cmd_trainer(args)
