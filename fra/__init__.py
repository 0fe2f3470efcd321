"""Feature-Resolved Attention: attention scores resolved exactly into SAE feature pairs."""

from fra.errors import ConfigError, FRAError

__all__ = ["ConfigError", "FRAError"]
