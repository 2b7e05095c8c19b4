# ALOHA simulator.
aloha-sim: ## Run the ALOHA sim client against a policy server (HOST=.. PORT=..)
	@$(PY) -m aloha_sim.main --host $${HOST:-127.0.0.1} --port $(PORT) $(ARGS)

demo: ## Offline end-to-end demo on CPU: scripted demos -> norm stats -> tiny pi0.5 training -> serve -> sim episode
	@$(PY) scripts/demo.py $(ARGS)

sim-eval: ## Evaluate a served policy on N seeded gym-aloha episodes (success + 95% CI, videos, summary.json; ARGS="--num-episodes 50 --privileged --executor rtc --delay 5")
	@$(PY) -m aloha_sim.evaluate --host $${HOST:-127.0.0.1} --port $(PORT) $(ARGS)

TIER ?= privileged
sim-benchmark: ## Generate -> norm stats -> train -> serve -> evaluate the small ALOHA-sim recipe (TIER=privileged|pixels, ARGS="--rtc")
	@$(PY) scripts/sim_benchmark.py --tier $(TIER) $(ARGS)
