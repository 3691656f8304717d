import pytest

from pea_deploy.train import load_recipe


@pytest.fixture
def tiny_recipe():
    """The embedded default, cut to 3 short epochs: a real run in a few seconds."""
    return load_recipe().with_overrides({
        "train.epochs": 3, "pea.initial_epochs": 1, "pea.transition_end": 2, "model.width": 0.125,
    })
