# Serving and clients.
PORT ?= 8000
DIR ?=
.PHONY: serve serve-aloha-sim serve-piper serve-flexiv aloha-sim aloha-eval aloha-demos demo
serve: ## Serve a trained checkpoint (JAX or PyTorch dir): make serve CONFIG=pi05_piper_pick_cube DIR=checkpoints/.../19999
	$(if $(DIR),,$(error usage: make serve CONFIG=<config> DIR=<checkpoint step dir> [PORT=8000]; zero-shot: make serve-piper / serve-flexiv / serve-aloha-sim))
	@$(PY) scripts/serve_policy.py --port $(PORT) $(ARGS) policy:checkpoint --policy.config=$(CONFIG) --policy.dir=$(DIR)

serve-aloha-sim: ## Serve pi0_aloha_sim for the ALOHA simulator (seed: serve_policy.py --env ALOHA_SIM)
	@$(PY) scripts/serve_policy.py --env ALOHA_SIM --port $(PORT) $(ARGS)

serve-piper: ## Serve pi05_base zero-shot for the Piper arm (seed: serve_policy.py --env PIPER)
	@$(PY) scripts/serve_policy.py --env PIPER --port $(PORT) $(ARGS)

serve-flexiv: ## Serve pi05_base zero-shot for the Flexiv arm
	@$(PY) scripts/serve_policy.py --env FLEXIV --port $(PORT) $(ARGS)
