"""LPIPS v0.1 (Zhang et al. 2018) on a torchvision backbone, from two local weight files.

The SmartEdit protocol uses the SqueezeNet variant (the default here). torch and torchvision load
only when a model is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError
from .base import Metric, Unavailable, model_metric


@dataclass(frozen=True)
class _Net:
    ctor: str  # torchvision.models constructor
    slices: tuple[tuple[int, int], ...]  # feature layer ranges whose outputs are compared
    channels: tuple[int, ...]
    backbone_file: str  # torchvision's release file name
    linear_file: str  # the lpips package's weights/v0.1/ file name


LPIPS_NETS = {
    "squeeze": _Net("squeezenet1_1", ((0, 2), (2, 5), (5, 8), (8, 10), (10, 11), (11, 12), (12, 13)),
                    (64, 128, 256, 384, 384, 512, 512), "squeezenet1_1-b8a52dc0.pth", "squeeze.pth"),
    "alex": _Net("alexnet", ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
                 (64, 192, 384, 256, 256), "alexnet-owt-7be5be79.pth", "alex.pth"),
    "vgg": _Net("vgg16", ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
                (64, 128, 256, 512, 512), "vgg16-397923af.pth", "vgg.pth"),
}
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
_LIN_KEY = re.compile(r"^(?:module\.)?(?:lin|lins\.)(\d+)\.model\.\d+\.weight$")


def _lpips_needs(net: str) -> str:
    n = LPIPS_NETS[net]
    return (f"LPIPS ({net}) needs two files: the torchvision {n.ctor} backbone ({n.backbone_file}) and the "
            f"LPIPS v0.1 linear layers ({n.linear_file} from the lpips package's weights/v0.1 folder)")


class LPIPSModel:
    """LPIPS v0.1 (Zhang et al. 2018) on a torchvision backbone, from two local weight files.

    Same computation as the lpips package and torchmetrics: inputs in [-1, 1], the fixed scaling
    layer, unit-normalised features of each compared layer, squared differences weighted by the
    learned 1x1 linear layer, averaged over space, summed over layers.
    """

    def __init__(self, net: str, backbone_state: Mapping[str, Any], linear_state: Mapping[str, Any],
                 device: str = "cpu", backbone_source: str = "the backbone state dict",
                 linear_source: str = "the linear-layer state dict"):
        import torch
        import torchvision

        if net not in LPIPS_NETS:
            raise InputError(f"LPIPS net must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
        spec = LPIPS_NETS[net]
        self.net = net
        self.device = torch.device(device)
        features = getattr(torchvision.models, spec.ctor)(weights=None).features
        sd = {k: v for k, v in backbone_state.items()}
        if any(k.startswith("features.") for k in sd):
            sd = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
        _load_backbone(features, sd, backbone_source,
                       f"the torchvision {spec.ctor} state dict ({spec.backbone_file})")
        self.slices = [torch.nn.Sequential(*[features[i] for i in range(a, b)]) for a, b in spec.slices]
        self.lins = _linear_weights(linear_state, spec.channels, linear_source)
        for module in self.slices:
            module.to(self.device).eval()
        self.lins = [w.to(self.device) for w in self.lins]
        self.shift = torch.tensor(_LPIPS_SHIFT, device=self.device).view(1, 3, 1, 1)
        self.scale = torch.tensor(_LPIPS_SCALE, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def load(cls, backbone: str | Path, linear: str | Path, net: str = "squeeze",
             device: str = "cpu") -> LPIPSModel:
        """Load both files safely (``weights_only``); CheckpointError names a file that does not fit."""
        from ..weights import load_checkpoint, state_dict_of

        if net not in LPIPS_NETS:
            raise InputError(f"LPIPS net must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
        spec = LPIPS_NETS[net]
        b_exp = f"the torchvision {spec.ctor} state dict ({spec.backbone_file})"
        l_exp = f"the LPIPS v0.1 linear layers for {net} ({spec.linear_file})"
        b_sd = state_dict_of(load_checkpoint(backbone, b_exp), backbone, b_exp)
        l_sd = state_dict_of(load_checkpoint(linear, l_exp), linear, l_exp)
        return cls(net, b_sd, l_sd, device, str(backbone), str(linear))

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        """LPIPS distance of two H x W x 3 images with values 0..255 (uint8 or float)."""
        import torch

        x, y = np.asarray(a), np.asarray(b)
        if x.shape != y.shape or x.ndim != 3 or x.shape[2] != 3:
            raise InputError(f"LPIPS needs two H x W x 3 images of the same size, got {x.shape} and "
                             f"{y.shape}")

        def tensor(img: np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) / 127.5 - 1.0)
            return ((t.permute(2, 0, 1)[None].to(self.device)) - self.shift) / self.scale

        total = 0.0
        with torch.inference_mode():
            hx, hy = tensor(x), tensor(y)
            for block, w in zip(self.slices, self.lins):
                hx, hy = block(hx), block(hy)
                d = (_unit(hx) - _unit(hy)) ** 2
                total += float(torch.nn.functional.conv2d(d, w).mean())
        return total


def _load_backbone(features: Any, sd: Mapping[str, Any], source: str, expected: str) -> None:
    """Strict load with a message that says what does not fit (torch's first line says nothing)."""
    own = features.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} instead of {tuple(v.shape)}" for k, v in own.items()
             if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} unknown tensors (e.g. {extra[0]})")
    if wrong:
        problems.append(f"{len(wrong)} tensors of the wrong shape (e.g. {wrong[0]})")
    if problems:
        raise CheckpointError(source, "it does not fit the backbone: " + "; ".join(problems), expected)
    features.load_state_dict(dict(sd), strict=True)


