"""Shared fixtures: every test leaves torch's process-wide state as it found it."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_global_torch_state():
    """Tests set torch.set_num_threads(1), torch.manual_seed(...) and friends; restore them
    afterwards so that no test's result depends on which tests ran before it."""
    threads = torch.get_num_threads()
    rng = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    grad = torch.is_grad_enabled()
    yield
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)  # (its first call takes seconds)
    torch.set_grad_enabled(grad)
