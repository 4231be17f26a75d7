"""Models another pack already loaded, used as CIELR's segmenter and detector.

- A ``segment_anything`` ``Sam`` (the SAM_MODEL of storyicon's segment-anything nodes and of Impact
  Pack's SAMLoader) is the library this pack segments with: it is used as it is, the same object on
  the device and in the dtype its owner chose. Nothing is copied or moved, except where the owner
  asked for a device policy: Impact's ``sam_wrapper`` (its AUTO mode puts the model on the GPU only
  while it works) is followed around every call.
- A reference GroundingDINO module (storyicon's GROUNDING_DINO_MODEL: groundingdino's own classes,
  vendored) cannot run as transformers' GroundingDINO, which this pack detects with. Its state dict
  has the layout of the released ``.pth`` files, so the tensors are converted once by the same
  renaming the checkpoint loader uses (``gdino_convert``) into a transformers model, and the sizes
  the file loader reads from a config are read from the live module instead. The copy is reported
  with the memory it takes; the tokenizer is the owner's own.

An object of another kind (SAM-HQ, MobileSAM, EfficientSAM, a module of another model) is refused
with an error that names what arrived and what to connect instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError
from ..progress import NO_PROGRESS, Progress
from .detector import KNOWN_EXTRA_KEYS, Detector, GroundingDinoDetector, build_model
from .segmenter import Segmenter, sam_architecture

SAM_SOURCE = "the SAM_MODEL input"
GDINO_SOURCE = "the GROUNDING_DINO_MODEL input"
SAM_HINT = ("Connect the SAM_MODEL of a segment_anything SAM (sam_vit_b/l/h) from Impact Pack's SAMLoader or "
            "storyicon's SAMModelLoader, or load the file with CIELR SAM Loader")
GDINO_HINT = ("Connect the GROUNDING_DINO_MODEL of storyicon's GroundingDinoModelLoader (the reference "
              "GroundingDINO), or load the .pth file with CIELR GroundingDINO Loader")


@dataclass(frozen=True)
class Adoption:
    """What using another pack's model cost: shared in place, or converted into a copy."""

    kind: str  # "segmenter" | "detector"
    source: str  # the owner's class and architecture
    device: str  # where the model CIELR runs is
    copied_bytes: int  # 0 = the owner's tensors are used in place

    def text(self) -> str:
        if self.copied_bytes == 0:
            return (f"{self.source} is used as the CIELR {self.kind} in place on {self.device}: nothing copied "
                    "or moved")
        return (f"{self.source} converted once into transformers' GroundingDINO for the CIELR {self.kind}: "
                f"{self.copied_bytes / 2**20:.1f} MB on {self.device} (kept while the source model lives)")


