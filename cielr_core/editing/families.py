"""Checkpoint families: what each model family ComfyUI loads needs from the editor.

Keyed by the name of ComfyUI's model configuration class, which ComfyUI picks from the weights
themselves (never from a file name): ``type(model.model.model_config).__name__``. Plain data, so
the table is read and tested without ComfyUI.

- ``working_size``: the side, in pixels, the family was trained at (crops are sampled at about
  that many pixels squared).
- ``guidance``: the default of the distilled guidance the model reads as an input (Flux-style);
  None when the family has no such input.
- ``edit``: "reference" when every checkpoint of the family edits from a reference image
  (Flux.2), "optional" when the family's layout is shared by text-to-image checkpoints and
  instruction-edit ones that the weights cannot tell apart (Flux.1 dev / Kontext, Qwen-Image /
  Qwen-Image-Edit), "no" otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import EDIT_MODES

IMAGE, VIDEO, AUDIO, THREE_D = "image", "video", "audio", "3D"


@dataclass(frozen=True)
class Family:
    label: str
    kind: str = IMAGE
    working_size: int = 1024
    guidance: float | None = None
    edit: str = "no"  # "no" | "optional" | "reference"
    vision_prompt: bool = False  # the text encoder also reads the image (Qwen2.5-VL)

    @property
    def edits_stills(self) -> bool:
        return self.kind == IMAGE


_SD = Family("SD1.5", working_size=512)
_SD2 = Family("SD2", working_size=512)
_SDXL = Family("SDXL")

FAMILIES: dict[str, Family] = {
    "SD15": _SD, "SD15_instructpix2pix": _SD, "LotusD": _SD2,
    "SD20": _SD2, "SD21UnclipL": _SD2, "SD21UnclipH": _SD2,
    "SDXL": _SDXL, "SDXLRefiner": _SDXL, "SSD1B": _SDXL, "Segmind_Vega": _SDXL, "KOALA_700M": _SDXL,
    "KOALA_1B": _SDXL, "SDXL_instructpix2pix": _SDXL,
    "SD3": Family("SD3"),
    "AuraFlow": Family("AuraFlow"),
    "PixArtAlpha": Family("PixArt"), "PixArtSigma": Family("PixArt"),
    "HunyuanDiT": Family("Hunyuan-DiT"), "HunyuanDiT1": Family("Hunyuan-DiT"),
    "Flux": Family("Flux.1 dev / Kontext", guidance=3.5, edit="optional"),
    "FluxInpaint": Family("Flux.1 Fill", guidance=30.0),
    "FluxSchnell": Family("Flux.1 schnell"),
    "Flux2": Family("Flux.2", guidance=4.0, edit="reference"),
    "Chroma": Family("Chroma"), "ChromaRadiance": Family("Chroma Radiance"),
    "HiDream": Family("HiDream"),
    "Lumina2": Family("Lumina 2"),
    "ZImage": Family("Z-Image"),
    "QwenImage": Family("Qwen-Image / Qwen-Image-Edit", edit="optional", vision_prompt=True),
    "Omnigen2": Family("OmniGen2"),
    "HunyuanImage21": Family("HunyuanImage 2.1"), "HunyuanImage21Refiner": Family("HunyuanImage 2.1 refiner"),
    "CosmosT2IPredict2": Family("Cosmos Predict2 (image)"),
    "StableAudio": Family("Stable Audio", kind=AUDIO), "ACEStep": Family("ACE-Step", kind=AUDIO),
    "Stable_Zero123": Family("Stable Zero123", kind=THREE_D),
    "SV3D_u": Family("SV3D", kind=THREE_D), "SV3D_p": Family("SV3D", kind=THREE_D),
    "SVD_img2vid": Family("Stable Video Diffusion", kind=VIDEO),
    "GenmoMochi": Family("Mochi", kind=VIDEO), "LTXV": Family("LTX-Video", kind=VIDEO),
}
# whole lines of video and 3-D models, by class-name prefix (new variants appear every release)
_PREFIXES = (("WAN2", Family("Wan", kind=VIDEO)), ("HunyuanVideo", Family("HunyuanVideo", kind=VIDEO)),
             ("Cosmos", Family("Cosmos", kind=VIDEO)), ("Hunyuan3D", Family("Hunyuan3D", kind=THREE_D)),
             ("Kandinsky", Family("Kandinsky video", kind=VIDEO)))


def family_of(config_name: str, latent_channels: int, latent_dims: int) -> Family:
    """The family of a ComfyUI model configuration class; unknown classes are judged by their latents."""
    if config_name in FAMILIES:
        return FAMILIES[config_name]
    for prefix, family in _PREFIXES:
        if config_name.startswith(prefix):
            return Family(f"{family.label} ({config_name})", kind=family.kind)
    if latent_dims != 2:
        return Family(config_name, kind=VIDEO if latent_dims == 3 else AUDIO if latent_dims == 1 else THREE_D)
    return Family(config_name, working_size=512 if latent_channels == 4 else 1024)


@dataclass(frozen=True)
class EditMode:
    """The conditioning path chosen for one MODEL."""

    inpaint: bool  # concat conditioning (masked image + mask)
    reference: bool  # the crop as a reference latent, prompts phrased as instructions

    def describe(self) -> str:
        parts = []
        if self.reference:
            parts.append("instruction edit: the crop as reference latent")
        if self.inpaint:
            parts.append("inpainting checkpoint: inpaint conditioning")
        return " + ".join(parts + ["latent noise mask"])




def choose_mode(family: Family, takes_mask: bool, requested: str = "auto") -> EditMode:
    """The path for a model: "inpaint" forces mask-based inpainting, "instruction edit" forces a
    reference latent; "auto" uses references only where every checkpoint of the family is an edit model."""
    if requested not in EDIT_MODES:
        raise ValueError(f"edit_mode must be one of {', '.join(EDIT_MODES)}, got {requested!r}")
    reference = requested == "instruction edit" or (requested == "auto" and family.edit == "reference")
    # a model whose inputs include the mask cannot run without them, whatever the mode
    return EditMode(inpaint=takes_mask, reference=reference)
