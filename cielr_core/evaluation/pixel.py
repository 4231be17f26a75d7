"""Pixel metrics: binarised masks, MSE, PSNR and SSIM on 8-bit values.

SSIM is the standard Wang et al. (2004) form as torchmetrics, scikit-image
(``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``) and pytorch-msssim compute it:
an 11-tap Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, local statistics only where the
window fits inside the image ("valid" filtering), per channel, averaged over channels and pixels.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..images import to_rgb_uint8

MASK_THRESHOLD = 127  # an 8-bit mask value above this is inside the mask
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def binarise_mask(mask: np.ndarray, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """A 2-D mask as bool: bool as is; uint8 (and 8-bit values in wider ints) > ``threshold``;
    0/1 integer masks > 0; floats in [0, 1] (ComfyUI MASK) > 0.5. (H, W, 1) and (1, H, W) are
    squeezed."""
    m = np.asarray(mask)
    if m.ndim == 3 and 1 in (m.shape[0], m.shape[2]):
        m = m[0] if m.shape[0] == 1 else m[:, :, 0]
    if m.ndim != 2:
        raise InputError(f"a mask must be a 2-D H x W array, got shape {tuple(m.shape)}")
    if m.dtype == np.bool_:
        return m
    if np.issubdtype(m.dtype, np.integer):
        if m.dtype != np.uint8 and m.size and int(m.max()) <= 1:
            return m > 0
        return m > threshold
    if np.issubdtype(m.dtype, np.floating):
        return np.nan_to_num(m) > 0.5
    raise InputError(f"mask has unsupported type {m.dtype}; expected bool, 8-bit or float values")



def rgb_image(image: np.ndarray, what: str) -> np.ndarray:
    try:
        return to_rgb_uint8(image)
    except InputError as e:
        raise InputError(f"{what}: {e}") from None



def check_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{what}: the images differ in size ({a.shape[1]}x{a.shape[0]} and "
                         f"{b.shape[1]}x{b.shape[0]}); compare an edit with the image it was made from")



def mse(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean squared error of two same-shape arrays on the [0, 1] scale (values / data_range)."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a64.shape != b64.shape:
        raise InputError(f"mse needs two arrays of the same shape, got {a64.shape} and {b64.shape}")
    if a64.size == 0:
        raise InputError("mse of empty arrays is undefined")
    d = (a64 - b64) / data_range
    return float(np.mean(d * d))


def psnr_from_mse(mse01: float) -> float:
    """PSNR in dB from an MSE on the [0, 1] scale; 0 -> inf."""
    return math.inf if mse01 == 0 else 10.0 * math.log10(1.0 / mse01)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all elements; identical arrays give ``inf``."""
    return psnr_from_mse(mse(a, b, data_range))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian the SSIM window is the outer product of."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable correlation with ``w`` along axes 0 and 1, only where the window fits."""
    k = w.size
    h = a.shape[0] - k + 1
    rows = np.zeros((h,) + a.shape[1:])
    for i, wi in enumerate(w):
        rows += wi * a[i:i + h]
    wd = a.shape[1] - k + 1
    out = np.zeros((h, wd) + a.shape[2:])
    for i, wi in enumerate(w):
        out += wi * rows[:, i:i + wd]
    return out


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, window: int = SSIM_WINDOW,
             sigma: float = SSIM_SIGMA, k1: float = SSIM_K1, k2: float = SSIM_K2) -> np.ndarray:
    """Per-pixel (and per-channel) SSIM of two H x W or H x W x C arrays, (H-10) x (W-10) [x C]."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise InputError(f"ssim needs two arrays of the same shape, got {x.shape} and {y.shape}")
    if x.ndim not in (2, 3) or min(x.shape[:2]) < window:
        raise InputError(f"ssim needs images of at least {window}x{window} pixels, got shape {x.shape}")
    w = gaussian_window(window, sigma)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, w), _filter_valid(y, w)
    var_x = np.maximum(_filter_valid(x * x, w) - mu_x * mu_x, 0.0)
    var_y = np.maximum(_filter_valid(y * y, w) - mu_y * mu_y, 0.0)
    cov = _filter_valid(x * y, w) - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM (Gaussian 11 / 1.5, K1 0.01, K2 0.03, valid window positions, channels averaged)."""
    return float(np.mean(ssim_map(a, b, data_range)))
