"""The backend registry: names, devices, dtypes, conversion and clear failures."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import xpnet
from xpnet.backends import BACKEND_NAMES, backend_info, get_backend


def test_registry_names():
    assert BACKEND_NAMES == ("numpy", "cupy", "torch", "array_api_strict", "jax")


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match=r"backend must be one of numpy, cupy, torch, "
                                         r"array_api_strict, jax; got 'tensorflow'"):
        get_backend("tensorflow")


def test_backend_round_trip(backend, dtype):
    be = get_backend(backend)
    array = be.asarray(np.arange(6.0).reshape(2, 3), dtype=be.dtype(dtype))
    assert array.dtype == getattr(be.xp, dtype)
    back = be.to_numpy(array)
    np.testing.assert_array_equal(back, np.arange(6.0).reshape(2, 3))
    be.synchronize()  # a no-op on CPU backends, must not fail


def test_bad_dtype_name(backend):
    with pytest.raises(ValueError, match="dtype must be one of float32, float64; got 'int8'"):
        get_backend(backend).dtype("int8")


def test_backend_info_for_every_backend():
    for name in BACKEND_NAMES:
        info = backend_info(name)
        assert info["name"] == name
        assert "pip install" in info["install"]
        assert info["usable"] == (name in xpnet.available_backends())
        if not info["usable"]:
            assert info["reason"]


def test_cupy_without_gpu_says_why():
    if "cupy" in xpnet.available_backends():
        pytest.skip("CuPy has a usable CUDA device here")
    with pytest.raises(xpnet.BackendUnavailableError) as info:
        get_backend("cupy")
    message = str(info.value)
    if importlib.util.find_spec("cupy") is None:
        assert "not installed" in message and "pip install" in message
    else:
        assert "CUDA device" in message


def test_torch_devices():
    pytest.importorskip("torch", reason="torch not installed")
    assert str(get_backend("torch").device) == "cpu"
    assert str(get_backend("torch", "cpu").device) == "cpu"
    with pytest.raises(ValueError, match="device for backend 'torch'"):
        get_backend("torch", "not-a-device")


def test_cupy_device_strings_are_parsed():
    from xpnet.backends import _parse_cuda_index

    assert _parse_cuda_index(None, "cupy") == 0
    assert _parse_cuda_index("cuda:1", "cupy") == 1
    assert _parse_cuda_index(2, "cupy") == 2
    with pytest.raises(ValueError, match="device for backend 'cupy'"):
        _parse_cuda_index("tpu:0", "cupy")
