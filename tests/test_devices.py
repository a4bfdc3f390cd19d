"""Device names: every command accepts the same ones and refuses mistakes up front."""

import pytest
import torch

from i2r.devices import resolve_device
from i2r.errors import UserError


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "", "mps"])
def test_unknown_devices_are_user_errors(name):
    with pytest.raises(UserError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_user_error():
    with pytest.raises(UserError, match="no CUDA device is available"):
        resolve_device("cuda")
