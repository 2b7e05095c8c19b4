"""Moving datasets and models: Hugging Face Hub upload/download, checkpoint packaging, rsync (README-data_upload.md)."""

from openpi.transfer.hub import TransferError
from openpi.transfer.hub import download
from openpi.transfer.hub import plan_upload
from openpi.transfer.hub import upload_folder
from openpi.transfer.packaging import package_checkpoint
from openpi.transfer.packaging import strip_train_state_in_place
from openpi.transfer.packaging import verify_loadable

__all__ = [
    "TransferError",
    "download",
    "package_checkpoint",
    "plan_upload",
    "strip_train_state_in_place",
    "upload_folder",
    "verify_loadable",
]
