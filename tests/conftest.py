import os

import pytest

from pea_deploy.train import load_recipe

# PEA_TEST_THREADS=N runs the suite with N torch threads (and N OpenMP threads in the processes it
# starts). Float sums then split and add up in another order, so the tests that train see another
# training outcome, as on another CPU: a test that rests on a margin the outcome does not guarantee
# fails here before it fails on someone else's machine (issue 32).
# `PEA_TEST_THREADS=1 python -m pytest -q tests/...` after the ordinary run.
TEST_THREADS = os.environ.get("PEA_TEST_THREADS")


def pytest_configure(config):
    if TEST_THREADS:
        import torch

        if not TEST_THREADS.isdigit() or int(TEST_THREADS) < 1:
            raise pytest.UsageError(f"PEA_TEST_THREADS must be a whole number >= 1, got {TEST_THREADS!r}")
        torch.set_num_threads(int(TEST_THREADS))
        os.environ["OMP_NUM_THREADS"] = TEST_THREADS


def pytest_report_header(config):
    if TEST_THREADS:
        import torch

        return f"PEA_TEST_THREADS={TEST_THREADS}: torch.get_num_threads() = {torch.get_num_threads()}"


@pytest.fixture
def tiny_recipe():
    """The embedded default, cut to 3 short epochs: a real run in a few seconds."""
    return load_recipe().with_overrides({
        "train.epochs": 3, "pea.initial_epochs": 1, "pea.transition_end": 2, "model.width": 0.125,
    })
