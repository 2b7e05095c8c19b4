# ALOHA simulator.
aloha-sim: ## Run the ALOHA sim client against a policy server (HOST=.. PORT=..)
	@$(PY) -m aloha_sim.main --host $${HOST:-127.0.0.1} --port $(PORT) $(ARGS)

demo: ## Offline end-to-end demo on CPU: scripted demos -> norm stats -> tiny pi0.5 training -> serve -> sim episode
	@$(PY) scripts/demo.py $(ARGS)