def tensor_bytes(module: Any) -> int:
    """Bytes held by a module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _kind(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__name__}"


# --------------------------------------------------------------------------- SAM


class BorrowedSegmenter(Segmenter):
    """A Segmenter over another pack's ``Sam``: it never moves the model (``to`` only forgets the
    cached embedding); an owner's device policy (``prepare_device``/``release_device``) wraps each
    call."""

    def __init__(self, model: Any, architecture: Any, name: str, policy: Any = None):
        self.policy = policy
        encoder = next(model.image_encoder.parameters())
        super().__init__(model, architecture, device=model.pixel_mean.device, dtype=encoder.dtype, name=name)

    def to(self, device: Any) -> BorrowedSegmenter:
        self.clear_cache()  # where the model lives is its owner's choice
        return self

    def segment(self, image: np.ndarray, boxes: np.ndarray, progress: Progress = NO_PROGRESS) -> np.ndarray:
        if self.policy is None:
            return super().segment(image, boxes, progress)
        self.policy.prepare_device()
        try:
            return super().segment(image, boxes, progress)
        finally:
            self.policy.release_device()
            self.clear_cache()  # the embedding lived on the device the model just left


def _sam_refusal(sam: Any) -> str | None:
    """Why ``sam`` cannot be CIELR's segmenter, or None."""
    import torch

    if type(getattr(sam, "sam_wrapper", None)).__name__ == "ESAMWrapper":
        return "it is EfficientSAM (Impact's 'ESAM' choice), not a segment_anything SAM"
    if not isinstance(sam, torch.nn.Module):
        return f"it is a {_kind(sam)}, not a torch module"
    missing = [n for n in ("image_encoder", "prompt_encoder", "mask_decoder", "pixel_mean") if not hasattr(sam, n)]
    if missing:
        return f"it is a {_kind(sam)} without {', '.join(missing)}, so not a segment_anything Sam"
    if hasattr(sam.mask_decoder, "hf_token"):
        return "it is SAM-HQ, whose decoder needs the encoder's intermediate features (not supported here)"
    if not hasattr(sam.image_encoder, "blocks") or not hasattr(sam.image_encoder, "patch_embed"):
        return f"its image encoder is a {type(sam.image_encoder).__name__} (MobileSAM's TinyViT?), not SAM's ViT"
    dtype = next(sam.mask_decoder.parameters()).dtype
    if dtype != torch.float32:
        return f"its mask decoder is in {dtype}; segment_anything's decoder runs in float32"
    return None


def adopt_sam(sam: Any) -> tuple[BorrowedSegmenter, Adoption]:
    """Another pack's ``segment_anything`` Sam as a Segmenter, in place."""
    reason = _sam_refusal(sam)
    if reason is not None:
        raise InputError(f"{SAM_SOURCE} cannot be used as the CIELR segmenter: {reason}. {SAM_HINT}.")
    try:
        arch = sam_architecture(sam.state_dict(), SAM_SOURCE)
    except CheckpointError as e:
        raise InputError(f"{SAM_SOURCE} cannot be used as the CIELR segmenter: {e} {SAM_HINT}.") from None
    wrapper = getattr(sam, "sam_wrapper", None)
    policy = wrapper if callable(getattr(wrapper, "prepare_device", None)) and \
        callable(getattr(wrapper, "release_device", None)) else None
    name = str(getattr(sam, "model_name", "") or f"SAM {arch.name}")
    segmenter = BorrowedSegmenter(sam, arch, name, policy)
    source = f"{type(sam).__name__} ({arch.name}{', ' + name if name != f'SAM {arch.name}' else ''})"
    if policy is not None:
        source += f" with its owner's device policy ({type(policy).__name__})"
    return segmenter, Adoption("segmenter", source, str(segmenter.device), 0)


# --------------------------------------------------------------------------- GroundingDINO

_SAMPLING = re.compile(r"^transformer\.(encoder|decoder)\.layers\.0\.(self_attn|cross_attn)\.sampling_offsets\.weight$")
_NORMS = re.compile(r"^backbone\.0\.norm(\d+)\.weight$")


def _gdino_refusal(model: Any) -> str | None:
    import torch

    if not isinstance(model, torch.nn.Module):
        return f"it is a {_kind(model)}, not a torch module"
    missing = [n for n in ("backbone", "transformer", "bert", "tokenizer", "feat_map") if not hasattr(model, n)]
    if missing:
        return f"it is a {_kind(model)} without {', '.join(missing)}, so not the reference GroundingDINO"
    return None


