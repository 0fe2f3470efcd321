"""Where work runs (``auto`` -> CUDA when visible), how much memory it has free, and whether the Hugging Face
hub can be reached."""

from __future__ import annotations

import os
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


def synchronize(device: str | torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU), so that a timer reads finished work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def free_mib(device: str | torch.device) -> int:
    """MiB free for new tensors: CUDA's free memory plus what torch has cached but not allocated; on CPU the
    free physical RAM (page cache not counted)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return free >> 20


def block_budget_mib(device: str | torch.device) -> int:
    """The automatic pair-block budget (``engine.block_mib: auto``): an eighth of the free CUDA memory (a
    consumer may hold a few blocks' worth at once), a fixed 1024 MiB on CPU."""
    return max(1, free_mib(device) // 8) if torch.device(device).type == "cuda" else 1024


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
