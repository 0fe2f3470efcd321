"""The errors fra raises for bad input; each message names the problem and the fix."""


class FRAError(ValueError):
    """Bad input to fra (model, SAE, text, layer, head...)."""


class ConfigError(FRAError):
    """An invalid key or value in params.yaml."""
