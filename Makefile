# make setup: .venv + ROS 2 wheels + message build (idempotent, seconds when nothing changed)
# make run:   the full pipeline on the simulated array, printing pose and error live
# make test:  the whole test suite
SHELL := /bin/bash
ENV := source scripts/env.sh

.PHONY: setup run test bench evaluate clean

setup:
	@bash scripts/setup.sh

run: setup
	@$(ENV) && echoloc bringup --monitor

test: setup
	@$(ENV) && python -m pytest -q test

bench: setup
	@$(ENV) && echoloc bench

evaluate: setup
	@$(ENV) && echoloc evaluate --method both --heading-noise-deg 1

clean:
	rm -rf build install log

# make container-check: build the container image and check it against this host (README, Container)
.PHONY: container-check
container-check:
	@bash scripts/container-check.sh
