import torch

from fra.repro import deterministic


def test_deterministic_sets_and_restores_the_flag():
    assert not torch.are_deterministic_algorithms_enabled() and torch.utils.deterministic.fill_uninitialized_memory
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled() and not torch.utils.deterministic.fill_uninitialized_memory
    assert not torch.are_deterministic_algorithms_enabled() and torch.utils.deterministic.fill_uninitialized_memory

    @deterministic()
    def inside() -> bool:
        return torch.are_deterministic_algorithms_enabled()

    assert inside() and not torch.are_deterministic_algorithms_enabled()
