import pytest


@pytest.fixture(autouse=True)
def hub_online(monkeypatch):
    """Other tests run LeRobot with HF_HUB_OFFLINE=1; huggingface_hub reads it once at import, so undo both."""
    import huggingface_hub.constants as c

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
