"""Open-vocabulary box detection with GroundingDINO.

Both model sources run on transformers' ``GroundingDinoForObjectDetection``:

- a released checkpoint (``groundingdino_swint_ogc.pth``, ``groundingdino_swinb_cogcoor.pth``,
  or another size with a JSON config beside it), converted to transformers' layout in memory
  (``gdino_convert``), with groundingdino's preprocessing and the text encoder's config and
  vocabulary from a local ``bert-base-uncased`` folder;
- a Hugging Face format folder (``config.json`` with ``model_type: grounding-dino``) with its own
  processor.

Labels are packed into as few captions ("cup . table . tv .") as the 256-token text limit
allows, so the cost grows with the number of forward passes, not with the number of labels.

    detector = load_grounding_dino("groundingdino_swint_ogc.pth", text_encoder="bert-base-uncased/")
    found = detector.detect(image, ["cup", "table"])
"""

from __future__ import annotations

import json
import math
import pickle
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, InputError
from ..images import to_rgb_uint8
from ..labels import clean_labels
from ..progress import NO_PROGRESS, Progress
from ..settings import BOX_THRESHOLD, TEXT_THRESHOLD
from ..weights import load_checkpoint, state_dict_of, strip_prefix, unsafe_pickle
from . import gdino_configs, gdino_convert
from .detections import Detections

# Held by both released checkpoints but used by no module of the model.
KNOWN_EXTRA_KEYS = ("label_enc.weight", "bert.embeddings.position_ids")
EXPECTED_FILE = ("a GroundingDINO checkpoint (groundingdino_swint_ogc.pth or groundingdino_swinb_cogcoor.pth "
                 "from https://github.com/IDEA-Research/GroundingDINO/releases, or another size with a JSON "
                 "config beside it)")
EXPECTED_TEXT_ENCODER = ("a bert-base-uncased folder with config.json and vocab.txt or tokenizer.json "
                         "(https://huggingface.co/bert-base-uncased)")
NMS_IOU = 0.5
MAX_DETECTIONS = 100
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_SEPARATORS = re.compile(r"[.?]")  # GroundingDINO treats these as phrase boundaries


# --- labels and captions --------------------------------------------------------------------


def caption_text(label: str) -> str:
    """The label as written into a caption: separators inside it would split it in two."""
    return " ".join(_SEPARATORS.sub(" ", label).split())


@dataclass(frozen=True)
class Caption:
    """One forward pass: the caption text and, per label, the character span it occupies."""

    text: str
    labels: tuple[str, ...]
    char_spans: tuple[tuple[int, int], ...]


def make_caption(labels: Sequence[str]) -> Caption:
    """``["cup", "tv"]`` -> ``"cup . tv ."`` with the span of each label in it."""
    parts, spans, pos = [], [], 0
    for label in labels:
        text = caption_text(label)
        spans.append((pos, pos + len(text)))
        parts.append(text + " .")
        pos += len(text) + 3
    return Caption(" ".join(parts), tuple(labels), tuple(spans))


def pack_captions(labels: Sequence[str], count_tokens: Callable[[str], int],
                  max_tokens: int) -> list[Caption]:
    """Greedily fill captions up to ``max_tokens`` ([CLS] label . label . [SEP]); order is kept."""
    groups: list[list[str]] = []
    used = 0
    for label in labels:
        cost = count_tokens(caption_text(label)) + 1  # the label and its " ."
        if not groups or used + cost > max_tokens:
            groups.append([])  # a label longer than the limit alone gets its own, cut, caption
            used = 2  # [CLS] and [SEP]
        groups[-1].append(label)
        used += cost
    return [make_caption(g) for g in groups if g]


