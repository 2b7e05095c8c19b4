# Real arms (add SIM=1 for the simulated arm).
.PHONY: collect-piper run-piper collect-flexiv run-flexiv piper-setup
piper-setup: ## Set a Piper's teleop role, one arm on the bus: make piper-setup ROLE=master|follower CAN=can0 [SIM=1]
	@$(if $(ROLE),,$(error ROLE is required: make piper-setup ROLE=master|follower CAN=can0))$(PY) -m robot_piper.setup --role $(ROLE) --can-name $(or $(CAN),can0) $(if $(SIM),--sim) $(ARGS)

collect-piper: ## Record teleoperated Piper episodes into datasets/ (SIM=1 for the simulated arm)
	@$(PY) -m robot_piper.collect $(if $(SIM),--sim) $(ARGS)

.PHONY: recover-dataset
recover-dataset: ## Merge the episodes a crashed collection left staged: make recover-dataset REPO=piper_lerobot_data
	@$(if $(REPO),,$(error REPO is required: make recover-dataset REPO=<repo_id>))$(PY) -m robot_common.recorder --repo-id $(REPO) $(ARGS)

CHUNK_ARGS = $(if $(CHUNKING),--chunking $(CHUNKING))
run-piper: ## Piper inference client, RTC by default (HOST=.. PORT=.. PROMPT=".." CHUNKING=rtc|naive|sync|ensemble SIM=1)
	@$(PY) -m robot_piper.run --host $${HOST:-127.0.0.1} --port $(PORT) $(if $(PROMPT),--prompt "$(PROMPT)") $(CHUNK_ARGS) $(if $(SIM),--sim) $(ARGS)

FLEXIV_PY = $(if $(SIM),$(PY),$(FLEXIV_VENV)/bin/python)
collect-flexiv: ## Record kinesthetic-teaching Flexiv episodes (SIM=1 for the simulated Rizon)
	@$(FLEXIV_PY) -m robot_flexiv.collect $(if $(SIM),--sim) $(ARGS)

.PHONY: flexiv-convert
flexiv-convert: ## Raw episodes of a robot PC without lerobot -> LeRobot dataset: make flexiv-convert REPO=flexiv_lerobot_data [ARGS="--resume"]
	@$(PY) -m robot_common.raw_episodes --repo-id $(or $(REPO),flexiv_lerobot_data) $(ARGS)

run-flexiv: ## Flexiv inference client, RTC by default: make run-flexiv MODE=pose|qpos [CHUNKING=..] [SIM=1]
	@$(FLEXIV_PY) -m robot_flexiv.run --mode $${MODE:-pose} --host $${HOST:-127.0.0.1} --port $(PORT) $(if $(PROMPT),--prompt "$(PROMPT)") $(CHUNK_ARGS) $(if $(SIM),--sim) $(ARGS)
