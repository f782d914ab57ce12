"""``alertformer web``: read-only pages over the scorers' Redis state (no database of its own).

`query` validates what a request asks for, `read` does the Redis reads, `app` serves the pages
and their JSON. The scoring process never imports this package (tests/unit/test_cli.py checks).
"""
