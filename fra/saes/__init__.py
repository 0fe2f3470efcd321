"""SAE loading and validation (``loading``) and training wrappers around sae_lens (``training``)."""

from fra.saes.loading import attention_input_hooks, load_sae, load_saes, validate_sae

__all__ = ["attention_input_hooks", "load_sae", "load_saes", "validate_sae"]
