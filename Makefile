# The two commands of the README, and their parts.
PYTHON ?= python3
export PYTHON

.PHONY: install demo test up down
install:
	deploy/install.sh

demo: install
	deploy/demo.sh

test: install
	$(PYTHON) -m pytest -q

up: install
	deploy/stack.sh up

down:
	deploy/stack.sh down
