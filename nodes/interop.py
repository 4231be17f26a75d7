"""Nodes that connect CIELR to other packs: scenes from their masks, boxes and SEGS, and the scene's
objects and the plan's regions out as MASK batches and prompts for any inpainting chain."""

from __future__ import annotations

from comfy_api.latest import io

from cielr_core import settings as S
from cielr_core.errors import InputError

from .base import INTEROP, BBox, BoundingBox, CIELRNode, Scene, Segmenter, Segs, out, socket, widget
from .bridge import box_list, comfy_progress, mask_batch, masks_tensor, segs_parts, single_image
from .inputs import DENOISE, NEGATIVE, REGION, plan_input, planned_scene

SEGMENTER_TIP = ("Optional, from CIELR SAM Loader: each box is segmented into the object's outline. Without it "
                 "the box itself becomes the mask (the scene says which).")


def _photo_parts_labels(image_tip: str, parts: io.Input) -> list:
    """The inputs Scene From Masks and Scene From Boxes open with: the photo, its masks or boxes, and one
    label per mask or box."""
    return [socket(io.Image, "image", image_tip), parts, widget(S.PART_LABELS)]


class _SceneFrom(CIELRNode, stage=INTEROP):
    # what the three scene importers share: their stage, outputs and how a scene is made from the parts
    OUTPUTS = (
        out(Scene, "scene", "A raw scene (objects with ids, boxes and masks): connect CIELR Build Scene next for "
                            "relations."),
        out(io.String, "report", "What was made: the objects and their ids, and every mask that was dropped (and "
                                 "why)."),
    )

    @classmethod
    def _named(cls, rgb, kind: str, items: list, labels: str, scores: str, segment=None,
               own_scores=()) -> io.NodeOutput:
        """The scene of one object per mask or box (``kind``: "mask" or "box", as Part names the field),
        the k-th item with the k-th label and score (typed, else the item's own, else 1)."""
        from cielr_core.scene import Part, split_labels, split_scores

        names = split_labels(labels, len(items), kind)
        values = split_scores(scores, len(items), kind, own=own_scores)
        parts = [Part(names[k], values[k], name=f"{kind} {k + 1}", **{kind: items[k]}) for k in range(len(items))]
        return cls._result(rgb.shape[1], rgb.shape[0], parts, segment=segment)

    @staticmethod
    def _result(width: int, height: int, parts: list, segment=None) -> io.NodeOutput:
        from cielr_core.scene import scene_from_parts

        imported = scene_from_parts(width, height, parts, segment=segment)
        return io.NodeOutput(imported.scene, imported.text())


def _same_size(height: int, width: int, rgb, node: str, what: str,
               hint: str = "make them at the image's size, or connect the image they were made from; CIELR never "
                           "resizes masks, so objects stay exactly where they were drawn") -> None:
    h, w = rgb.shape[:2]
    if (h, w) != (height, width):
        verb = "are" if what.endswith("s") and what != "SEGS" else "is"
        raise InputError(f"{node}: the {what} {verb} {width}x{height} but the image is {w}x{h}: {hint}.")


def _segment(segmenter, rgb):
    """The boxes-to-masks seam for scene_from_parts (None without a segmenter); cancel is checked."""
    if segmenter is None:
        return None
    from cielr_core.progress import Progress

    progress = comfy_progress()

    def segment(boxes):
        return segmenter.segment(rgb, boxes, progress=Progress(on_check=progress.on_check))

    return segment


class CIELRSceneFromMasks(_SceneFrom, title="CIELR Scene From Masks",
                          aliases=("masks to scene", "import masks", "sam2 masks", "mask batch to objects")):
    """A raw scene from any segmentation: one object per mask of a MASK batch (SAM2, Florence-2, YOLO, SAM3,
    masks you drew), named by your labels. Object #k is mask k. Empty masks are dropped and reported; soft
    masks count where they are above 0.5. Connect Build Scene next."""


    INPUTS = (*_photo_parts_labels(
          "The photo the masks were made for (one image, same size).",
          socket(io.Mask, "masks", "A MASK batch [count, height, width], one object per mask, at the image's "
                                   "size. Object #k is mask k (counted from 1).")),
          widget(S.SCORES, optional=True))

    @classmethod
    def execute(cls, image, masks, labels: str, scores: str = "") -> io.NodeOutput:
        rgb = single_image(image, cls.TITLE)
        batch = mask_batch(masks, cls.TITLE)
        if len(batch) == 0:
            raise InputError(f"{cls.TITLE}: the MASK batch is empty; connect at least one mask")
        _same_size(batch.shape[1], batch.shape[2], rgb, cls.TITLE, "masks")
        return cls._named(rgb, "mask", list(batch), labels, scores)


