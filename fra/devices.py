"""Where work runs (``auto`` -> CUDA when visible) and whether the Hugging Face hub can be reached."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import torch

from fra.errors import FRAError


def pick_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FRAError("device `cuda` was requested but no CUDA GPU is visible; use --device cpu")
    return device


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub answers a TCP connection within ``timeout`` seconds."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def require_hub(what: str, local_hint: str) -> None:
    """Fail fast, with the local-files alternative, when the hub cannot be reached."""
    if not hub_reachable():
        raise FRAError(f"cannot reach the Hugging Face hub to download {what}. {local_hint}")
