# Shortcuts for the commands the README documents.
.PHONY: test bench bench-quick

test:
	pytest -q -n auto

bench:
	python bench/run.py

bench-quick:
	python bench/run.py --quick