def token_spans(tokenizer: Any, caption: Caption, max_tokens: int) -> list[list[int]]:
    """Token indices of each label in the tokenized caption, cut at the model's text limit."""
    enc = tokenizer(caption.text, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    ids = enc["input_ids"]
    spans = []
    for start, end in caption.char_spans:
        idx = [i for i, (a, b) in enumerate(offsets)
               if b > a and a >= start and b <= end and i < min(max_tokens, len(ids))]
        spans.append(idx)
    return spans


# --- from model outputs to detections (shared by both model sources) ------------------------


def detections_from_logits(logits: torch.Tensor, boxes: torch.Tensor, spans: Sequence[Sequence[int]],
                           labels: Sequence[str], box_threshold: float, text_threshold: float,
                           window: tuple[int, int, int, int]) -> Detections:
    """Per-query token logits + normalised cxcywh boxes -> labelled pixel boxes (before NMS).

    A query's score for a label is the largest sigmoid over that label's tokens; it takes its best
    label, and is kept when that score exceeds ``text_threshold`` and its largest token sigmoid
    exceeds ``box_threshold`` (GroundingDINO's usual rule). ``window`` is the (x0, y0, x1, y1) pixel
    crop of the full image the model saw; boxes come back in full-image pixels, clipped to it.
    """
    probs = logits.float().sigmoid()  # Q x T; padded tokens are -inf -> 0
    keep_spans = [(i, list(s)) for i, s in enumerate(spans) if len(s)]
    if not keep_spans or probs.numel() == 0:
        return Detections.empty()
    per_label = torch.stack([probs[:, s].max(dim=1).values for _, s in keep_spans], dim=1)  # Q x L
    best, which = per_label.max(dim=1)
    keep = (best > text_threshold) & (probs.max(dim=1).values > box_threshold)
    if not bool(keep.any()):
        return Detections.empty()
    x0, y0, x1, y1 = window
    cw, ch = x1 - x0, y1 - y0
    cx, cy, w, h = boxes[keep].float().unbind(-1)
    xyxy = torch.stack([(cx - w / 2) * cw + x0, (cy - h / 2) * ch + y0,
                        (cx + w / 2) * cw + x0, (cy + h / 2) * ch + y0], dim=-1)
    xyxy[:, 0::2] = xyxy[:, 0::2].clamp(x0, x1)
    xyxy[:, 1::2] = xyxy[:, 1::2].clamp(y0, y1)
    real = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # clipping can leave nothing
    names = [labels[keep_spans[j][0]] for j in which[keep][real].tolist()]
    return Detections(xyxy[real].cpu().numpy(), best[keep][real].cpu().numpy(), names)


def suppress(found: Sequence[Detections], label_order: Sequence[str], iou: float,
             max_detections: int) -> Detections:
    """Per-label NMS over all passes, then the ``max_detections`` best by score."""
    from torchvision.ops import batched_nms

    found = [d for d in found if len(d)]
    if not found:
        return Detections.empty()
    boxes = torch.from_numpy(np.concatenate([d.boxes for d in found]))
    scores = torch.from_numpy(np.concatenate([d.scores for d in found]))
    names = [n for d in found for n in d.labels]
    index = {label: i for i, label in enumerate(label_order)}
    groups = torch.tensor([index[n] for n in names], dtype=torch.long)
    keep = batched_nms(boxes, scores, groups, iou)[:max_detections]  # sorted by score
    kept = keep.tolist()
    return Detections(boxes[keep].numpy(), scores[keep].numpy(), [names[i] for i in kept])


def crop_window(within: Sequence[float] | None, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Integer pixel window for ``within`` (whole image when None); None when it covers nothing."""
    if within is None:
        return 0, 0, width, height
    try:
        x0, y0, x1, y1 = (float(v) for v in within)
    except (TypeError, ValueError):
        raise InputError(f"within must be a box (x0, y0, x1, y1) in pixels, got {within!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise InputError(f"within must hold finite numbers, got {within!r}")
    bx0, by0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    bx1, by1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if bx1 <= bx0 or by1 <= by0:
        return None
    return bx0, by0, bx1, by1


# --- the detector ---------------------------------------------------------------------------


class Detector:
    """A loaded GroundingDINO. ``model`` is the torch module (for memory management).

    ``short_side``/``long_side`` set the size the image is scaled to (GroundingDINO's 800/1333 by
    default; smaller is faster and coarser). HF-format folders use their own processor's size.
    """

    short_side = 800
    long_side = 1333

    def __init__(self, model: torch.nn.Module, tokenizer: Any, max_text_len: int, name: str):
        self.model = model
        self.tokenizer = tokenizer
        self.max_text_len = int(max_text_len)
        self.name = name

    @property
    def device(self) -> torch.device:
        """Where the weights are now (read from them: a memory manager may have moved them)."""
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> "Detector":
        self.model.to(device)
        return self

    def captions(self, labels: Iterable[str]) -> list[Caption]:
        """The forward passes ``detect`` would run for these labels (for progress totals)."""
        return pack_captions(clean_labels(labels), self._count_tokens, self.max_text_len)

    def detect(self, image: np.ndarray, labels: Iterable[str], box_threshold: float = BOX_THRESHOLD.default,
               text_threshold: float = TEXT_THRESHOLD.default, within: Sequence[float] | None = None,
               progress: Progress = NO_PROGRESS, max_detections: int = MAX_DETECTIONS,
               nms_iou: float = NMS_IOU) -> Detections:
        """Boxes for ``labels`` in pixels of ``image``, each with one of the (cleaned) labels.

        ``image``: anything ``to_rgb_uint8`` accepts. ``labels`` go through
        ``labels.clean_labels``; with none left the model does not run. ``within``: an (x0, y0, x1,
        y1) box; detection runs on that crop (parts of an object) and boxes stay inside it. ``progress``
        advances once per forward pass (``len(self.captions(labels))`` of them) and may cancel
        between passes. Per-label NMS at ``nms_iou``, then the ``max_detections`` best by score.
        """
        box_threshold = BOX_THRESHOLD.check(float(box_threshold))
        text_threshold = TEXT_THRESHOLD.check(float(text_threshold))
        captions = self.captions(labels)
        rgb = to_rgb_uint8(image)
        height, width = rgb.shape[:2]
        window = crop_window(within, width, height)
        if not captions or window is None or max_detections < 1:
            return Detections.empty()
        x0, y0, x1, y1 = window
        crop = rgb[y0:y1, x0:x1]
        pixels = self._prepare_image(crop)
        found = []
        for i, caption in enumerate(captions):
            if i:
                progress.check()
            logits, boxes = self._forward(pixels, caption)
            spans = token_spans(self.tokenizer, caption, self.max_text_len)
            found.append(detections_from_logits(logits, boxes, spans, caption.labels, box_threshold,
                                                text_threshold, window))
            progress.advance()
        order = [label for c in captions for label in c.labels]
        return suppress(found, order, nms_iou, max_detections)

    def _count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # Each model source turns the crop into model inputs and runs one caption.
    def _prepare_image(self, rgb: np.ndarray) -> Any:
        raise NotImplementedError

    def _forward(self, pixels: Any, caption: Caption) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class GroundingDinoDetector(Detector):
    """transformers' GroundingDINO built from a released checkpoint, fed as groundingdino feeds it."""

    def _prepare_image(self, rgb: np.ndarray) -> dict[str, torch.Tensor]:
        return {"pixel_values": gdino_image_tensor(rgb, self.short_side, self.long_side)[None]}

    def _forward(self, pixels: dict[str, torch.Tensor],
                 caption: Caption) -> tuple[torch.Tensor, torch.Tensor]:
        text = self.tokenizer([caption.text], return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in {**pixels, **text}.items()}
        with torch.inference_mode():
            out = self.model(**inputs)
        return out.logits[0], out.pred_boxes[0]


class HFGroundingDinoDetector(GroundingDinoDetector):
    """transformers' GroundingDinoForObjectDetection from an HF-format folder, with its processor."""

    def __init__(self, model: torch.nn.Module, processor: Any, name: str):
        super().__init__(model, processor.tokenizer, model.config.max_text_len, name)
        self.processor = processor

    def _prepare_image(self, rgb: np.ndarray) -> dict[str, torch.Tensor]:
        from PIL import Image

        return dict(self.processor.image_processor(images=Image.fromarray(rgb), return_tensors="pt"))


def resized_shape(width: int, height: int, short_side: int = 800, long_side: int = 1333) -> tuple[int, int]:
    """(height, width) groundingdino scales an image to: short side ``short_side`` unless the long
    side would pass ``long_side`` (then the short side shrinks, rounded as groundingdino rounds)."""
    size = short_side
    low, high = float(min(width, height)), float(max(width, height))
    if high / low * size > long_side:
        size = round(long_side * low / high)
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def gdino_image_tensor(rgb: np.ndarray, short_side: int = 800, long_side: int = 1333) -> torch.Tensor:
    """groundingdino's inference transform: short side 800 (long side at most 1333), ImageNet norm."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    image = Image.fromarray(rgb)
    image = TF.resize(image, list(resized_shape(image.width, image.height, short_side, long_side)))
    return TF.normalize(TF.to_tensor(image), list(_IMAGENET_MEAN), list(_IMAGENET_STD))


# --- loading --------------------------------------------------------------------------------


def load_grounding_dino(weights: str | Path, text_encoder: str | Path | None = None,
                        device: str | torch.device = "cpu") -> Detector:
    """A detector from a checkpoint file (+ its bert-base-uncased folder) or an HF-format folder."""
    path = Path(weights).expanduser()
    if path.is_dir():
        return load_hf_folder(path, device)
    if not path.is_file():
        raise CheckpointError(path, "the file does not exist", EXPECTED_FILE)
    if text_encoder is None:
        raise InputError(
            f"{path.name} needs its text encoder: pass text_encoder= {EXPECTED_TEXT_ENCODER}. In ComfyUI "
            "put that folder into models/bert-base-uncased and pick it in the loader node.")
    bert_folder = check_text_encoder(text_encoder)
    sd = read_state_dict(path)
    name, cfg = architecture_of(sd, path)
    text_config = check_text_encoder_fits(sd, bert_folder)
    tokenizer = load_tokenizer(bert_folder)
    model = build_model(cfg, text_config, path, name)
    gdino_convert.load_converted(model, sd, path, name, cfg["return_interm_indices"])
    del sd
    return GroundingDinoDetector(model.eval(), tokenizer, cfg["max_text_len"], name).to(device)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict: container unwrapped, ``module.`` removed, known extras dropped."""
    sd = state_dict_of(load_checkpoint(path, EXPECTED_FILE), path, EXPECTED_FILE)
    sd = strip_prefix(sd, "module.")
    for key in KNOWN_EXTRA_KEYS:
        sd.pop(key, None)
    return sd


def architecture_of(sd: dict[str, Any], path: Path) -> tuple[str, dict[str, Any]]:
    """(name, config) from a JSON config beside the file, else from the built-in table."""
    json_path = gdino_configs.json_config_path(path)
    sig = gdino_configs.signature(sd)
    if json_path is not None:
        cfg = gdino_configs.read_json_config(json_path)
        expected = gdino_configs.config_signature(cfg)
        diff = {k: (sig.get(k) if sig else None, v) for k, v in expected.items()
                if not sig or sig.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: file {a} vs config {b}" for k, (a, b) in list(diff.items())[:4])
            raise CheckpointError(path, f"its shapes do not match the JSON config {json_path.name} "
                                  f"({detail})",
                                  "weights built with that config")
        return f"JSON config {json_path.name}", cfg
    found = gdino_configs.recognise(sd)
    if found is None:
        raise CheckpointError(
            path, f"its architecture is not one this loader knows ({gdino_configs.describe(sig)})",
            f"one of the known architectures: {gdino_configs.known_architectures()}. "
            + gdino_configs.JSON_HINT)
    return found


def check_text_encoder(folder: str | Path) -> Path:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise CheckpointError(path, "it is not a folder", EXPECTED_TEXT_ENCODER)
    if not (path / "config.json").is_file():
        raise CheckpointError(path, "it has no config.json", EXPECTED_TEXT_ENCODER)
    if not ((path / "vocab.txt").is_file() or (path / "tokenizer.json").is_file()):
        raise CheckpointError(path, "it has no vocab.txt or tokenizer.json", EXPECTED_TEXT_ENCODER)
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as e:
        raise CheckpointError(path, f"its config.json is unreadable ({e})", EXPECTED_TEXT_ENCODER) from None
    if model_type != "bert":
        raise CheckpointError(path, f"its config.json describes a {model_type!r} model",
                              EXPECTED_TEXT_ENCODER)
    return path


def check_text_encoder_fits(sd: dict[str, Any], folder: Path) -> Any:
    """The folder's BertConfig, which must have the sizes the checkpoint's bert.* tensors have."""
    from transformers import BertConfig

    config = BertConfig.from_pretrained(str(folder), local_files_only=True)
    emb = sd.get("bert.embeddings.word_embeddings.weight")
    if emb is not None and tuple(emb.shape) != (config.vocab_size, config.hidden_size):
        raise CheckpointError(
            folder, f"its config (vocab {config.vocab_size}, hidden size {config.hidden_size}) does not fit "
            f"the checkpoint's text encoder (vocab {emb.shape[0]}, hidden size {emb.shape[1]})",
            EXPECTED_TEXT_ENCODER)
    return config


def load_tokenizer(folder: Path) -> Any:
    """The text encoder's tokenizer from its local folder (never downloaded)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise CheckpointError(folder, f"its tokenizer could not be read ({str(e).splitlines()[0][:300]})",
                              EXPECTED_TEXT_ENCODER) from None
    gdino_convert.check_special_tokens(tokenizer, folder, EXPECTED_TEXT_ENCODER)
    return tokenizer


def build_model(cfg: dict[str, Any], text_config: Any, path: Path, name: str) -> torch.nn.Module:
    """transformers' GroundingDINO (random weights until loaded) for a groundingdino config dict."""
    from transformers import GroundingDinoForObjectDetection

    problems = gdino_convert.unsupported(cfg)
    if problems:
        raise CheckpointError(path, f"its config ({name}) asks for {', '.join(problems)}, which "
                                    "transformers' GroundingDINO does not implement",
                              "a GroundingDINO with the released checkpoints' options (Swin backbone, "
                              "standard two-stage, text enhancer, fusion and text cross-attention)")
    try:
        return GroundingDinoForObjectDetection(
            gdino_convert.hf_config(cfg, text_config, gdino_configs.swin_params(cfg)))
    except (ValueError, TypeError) as e:  # sizes transformers' config validation rejects
        raise CheckpointError(path, f"transformers cannot build its architecture ({name}: "
                                    f"{str(e).splitlines()[0][:300]})",
                              "a GroundingDINO architecture transformers can build") from None


def load_hf_folder(folder: Path, device: str | torch.device = "cpu") -> Detector:
    """transformers' GroundingDINO (model + processor) from a local HF-format folder."""
    expected = ("a Hugging Face GroundingDINO folder (config.json with model_type grounding-dino, weights, "
                "processor files)")
    config_path = folder / "config.json"
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as e:
        raise CheckpointError(folder, f"no readable config.json ({type(e).__name__})", expected) from None
    if model_type != "grounding-dino":
        raise CheckpointError(folder, f"its config.json describes a {model_type!r} model", expected)
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    try:
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        model = GroundingDinoForObjectDetection.from_pretrained(str(folder), local_files_only=True)
    except pickle.UnpicklingError as e:  # transformers reads .bin weights with weights_only=True
        raise CheckpointError(folder, f"a weights file in it was {unsafe_pickle(e)}", expected) from None
    except (OSError, ValueError) as e:
        raise CheckpointError(folder, f"transformers could not load it ({str(e).splitlines()[0][:300]})",
                              expected) from None
    return HFGroundingDinoDetector(model.eval(), processor, f"HF folder {folder.name}").to(device)