def _unit(t, eps: float = 1e-10):
    return t / (t.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def _linear_weights(state: Mapping[str, Any], channels: Sequence[int], source: str) -> list:
    found: dict[int, Any] = {}
    for k, v in state.items():
        match = _LIN_KEY.match(k)
        if match:
            found[int(match.group(1))] = v
    expected = (f"{len(channels)} LPIPS linear layers (lin0..lin{len(channels) - 1}) with "
                f"{list(channels)} inputs")
    if sorted(found) != list(range(len(channels))):
        raise CheckpointError(source, f"it holds linear layers {sorted(found)}", expected)
    out = []
    for i, c in enumerate(channels):
        w = found[i].float()
        if tuple(w.shape) != (1, c, 1, 1):
            raise CheckpointError(source, f"linear layer {i} has shape {tuple(w.shape)}, not (1, {c}, 1, 1)",
                                  expected)
        out.append(w)
    return out


def load_lpips(backbone: str | Path | None = None, linear: str | Path | None = None, net: str = "squeeze",
               device: str = "cpu") -> LPIPSModel | Unavailable:
    """The LPIPS model, or Unavailable with the reason (files not given, missing, or unusable)."""
    if net not in LPIPS_NETS:
        raise InputError(f"LPIPS net must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
    if not backbone or not linear:
        return Unavailable(f"no LPIPS weights given: {_lpips_needs(net)}")
    for p in (backbone, linear):
        if not Path(p).is_file():
            return Unavailable(f"LPIPS weights not found at {p}: {_lpips_needs(net)}")
    try:
        return LPIPSModel.load(backbone, linear, net, device)
    except (CheckpointError, ImportError) as e:
        return Unavailable(f"LPIPS weights unusable: {e}")


def lpips_score(a: np.ndarray, b: np.ndarray, model: LPIPSModel | Unavailable | None) -> Metric:
    """LPIPS of two 0..255 images, or not computed (with the reason) without a model."""
    return model_metric(model, f"no LPIPS weights given: {_lpips_needs('squeeze')}", "LPIPS",
                        lambda m: m(a, b))
