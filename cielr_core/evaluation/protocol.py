"""The SmartEdit evaluation protocol: background PSNR, SSIM, LPIPS and MSE, and the CLIP score of
the edited region, at a fixed square size.

The SmartEdit protocol (TencentARC/SmartEdit ``test/metrics_evaluation.py``, as the CIELR authors
used it; they also report it at 512x512, hence ``size``):

1. The original and the edited image are resized to ``size`` x ``size`` with Pillow's bicubic
   filter; the ground-truth mask with nearest neighbour.
2. The mask region is zeroed in both images (the metrics measure the background only).
3. PSNR, SSIM, LPIPS and MSE are computed on the two zeroed images, over all 3 channels and all
   ``size`` x ``size`` pixels (the zeroed region counts, as in the original). MSE is on the [0, 1]
   scale (the original divides by 255; papers print it x10^3). PSNR uses data range 255, which
   equals the original's data range 1 on the /255 images; identical images give ``inf``.
4. SSIM is the standard Wang et al. (2004) form as torchmetrics (the original's implementation),
   scikit-image (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``) and
   pytorch-msssim compute it: an 11-tap Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
   data range 255, local statistics only where the window fits inside the image ("valid"
   filtering, i.e. a 5-pixel border is left out), computed per RGB channel and averaged over
   channels and pixels.
5. LPIPS (the original uses the SqueezeNet variant, the default here) on the zeroed images
   scaled to [-1, 1].
6. The CLIP score is ``100 * max(cos(image, text), 0)`` (torchmetrics ``CLIPScore``; the original
   uses ``openai/clip-vit-large-patch14``) on the resized edited image cropped to the bounding
   box of the resized mask, against the sample's target text.

Deviations from the original script, on purpose:

- The 8-bit mask is binarised (value > 127 is inside) before use. The original multiplies the
  images by ``1 - mask / 255`` with the JPEG mask's raw values, so its mask edges are soft and its
  CLIP box is the box of every non-zero pixel (JPEG noise included). ``soft_mask=True`` reproduces
  that exactly when given the raw 8-bit mask.
- The original crops with Pillow's ``crop((left, top, right, bottom))`` where right/bottom are the
  last mask column/row, so the crop leaves out that last column and row. This is kept; only when
  that would leave an empty crop (a mask one pixel wide) is the last column/row included.
- An empty mask (the original crashes) gives a failed CLIP score; the background metrics are
  still computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import InputError
from .base import Metric, Unavailable
from .clip import CLIPScorer, clip_score
from .lpips import LPIPSModel, lpips_score
from .pixel import SSIM_WINDOW, binarise_mask, mse, psnr_from_mse, rgb_image, ssim

PROTOCOL_SIZES = (256, 512)  # SmartEdit's size, and the CIELR authors' second one


def _resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a bool or uint8 mask, keeping its type."""
    if mask.dtype == np.bool_:
        img = Image.fromarray(mask.astype(np.uint8) * 255)
        return np.asarray(img.resize((size, size), Image.Resampling.NEAREST)) > 127
    return np.asarray(Image.fromarray(mask).resize((size, size), Image.Resampling.NEAREST))



@dataclass(frozen=True)
class ProtocolInputs:
    """What the protocol measures, at ``size`` x ``size``."""

    original: np.ndarray  # float64, 0..255, mask region zeroed
    edited: np.ndarray  # float64, 0..255, mask region zeroed
    edited_resized: np.ndarray  # uint8, not zeroed: what the CLIP crop is cut from
    mask: np.ndarray  # bool: inside (binarised; soft mode: any non-zero value)
    box: tuple[int, int, int, int] | None  # CLIP crop (left, top, right, bottom), None if empty


def protocol_inputs(original: np.ndarray, edited: np.ndarray, mask: np.ndarray, size: int = 256,
                    soft_mask: bool = False) -> ProtocolInputs:
    """Resize (bicubic images, nearest mask) and zero the mask region in both images.

    The two images may differ in size (both are resized), as in the original. The mask must have
    the original image's aspect ratio (a transposed or foreign mask is an error, not a guess).
    ``soft_mask``: ``mask`` is the raw 8-bit mask and the images are multiplied by
    ``1 - mask / 255`` as the original script does.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not SSIM_WINDOW <= size <= 8192:
        raise InputError(f"size must be an integer from {SSIM_WINDOW} to 8192, got {size!r}")
    size = int(size)
    orig = rgb_image(original, "original image")
    edit = rgb_image(edited, "edited image")
    m = np.asarray(mask)
    if soft_mask:
        if m.dtype != np.uint8 or m.ndim != 2:
            raise InputError("soft_mask needs the raw 8-bit H x W mask (uint8), as read from the file")
    else:
        m = binarise_mask(m)
    oh, ow = orig.shape[:2]
    mh, mw = m.shape
    if abs(mw / mh - ow / oh) > 0.02 * (ow / oh):
        raise InputError(f"the mask is {mw}x{mh} but the image is {ow}x{oh}: their shapes differ, so the "
                         "mask was not made for this image (or is transposed)")
    o_r, e_r, m_r = _resize_rgb(orig, size), _resize_rgb(edit, size), _resize_mask(m, size)
    if soft_mask:
        keep = (1.0 - m_r.astype(np.int64) / 255.0)[:, :, None]
        inside = m_r > 0
        o_z, e_z = o_r.astype(np.float64) * keep, e_r.astype(np.float64) * keep
    else:
        inside = m_r
        o_z, e_z = o_r.astype(np.float64), e_r.astype(np.float64)
        o_z[inside] = 0.0
        e_z[inside] = 0.0
    return ProtocolInputs(o_z, e_z, e_r, inside, _protocol_box(inside))


def _protocol_box(inside: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(inside)
    if ys.size == 0:
        return None
    left, top, right, bottom = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    # The original's crop leaves out the last column and row; keep that unless nothing is left.
    if right == left:
        right += 1
    if bottom == top:
        bottom += 1
    return left, top, right, bottom


def smartedit_metrics(original: np.ndarray, edited: np.ndarray, mask: np.ndarray,
                      target_text: str | None = None, *, size: int = 256,
                      lpips: LPIPSModel | Unavailable | None = None,
                      clip: CLIPScorer | Unavailable | None = None,
                      soft_mask: bool = False) -> dict[str, Metric]:
    """PSNR, SSIM, LPIPS, MSE (background) and CLIP (edited region), as the SmartEdit protocol.

    ``mask`` is the ground-truth mask at the original image's resolution (bool, 8-bit or float).
    Keys: psnr, ssim, lpips, mse, clip. Bad inputs raise InputError; a model error fails only its
    own metric.
    """
    p = protocol_inputs(original, edited, mask, size, soft_mask)
    m01 = mse(p.original, p.edited)
    out = {"psnr": Metric.ok(psnr_from_mse(m01)), "ssim": Metric.ok(ssim(p.original, p.edited)),
           "lpips": lpips_score(p.original, p.edited, lpips), "mse": Metric.ok(m01)}
    if not target_text or not target_text.strip():
        out["clip"] = Metric.not_computed("the sample has no CLIP target text")
    elif p.box is None:
        out["clip"] = Metric.failure(f"the ground-truth mask is empty at {size}x{size}, so there is no "
                                     "edited region to crop for the CLIP score")
    else:
        left, top, right, bottom = p.box
        out["clip"] = clip_score(p.edited_resized[top:bottom, left:right], target_text, clip)
    return out
