import torch

from fra.repro import deterministic


def test_deterministic_sets_and_restores_the_flag():
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()

    @deterministic()
    def inside() -> bool:
        return torch.are_deterministic_algorithms_enabled()

    assert inside() and not torch.are_deterministic_algorithms_enabled()
