"""``alertformer health``: wait until Kafka and Redis answer; create the configured topics."""


def add_parser(subparsers) -> None:
    """Register ``alertformer health`` (`stream.health`; ``deploy/stack.sh`` runs it)."""
    p = subparsers.add_parser(
        "health", help="wait until Kafka (including transactions) and Redis answer; create the configured topics",
        description="Wait until Kafka and Redis answer, and create the configured topics. Kafka is ready only when a "
                    "transactional producer completes init_transactions. Exit status 1 if they do not answer "
                    "within --timeout-s.")
    p.add_argument("--config", help="TOML config file (default: $ALERTFORMER_CONFIG or built-in defaults)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides the config)")
    p.add_argument("--redis-url", help="Redis URL (overrides the config)")
    p.add_argument("--timeout-s", type=float, default=120.0, help="give up after this many seconds")
    p.add_argument("--create-topics", action="store_true", help="create the configured topics")
    p.set_defaults(func=run)


def run(args) -> int:
    from stream.health import cmd_health

    return cmd_health(args)