class CIELRSceneFromBoxes(_SceneFrom, title="CIELR Scene From Boxes",
                          aliases=("boxes to scene", "bbox to scene", "import boxes", "florence2 boxes", "sam3 boxes")):
    """A raw scene from boxes without masks: core SAM3 Detect's bboxes (BOUNDING_BOX, with their scores), or a BBOX
    list from Florence-2, a VLM or a detector. Each box is segmented with SAM when CIELR SAM Loader is connected,
    otherwise the box itself is the mask, and each object says which. Object #k is box k."""

    INPUTS = (*_photo_parts_labels(
          "The photo the boxes were found in (one image).",
          # one socket for both types: ComfyUI's own union of types ("BBOX,BOUNDING_BOX")
          io.MultiType.Input("boxes", types=[BBox, BoundingBox], tooltip=(
              "Boxes in pixels, one per object: core SAM3 Detect's bboxes (BOUNDING_BOX: {x, y, width, height, "
              "score} per box, per image), or a BBOX list [[x0, y0, x1, y1], ...] (a list per image; arrays and "
              "{'bbox': [...]} items are read too)."))),
          widget(S.BOX_FORMAT),
          widget(S.SCORES, optional=True),
          socket(Segmenter, "segmenter", SEGMENTER_TIP, optional=True))

    @classmethod
    def execute(cls, image, boxes, labels: str, box_format: str, scores: str = "", segmenter=None) -> io.NodeOutput:
        from cielr_core.scene import box_dicts, is_bounding_box

        rgb = single_image(image, cls.TITLE)
        if is_bounding_box(boxes):
            try:
                found, own = box_dicts(boxes)
            except InputError as e:
                raise InputError(f"{cls.TITLE}: {e}") from None
        else:
            found, own = [tuple(b) for b in box_list(boxes, box_format, cls.TITLE)], []
        if len(found) == 0:
            raise InputError(f"{cls.TITLE}: no boxes came in (the detector found nothing in this image): lower the "
                             "detector's threshold or check what it was asked to find")
        return cls._named(rgb, "box", found, labels, scores, segment=_segment(segmenter, rgb), own_scores=own)


class CIELRSceneFromSEGS(_SceneFrom, title="CIELR Scene From SEGS",
                         aliases=("segs to scene", "impact pack", "import segs", "detailer segs")):
    """A raw scene from Impact Pack SEGS (its detectors, MASK to SEGS, SAM detector...): each SEG's mask is
    placed at its crop region, with its label and confidence. Object #k is SEG k. Impact Pack is not needed to
    run this node."""


    INPUTS = (
        socket(io.Image, "image", "The photo the SEGS were detected in (one image, same size)."),
        socket(Segs, "segs", "Impact Pack SEGS: ((height, width), [SEG, ...])."),
        widget(S.SEG_LABELS, optional=True),
        socket(Segmenter, "segmenter", "Optional, from CIELR SAM Loader: used only for SEGs that carry a box "
                                       "and no mask.", optional=True),
    )

    @classmethod
    def execute(cls, image, segs, labels: str = "", segmenter=None) -> io.NodeOutput:
        from cielr_core.scene import split_labels

        rgb = single_image(image, cls.TITLE)
        height, width, parts = segs_parts(segs, cls.TITLE)
        _same_size(height, width, rgb, cls.TITLE, "SEGS")
        if not parts:
            raise InputError(f"{cls.TITLE}: the SEGS hold no SEG (the detector found nothing); lower its threshold")
        if labels.strip():
            for part, label in zip(parts, split_labels(labels, len(parts), "SEG")):
                part.label = label
        return cls._result(width, height, parts, segment=_segment(segmenter, rgb))


