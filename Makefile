# Shortcuts for the commands the README documents.
.PHONY: test lint bench bench-quick mutants

test:
	pytest -q -n 4 --dist load --maxschedchunk 2

lint:
	ruff check .
	ruff format --check .

bench:
	python bench/run.py

bench-quick:
	python bench/run.py --quick

mutants:
	python scripts/mutants.py
