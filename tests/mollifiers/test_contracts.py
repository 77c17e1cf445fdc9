"""Contracts of the mollifiers and the DCT that mutation testing showed untested: refusals name the argument, inv_snr
is checked wherever it is taken, every axis index is accepted, the reprs."""

import math

import pytest
import torch

from funcdiff import GaussianMollifier, IdentityMollifier
from funcdiff.mollifiers import dct, idct
from tests.strategies import ours_or_checkers
from tests.helpers import dct_matrix


@pytest.mark.parametrize("mollifier", [GaussianMollifier(0.1), IdentityMollifier()], ids=["gaussian", "identity"])
def test_refusals_name_the_argument(mollifier) -> None:
    """mollify names x, unmollify names y; inv_snr must be a finite number >= 0 (not a bool) for both kinds."""
    with pytest.raises(ValueError, match=r"x must be a dense field \(b, c, \*spatial\) with no empty axis, got shape \(2, 3\)"):
        mollifier.mollify(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"y must be a dense field \(b, c, \*spatial\) with no empty axis, got shape \(2, 1, 0\)"):
        mollifier.unmollify(torch.zeros(2, 1, 0))
    for bad in (-0.1, math.inf, math.nan, True, False):
        with pytest.raises((ValueError, TypeError), match=ours_or_checkers("inv_snr must be a finite number >= 0")):
            mollifier.unmollify(torch.zeros(1, 1, 4), bad)


def test_reprs() -> None:
    """The reprs say the kind and its setting."""
    assert repr(GaussianMollifier(0.125)) == "GaussianMollifier(sigma=0.125)"
    assert repr(IdentityMollifier()) == "IdentityMollifier()"


def test_gain_is_float64_on_the_asked_device() -> None:
    """The per-axis gain exp(-(pi k sigma)^2 / 2) is float64; the spectrum is its outer product over the axes."""
    m = GaussianMollifier(0.1)
    g = m.gain(5)
    assert g.dtype == torch.float64
    torch.testing.assert_close(g, torch.exp(-((math.pi * torch.arange(5.0, dtype=torch.float64) * 0.1) ** 2) / 2))
    torch.testing.assert_close(m.spectrum((5, 3)), g[:, None] * m.gain(3)[None, :])


@pytest.mark.parametrize("dim", [-3, -2, -1, 0, 1, 2])
def test_dct_along_every_axis(dim: int) -> None:
    """dct and idct accept every axis index, negative ones included, and are the DCT-II matrix there."""
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    expected = (x.movedim(dim, -1) @ dct_matrix(x.shape[dim]).T).movedim(-1, dim)
    torch.testing.assert_close(dct(x, dim), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(idct(expected, dim), x, rtol=0, atol=1e-12)


def test_dct_messages() -> None:
    """The DCT names the dtype it needs and the shape it got."""
    with pytest.raises(TypeError, match="the DCT needs a float32 or float64 tensor, got torch.float16"):
        dct(torch.zeros(4, dtype=torch.float16))
    with pytest.raises(ValueError, match=r"the DCT needs a non-empty tensor with an axis 2, got shape \(3, 4\)"):
        idct(torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match=r"the DCT needs a non-empty tensor with an axis -1, got shape \(0, 4\)"):
        dct(torch.zeros(0, 4))