class CIELRSceneToMasks(CIELRNode, title="CIELR Scene To Masks", stage=INTEROP,
                        aliases=("scene to masks", "export masks", "object masks")):
    """The scene's objects as a MASK batch (one mask per object, in id order) with their labels (one per line)
    and ids (comma-separated), for other packs' nodes. An empty scene gives one empty mask and no labels."""

    OUTPUTS = (
        out(io.Mask, "masks", "One mask per object, in id order, as a MASK batch [count, height, width]."),
        out(io.String, "labels", "The objects' labels, one per line, in the same order."),
        out(io.String, "ids", "The objects' ids, comma-separated, in the same order (what plans name)."),
    )

    INPUTS = (socket(Scene, "scene", "Any CIELR scene (Perceive, Build Scene, Refine Scene, Scene From Masks...)."),)

    @classmethod
    def execute(cls, scene) -> io.NodeOutput:
        objects = sorted(scene.objects, key=lambda o: o.id)
        masks = masks_tensor([o.mask for o in objects], scene.height, scene.width)
        labels = "\n".join(" ".join(o.label.split()) for o in objects)
        return io.NodeOutput(masks, labels, ", ".join(str(o.id) for o in objects))


class CIELRPlanToMasks(CIELRNode, title="CIELR Plan To Masks", stage=INTEROP,
                       aliases=("plan to masks", "masks and prompts", "inpaint crop stitch", "detailer masks")):
    """The plan for your own inpainting chain: per action the mask (exactly where CIELR Inpaint Actions would
    edit), the prompt, the negative prompt and the denoise. Feed the lists to Set Latent Noise Mask +
    KSampler, Inpaint Crop/Stitch or a detailer; composite with the mask (Image Composite Masked) so pixels
    outside it stay exactly as they were."""

    OUTPUTS = (
        out(io.Mask, "masks", f"One mask per action, as a MASK batch: {REGION}."),
        out(io.Mask, "union", "All actions' masks in one (the largest weight per pixel)."),
        out(io.String, "prompts", "The actions' prompts, one per line."),
        out(io.String, "negatives", f"The actions' negative prompts, one per line ({NEGATIVE})."),
        out(io.Mask, "mask_list", "The masks as a list: nodes downstream run once per action.", is_list=True),
        out(io.String, "prompt_list", "The prompts as a list (one per action, in the same order as mask_list).",
            is_list=True),
        out(io.String, "negative_list", "The negative prompts as a list.", is_list=True),
        out(io.Float, "denoise_list", f"Per-action denoise as a list: {DENOISE}.", is_list=True),
    )

    INPUTS = (planned_scene(), plan_input(), widget(S.GROW), widget(S.FEATHER), widget(S.NEGATIVE),
              widget(S.BACKGROUND_PROMPT), widget(S.RECOLOR_DENOISE),
              socket(io.Image, "image", "Optional: the photo your chain will edit; checked against the scene's "
                                        "size so the masks fit it.", optional=True))

    @classmethod
    def execute(cls, scene, plan, image=None, **values) -> io.NodeOutput:
        import numpy as np

        from cielr_core.editing import EditSettings, plan_regions

        if image is not None:
            _same_size(scene.height, scene.width, single_image(image, cls.TITLE), cls.TITLE, "scene",
                       "connect the image the scene was made from (the masks are made at the scene's size)")
        regions = plan_regions(scene, plan, EditSettings.of(values))
        masks = masks_tensor([r.weight for r in regions], scene.height, scene.width)
        union = masks_tensor([np.max(np.stack([r.weight for r in regions]), axis=0)], scene.height, scene.width)
        prompts = [" ".join(r.prompt.split()) for r in regions]
        negatives = [" ".join(r.negative.split()) for r in regions]
        return io.NodeOutput(masks, union, "\n".join(prompts), "\n".join(negatives), [m[None] for m in masks],
                             prompts, negatives, [float(r.denoise) for r in regions])


NODES = (CIELRSceneFromMasks, CIELRSceneFromBoxes, CIELRSceneFromSEGS, CIELRSceneToMasks, CIELRPlanToMasks)
