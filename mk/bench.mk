.PHONY: bench
bench: ## Run every benchmark in bench/ (results go to bench/RESULTS.md by hand)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
