# Moving datasets and models (README-data_upload.md).
.PHONY: upload-dataset upload-model download-dataset download-model
upload-dataset: ## Upload a dataset folder to the HF hub: make upload-dataset REPO=user/name PATH=datasets/x [DRY_RUN=1]
	@$(PY) scripts/transfer.py upload-dataset --repo $(REPO) --path $(or $(SRC),$(DATA_PATH)) $(if $(DRY_RUN),--dry-run) $(ARGS)

upload-model: ## Package (no train_state) and upload a checkpoint: make upload-model CKPT=checkpoints/... REPO=user/name
	@$(PY) scripts/transfer.py upload-model --ckpt $(CKPT) --repo $(REPO) $(if $(DRY_RUN),--dry-run) $(ARGS)

download-dataset: ## Download a dataset repo into datasets/: make download-dataset REPO=user/name
	@$(PY) scripts/transfer.py download-dataset --repo $(REPO) $(ARGS)

download-model: ## Download a model repo into checkpoints/: make download-model REPO=user/name
	@$(PY) scripts/transfer.py download-model --repo $(REPO) $(ARGS)

.PHONY: rsync
rsync: ## Copy a big folder between machines without the hub (resumable, checksummed): make rsync SRC=datasets/x/ DEST=user@host:/data/x/
	@$(PY) scripts/transfer.py rsync --src $(SRC) --dest $(DEST) $(ARGS)
