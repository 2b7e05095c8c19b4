# Data, norm stats, training (JAX and PyTorch), conversion, checkpoint packaging.
CONFIG ?= debug
EXP ?= my_experiment
GPUS ?= 1
NODES ?= 1
NODE_RANK ?= 0
MASTER_ADDR ?= 127.0.0.1
MASTER_PORT ?= 29500
ARGS ?=

.PHONY: configs norm-stats convert-dataset train train-pytorch convert strip-checkpoint
configs: ## List every training config with a one-line description
	@$(PY) scripts/list_configs.py

norm-stats: ## Compute norm stats for CONFIG (fast: parquet columns only) [MAX_FRAMES=N]
	@$(PY) scripts/compute_norm_stats.py --config-name $(CONFIG) $(if $(MAX_FRAMES),--max-frames $(MAX_FRAMES)) $(ARGS)

convert-dataset: ## LeRobot v2.1 -> v3.0, locally with LeRobot's converter (staged, verified): make convert-dataset REPO=name [SRC=/path/to/v2.1]
	$(if $(REPO),,$(error usage: make convert-dataset REPO=<dataset name under datasets/> [SRC=<v2.1 dataset folder>]))
	@$(PY) scripts/convert_dataset.py --repo $(REPO) $(if $(SRC),--src $(SRC)) $(ARGS)

train: ## JAX training: make train CONFIG=pi05_piper_pick_cube EXP=my_experiment [RESUME=1|OVERWRITE=1] [DRY_RUN=1: check data, print shapes/memory, no weights]
	XLA_PYTHON_CLIENT_MEM_FRACTION=$${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9} $(PY) scripts/train.py $(CONFIG) --exp-name=$(EXP) \
	  $(if $(RESUME),--resume) $(if $(OVERWRITE),--overwrite) $(if $(DRY_RUN),--dry-run) $(ARGS)

train-pytorch: ## PyTorch DDP training: make train-pytorch CONFIG=.. EXP=.. [GPUS=8] [NODES=2 NODE_RANK=0 MASTER_ADDR=.. MASTER_PORT=..] [DRY_RUN=1]
	@if [ "$(NODES)" = 1 ] && [ "$(GPUS)" = 1 ]; then \
	  $(PY) scripts/train_pytorch.py $(CONFIG) --exp-name $(EXP) $(if $(RESUME),--resume) $(if $(OVERWRITE),--overwrite) $(if $(DRY_RUN),--dry-run) $(ARGS); \
	elif [ "$(NODES)" = 1 ]; then \
	  $(VENV)/bin/torchrun --standalone --nnodes=1 --nproc_per_node=$(GPUS) scripts/train_pytorch.py $(CONFIG) --exp-name $(EXP) $(if $(RESUME),--resume) $(if $(OVERWRITE),--overwrite) $(if $(DRY_RUN),--dry-run) $(ARGS); \
	else \
	  $(VENV)/bin/torchrun --nnodes=$(NODES) --nproc_per_node=$(GPUS) --node_rank=$(NODE_RANK) --master_addr=$(MASTER_ADDR) --master_port=$(MASTER_PORT) \
	    scripts/train_pytorch.py $(CONFIG) --exp-name $(EXP) $(if $(RESUME),--resume) $(if $(OVERWRITE),--overwrite) $(if $(DRY_RUN),--dry-run) $(ARGS); \
	fi

convert: ## JAX -> PyTorch: make convert CONFIG=pi05_piper_pick_cube CKPT=checkpoints/x/y/19999 OUT=checkpoints/x/y/19999_torch
	$(if $(and $(CKPT),$(OUT)),,$(error usage: make convert CONFIG=<config> CKPT=<checkpoint step dir> OUT=<output dir> [PRECISION=bfloat16|float32]))
	@$(PY) scripts/convert_jax_model_to_pytorch.py --config-name $(CONFIG) --checkpoint-dir $(CKPT) --output-path $(OUT) $(if $(PRECISION),--precision $(PRECISION)) $(ARGS)

strip-checkpoint: ## Make an inference package of a step dir (params+assets, no train_state): CKPT=.. [OUT=..]
	@$(PY) scripts/transfer.py package --ckpt $(CKPT) $(if $(OUT),--out $(OUT)) $(ARGS)

pack-checkpoint: ## Pack a JAX step dir to ship in a repo (bf16 + zip, ~half of fp32): CONFIG=.. CKPT=.. OUT=..
	$(if $(and $(CONFIG),$(CKPT),$(OUT)),,$(error usage: make pack-checkpoint CONFIG=<config> CKPT=<step dir> OUT=<packed dir>))
	@$(PY) scripts/transfer.py pack --ckpt $(CKPT) --config-name $(CONFIG) --out $(OUT) $(ARGS)
