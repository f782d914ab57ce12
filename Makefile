# The two commands of the README, and their parts.
PYTHON ?= python3
export PYTHON

.PHONY: install demo test chaos up down
install:
	deploy/install.sh

demo: install
	deploy/demo.sh

# Two pytest workers (pytest-xdist), one test file at a time each: every worker starts its own Kafka and
# Redis on free ports, and the integration tests mostly wait on the broker, so two halve the wall time.
TEST_WORKERS ?= 2
test: install
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The fault suite at the issue's counts (the default test run has reduced counts): broker kill -9 and
# restart, scorer kill -9 (20), a two-scorer rebalance, model promotions under load, oversized messages,
# a frozen Redis, a killed Redis, 12,000 fuzzed packets; one JSON line per fault in chaos-report.jsonl.
chaos: install
	CHAOS_SCALE=full CHAOS_REPORT=chaos-report.jsonl $(PYTHON) -m pytest -q -s -m slow tests/chaos --timeout=3600

up: install
	deploy/stack.sh up

down:
	@if [ -f .stack/web.pid ]; then kill "$$(cat .stack/web.pid)" 2> /dev/null || true; rm -f .stack/web.pid; fi
	deploy/stack.sh down
