# Environment: one venv (.venv, Python 3.11) for training/serving/sim/piper; .venv-flexiv (3.12) for the Flexiv client.
GPU ?= 0
APT_PACKAGES := ffmpeg libegl1 libgl1-mesa-dri libgl1 git rsync

.PHONY: setup setup-apt setup-uv setup-venv setup-flexiv lock test test-fast lint format clean
setup: setup-apt setup-uv setup-venv ## Install everything from the pinned locks (apt packages, uv, .venv, .venv-flexiv; GPU=1 adds CUDA jax)
	@$(MAKE) --no-print-directory setup-flexiv || echo "[setup] Flexiv venv skipped (see make setup-flexiv)"
	@echo "[setup] done: $(PY)"

setup-apt: ## Install the Debian packages (ffmpeg for torchcodec, EGL/Mesa for headless MuJoCo)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "[setup] apt-get install$$missing"; SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	else echo "[setup] apt packages present"; fi

setup-uv:
	@command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv

setup-venv:
	@bash scripts/setup_env.sh main $(VENV) $(GPU)

lock: setup-uv ## Regenerate requirements/lock.txt and requirements/lock-flexiv.txt (uv pip compile; then make setup)
	@bash scripts/setup_env.sh lock

setup-flexiv: ## Build .venv-flexiv (Python 3.12 + flexivrdk) for the Flexiv client, where such a Python exists
	@bash scripts/setup_env.sh flexiv $(FLEXIV_VENV) 0

PYTEST_ARGS ?=
test: ## Run the whole test suite
	@$(PY) -m pytest -q --durations=25 $(PYTEST_ARGS)

test-fast: ## Run the suite without the tests marked slow
	@$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: ## ruff check + format check
	@$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: ## ruff fix + format
	@$(PY) -m ruff check --fix . ; $(PY) -m ruff format .

clean: ## Remove caches (keeps venvs, checkpoints, datasets)
	@find . -name __pycache__ -type d -prune -exec rm -rf {} + ; rm -rf .pytest_cache .ruff_cache
