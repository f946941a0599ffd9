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


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A frame cache folder shared by the tests of one module."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A small 'pretrained' checkpoint (`model_helpers.save_parent`) with an empty card history,
    one per module; a module that needs another card defines its own `parent`."""
    from model_helpers import save_parent

    return save_parent(tmp_path_factory.mktemp("parent"), {}, history=[])