def module_config(model: Any, sd: dict[str, Any]) -> dict[str, Any]:
    """The groundingdino config of a live reference module: sizes from its tensors (as the file
    loader reads them), options from the attributes groundingdino's classes keep."""
    from . import gdino_configs

    sig = gdino_configs.signature(sd)
    if sig is None:
        raise InputError(f"{GDINO_SOURCE} has no Swin backbone tensors (backbone.0.patch_embed.proj.weight); "
                         f"only Swin GroundingDINO models convert. {GDINO_HINT}.")
    nheads = int(getattr(model, "nheads", getattr(model.transformer, "nhead", 8)))
    levels = int(getattr(model, "num_feature_levels", 4))
    points = {}
    for key, tensor in sd.items():
        m = _SAMPLING.match(key)
        if m:  # sampling offsets: heads x levels x points x 2 outputs
            points[m.group(1)] = int(tensor.shape[0]) // (nheads * levels * 2)
    position = model.backbone[1] if len(model.backbone) > 1 else None
    layer = model.transformer.encoder.layers[0] if len(model.transformer.encoder.layers) else None
    activation = getattr(getattr(layer, "activation", None), "__name__", "relu")
    bbox = getattr(model, "bbox_embed", None)
    shared = bool(bbox is not None and len(bbox) > 1 and bbox[0] is bbox[1])
    keys = set(sd)
    overrides = {
        "swin": {k: sig[k] for k in gdino_configs.SWIN_KEYS},
        "enc_layers": sig["enc_layers"], "dec_layers": sig["dec_layers"], "num_queries": sig["num_queries"],
        "hidden_dim": sig["hidden_dim"], "dim_feedforward": sig["dim_feedforward"], "nheads": nheads,
        "num_feature_levels": levels, "enc_n_points": points.get("encoder", 4),
        "dec_n_points": points.get("decoder", 4),
        "return_interm_indices": sorted(int(m.group(1)) for k in keys if (m := _NORMS.match(k))),
        "max_text_len": int(getattr(model, "max_text_len", 256)), "query_dim": int(getattr(model, "query_dim", 4)),
        "two_stage_type": str(getattr(model, "two_stage_type", "standard")),
        "num_patterns": int(getattr(model, "num_patterns", 0)),
        "sub_sentence_present": bool(getattr(model, "sub_sentence_present", True)),
        "dec_pred_bbox_embed_share": shared or sig["dec_layers"] == 1,
        "two_stage_bbox_embed_share": bool(getattr(model, "two_stage_bbox_embed_share", False)),
        "embed_init_tgt": bool(getattr(model.transformer, "embed_init_tgt", True)),
        "transformer_activation": activation,
        "use_text_enhancer": any(k.startswith("transformer.encoder.text_layers.") for k in keys),
        "use_fusion_layer": any(k.startswith("transformer.encoder.fusion_layers.") for k in keys),
        "use_text_cross_attention": any(".ca_text." in k for k in keys),
        "pe_temperatureH": getattr(position, "temperatureH", 20),
        "pe_temperatureW": getattr(position, "temperatureW", 20),
    }
    return gdino_configs.full_config(overrides)


def convert_groundingdino(model: Any) -> tuple[Detector, Adoption]:
    """A transformers GroundingDINO (on the CPU) filled from a live reference module's tensors."""
    from . import gdino_convert

    reason = _gdino_refusal(model)
    if reason is not None:
        raise InputError(f"{GDINO_SOURCE} cannot be used as the CIELR detector: {reason}. {GDINO_HINT}.")
    sd = dict(model.state_dict())  # references to the owner's tensors; loading below copies them
    for key in KNOWN_EXTRA_KEYS:
        sd.pop(key, None)
    cfg = module_config(model, sd)
    name = f"{type(model).__name__} (Swin {cfg['swin']['embed_dim']}, {cfg['enc_layers']}+{cfg['dec_layers']} layers)"
    try:
        gdino_convert.check_special_tokens(model.tokenizer, GDINO_SOURCE, "a bert-base-uncased vocabulary")
        hf = build_model(cfg, model.bert.config, GDINO_SOURCE, name)
        gdino_convert.load_converted(hf, sd, GDINO_SOURCE, name, cfg["return_interm_indices"])
    except CheckpointError as e:
        raise InputError(f"{GDINO_SOURCE} could not be converted: {e} {GDINO_HINT}.") from None
    device = next(model.parameters()).device
    detector = GroundingDinoDetector(hf.eval(), model.tokenizer, cfg["max_text_len"], name)
    return detector, Adoption("detector", name, str(device), tensor_bytes(hf))
