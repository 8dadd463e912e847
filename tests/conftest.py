"""Shared pytest set-up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from hypothesis import settings

# No per-example deadline: the properties check values, not speed, and on 2 shared cores
# one example slowed by other work (hypothesis' default deadline is 200 ms) would fail a
# property whose every value was right.
settings.register_profile("project", deadline=None)
settings.load_profile("project")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small tensors: intra-op threads only add stalls when the 2 CPU cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
