"""FourierVectorField (FNO) and its spectral layer against exact answers.

- The spectral layer multiplies each kept Fourier mode by its weight matrix and drops
  the others: checked mode by mode against numpy's FFT (float64, <= 1e-12).
- Without coordinate channels the field is translation-equivariant on the torus.
- First and second derivatives (gradcheck, gradgradcheck in float64): what MAML needs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scimeta.errors import ConfigError
from scimeta.nn import Forecaster, FourierVectorField, SpectralConv2d


def _spectral(seed=0, cin=2, cout=3, modes=(3, 2)):
    torch.manual_seed(seed)
    layer = SpectralConv2d(cin, cout, modes).double()
    with torch.no_grad():
        layer.weight.normal_()
    return layer


def test_spectral_layer_against_numpy_mode_by_mode():
    layer = _spectral()
    h, w = 8, 10
    x = torch.randn(4, 2, h, w, dtype=torch.float64)
    out = layer(x).detach().numpy()
    wc = layer.weight.detach().numpy()
    wc = wc[..., 0] + 1j * wc[..., 1]                           # [2, in, out, m1, m2]
    xh = np.fft.rfft2(x.numpy())                                # [B, in, H, W//2+1]
    half = np.zeros((4, 3, h, w // 2 + 1), dtype=complex)
    for k1 in range(-3, 3):                                     # -m1 <= m_1 < m1
        for k2 in range(2):                                     # 0 <= m_2 < m2
            block, row = (0, k1) if k1 >= 0 else (1, k1 + 3)    # weights of the block
            half[:, :, k1 % h, k2] = xh[:, :, k1 % h, k2] @ wc[block, :, :, row, k2]
    ref = np.fft.irfft2(half, s=(h, w))
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


def test_spectral_layer_drops_modes_outside_the_band():
    layer = _spectral(modes=(2, 2))
    i, j = np.meshgrid(np.arange(8) / 8, np.arange(8) / 8, indexing="ij")
    # kept: -2 <= m_1 < 2 and 0 <= m_2 < 2 of the rfft half-spectrum (m_2 >= 0); a
    # cosine holds (m_1, m_2) and (-m_1, -m_2), so (2, 0) is kept through (-2, 0)
    for k1, k2, kept in ((1, 1, True), (-1, 1, True), (2, 0, True), (3, 0, False),
                         (0, 2, False), (3, 3, False)):
        mode = np.cos(2 * np.pi * (k1 * i + k2 * j))
        x = torch.as_tensor(np.stack([mode, 0.5 * mode]))[None]
        out = layer(x).detach().abs().max().item()
        assert (out > 1e-3) if kept else (out <= 1e-13), (k1, k2, out)


@pytest.mark.parametrize("layout", ["flat", "grid"])
def test_translation_equivariant_without_coordinates(layout):
    torch.manual_seed(1)
    f = FourierVectorField(2, (8, 12), modes=(3, 4), width=5, coords="none",
                           layout=layout).double()
    y = torch.randn(3, 2, 8, 12, dtype=torch.float64)
    shift = (3, -5)
    rolled = y.roll(shift, dims=(-2, -1))
    if layout == "flat":
        to = lambda a: a.permute(0, 2, 3, 1).reshape(3, -1)  # noqa: E731
        back = lambda a: a.reshape(3, 8, 12, 2).permute(0, 3, 1, 2)  # noqa: E731
        out, out_r = back(f(to(y))), back(f(to(rolled)))
    else:
        out, out_r = f(y), f(rolled)
    torch.testing.assert_close(out_r, out.roll(shift, dims=(-2, -1)), rtol=0, atol=1e-12)
    with_coords = FourierVectorField(2, (8, 12), modes=(3, 4), width=5, layout="grid").double()
    assert (with_coords(rolled) - with_coords(y).roll(shift, dims=(-2, -1))).abs().max() > 1e-6


def test_first_and_second_derivatives_float64():
    torch.manual_seed(2)
    f = FourierVectorField(1, (6, 6), param_dim=2, modes=(2, 2), width=3, layers=2, head=4,
                           scale=0.5).double()
    y = torch.randn(2, 36, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    w = f.spectral[0].weight
    assert torch.autograd.gradcheck(lambda a, b, k: torch.func.functional_call(
        f, {"spectral.0.weight": k}, (a, b)), (y, c, w))
    assert torch.autograd.gradgradcheck(lambda a, k: torch.func.functional_call(
        f, {"spectral.0.weight": k}, (a, c.detach())), (y, w))


def test_shapes_leading_dims_and_forecaster():
    f = FourierVectorField(2, (8, 8), modes=(4, 5), width=4, scale=1e-3)
    y = torch.randn(5, 3, 128)
    assert f(y).shape == (5, 3, 128) and f(y[0, 0]).shape == (128,)
    model = Forecaster(f, torch.arange(4.0))
    assert model(y[0]).shape == (3, 4 * 128)
    grads = torch.autograd.grad(model(y[0]).square().sum(), list(f.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(modes=(5, 2)), r"modes=\(5, 2\) is not allowed.*2 m1 <= 8"),
    (dict(modes=(2, 6)), r"m2 <= 5"),
    (dict(modes=(0, 2)), r"modes=\(0, 2\)"),
    (dict(coords="polar"), r"coords='polar' is not allowed"),
    (dict(width=0), r"width=0"),
    (dict(activation="gelu"), r"activation='gelu'"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FourierVectorField(1, (8, 8), **{"modes": (2, 2), **kwargs})
