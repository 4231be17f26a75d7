"""Images where they enter: files read by their content, and arrays normalised once, so every stage
sees H x W x 3 RGB (uint8 for perception, the caller's pixel type for editing, which keeps the
untouched pixels bit-exact).

Files are opened by content, not extension (some benchmark ``.png`` files hold JPEG data), with
Pillow's ``convert`` and no EXIF rotation, as the benchmark scripts read them. An unreadable file
raises InputError naming it and saying why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError

MAX_SIDE = 16384


def rgb_channels(image: np.ndarray) -> np.ndarray:
    """Greyscale, grey+alpha, RGB or RGBA -> H x W x 3 of the same pixel type and values.

    Alpha is dropped (the photo under it is what gets detected and edited), grey is repeated. An
    RGB image comes back as it is; otherwise the result is new. The input is never modified.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise InputError(f"expected one image of shape H x W x C, got shape {tuple(a.shape)}; "
                         "split a batch into single images first")
    h, w, c = a.shape
    if h < 1 or w < 1:
        raise InputError(f"image is empty ({w} x {h} pixels)")
    if max(h, w) > MAX_SIDE:
        raise InputError(f"image is {w} x {h} pixels; the largest side supported is {MAX_SIDE}")
    if c in (1, 2):
        return np.repeat(a[:, :, :1], 3, axis=2)
    if c == 4:
        return np.ascontiguousarray(a[:, :, :3])
    if c != 3:
        raise InputError(f"image has {c} channels; expected 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)")
    return a


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Greyscale, grey+alpha, RGB, RGBA; uint8, uint16 or float in [0, 1] -> new RGB uint8 array.

    Alpha is dropped (the photo under it is what gets detected). The input is never modified.
    """
    a = rgb_channels(image)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16 or (np.issubdtype(a.dtype, np.integer) and a.size and a.max() > 255):
        return (np.clip(a, 0, 65535) >> 8).astype(np.uint8)  # 16-bit data, also PIL's int32 "I" mode
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.rint(np.nan_to_num(a) * 255.0), 0, 255).astype(np.uint8)
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, 0, 255).astype(np.uint8)
    raise InputError(f"unsupported pixel type {a.dtype}")


# ------------------------------------------------------------------------------- files

def image_info(path: str | Path) -> tuple[str, str, tuple[int, int]]:
    """(format, mode, (width, height)) from the file's header; InputError when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.format or "?", im.mode, im.size
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None
    except UnidentifiedImageError:
        raise InputError(f"{path} is not an image Pillow can read") from None
    except OSError as e:
        raise InputError(f"{path} cannot be read ({e})") from None


def decode_file(path: str | Path, mode: str) -> np.ndarray:
    """The whole file decoded and converted to Pillow ``mode`` ("RGB", "L", ...) as uint8."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return np.array(im.convert(mode), dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None
    except UnidentifiedImageError:
        raise InputError(f"{path} is not an image Pillow can read") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"{path} is damaged or unreadable ({e})") from None


def load_image(path: str | Path) -> np.ndarray:
    """The photo as H x W x 3 uint8, whatever its format or extension says."""
    return decode_file(path, "RGB")


def encode_png(image: np.ndarray) -> bytes:
    """An 8-bit image (H x W grey or H x W x 3/4) as PNG file bytes, lossless, so saved pixels stay exact."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()
