"""One seed range for every command, refused up front (a huge seed crashed deep inside eval)."""

import pytest

from i2r.errors import UserError
from i2r.evaluate import EvalConfig
from i2r.inference import GenerateConfig
from i2r.seeds import MAX_SEED, check_seed
from i2r.train import TrainConfig


def test_the_range_is_numpys_randomstate_range():
    assert check_seed(0) == 0 and check_seed(MAX_SEED) == 2**32 - 1


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 10**20, 1.5, True, "3"])
def test_anything_else_is_a_user_error_naming_the_option(seed):
    with pytest.raises(UserError, match="--seed must be a whole number from 0 to 4294967295"):
        check_seed(seed)


@pytest.mark.parametrize("make", [lambda s: EvalConfig(checkpoint="c", data="d", seed=s),
                                  lambda s: GenerateConfig(images=[], checkpoint="c", out="o", seed=s),
                                  lambda s: TrainConfig(seed=s)])
def test_configs_check_their_seed(make):
    with pytest.raises(UserError, match="--seed"):
        make(10**20)
