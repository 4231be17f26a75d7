"""Nodes that connect CIELR to other packs: scenes from their masks, boxes and SEGS, and the scene's
objects and the plan's regions out as MASK batches and prompts for any inpainting chain."""

from __future__ import annotations

from cielr_core.errors import InputError

from . import inputs
from .base import CIELRNode
from .bridge import BOX_FORMATS, box_list, comfy_progress, mask_batch, masks_tensor, segs_parts, single_image

SCORES_TIP = ("Optional detector scores from 0 to 1, one per object or one for all, separated by commas or new "
              "lines. Empty: 1 for every object.")
SEGMENTER_TIP = ("Optional, from CIELR SAM Loader: each box is segmented into the object's outline. Without it "
                 "the box itself becomes the mask (the scene says which).")


def _photo_parts_labels(image_tip: str, kind: str, parts: tuple, labels_tip: str) -> dict:
    """The inputs Scene From Masks and Scene From Boxes open with: the photo, its masks or boxes (``kind``
    and ``parts``: type and tooltip), and one label per mask or box."""
    return {
        "image": ("IMAGE", {"tooltip": image_tip}),
        kind: parts,
        "labels": ("STRING", {"multiline": True, "default": "object", "tooltip": labels_tip}),
    }


SCORES = ("STRING", {"default": "", "tooltip": SCORES_TIP})


class _SceneFrom(CIELRNode):
    # what the three scene importers share: their outputs and how a scene is made from the parts
    FUNCTION = "make"
    OUTPUTS = (
        ("CIELR_SCENE", "scene",
         "A raw scene (objects with ids, boxes and masks): connect CIELR Build Scene next for relations."),
        ("STRING", "report",
         "What was made: the objects and their ids, and every mask that was dropped (and why)."),
    )

    @classmethod
    def _named(cls, rgb, kind: str, items: list, labels: str, scores: str, segment=None, own_scores=()) -> tuple:
        """The scene of one object per mask or box (``kind``: "mask" or "box", as Part names the field),
        the k-th item with the k-th label and score (typed, else the item's own, else 1)."""
        from cielr_core.scene import Part, split_labels, split_scores

        names = split_labels(labels, len(items), kind)
        values = split_scores(scores, len(items), kind, own=own_scores)
        parts = [Part(names[k], values[k], name=f"{kind} {k + 1}", **{kind: items[k]}) for k in range(len(items))]
        return cls._result(rgb.shape[1], rgb.shape[0], parts, segment=segment)

    @staticmethod
    def _result(width: int, height: int, parts: list, segment=None) -> tuple:
        from cielr_core.scene import scene_from_parts

        imported = scene_from_parts(width, height, parts, segment=segment)
        return (imported.scene, imported.text())


def _same_size(height: int, width: int, rgb, node: str, what: str,
               hint: str = "make them at the image's size, or connect the image they were made from; CIELR never "
                           "resizes masks, so objects stay exactly where they were drawn") -> None:
    h, w = rgb.shape[:2]
    if (h, w) != (height, width):
        verb = "are" if what.endswith("s") and what != "SEGS" else "is"
        raise InputError(f"{node}: the {what} {verb} {width}x{height} but the image is {w}x{h}: {hint}.")


def _segment(segmenter, rgb):
    if segmenter is None:
        return None
    from cielr_core.progress import Progress

    progress = comfy_progress()

    def segment(boxes):
        return segmenter.ready().segment(rgb, boxes, progress=Progress(on_check=progress.on_check))

    return segment


class CIELRSceneFromMasks(_SceneFrom):
    """A raw scene from any segmentation: one object per mask of a MASK batch (SAM2, Florence-2, YOLO, SAM3,
    masks you drew), named by your labels. Object #k is mask k. Empty masks are dropped and reported; soft
    masks count where they are above 0.5. Connect Build Scene next."""

    INPUTS = {
        "required": _photo_parts_labels(
            "The photo the masks were made for (one image, same size).",
            "masks", ("MASK", {"tooltip": "A MASK batch [count, height, width], one object per mask, at the "
                                          "image's size. Object #k is mask k (counted from 1)."}),
            "What each mask shows, in batch order, separated by commas or new lines (e.g. 'sofa, lamp, tv'), or "
            "one label for all masks."),
        "optional": {"scores": SCORES},
    }

    def make(self, image, masks, labels: str, scores: str = ""):
        node = "CIELR Scene From Masks"
        rgb = single_image(image, node)
        batch = mask_batch(masks, node)
        if len(batch) == 0:
            raise InputError(f"{node}: the MASK batch is empty; connect at least one mask")
        _same_size(batch.shape[1], batch.shape[2], rgb, node, "masks")
        return self._named(rgb, "mask", list(batch), labels, scores)


class CIELRSceneFromBoxes(_SceneFrom):
    """A raw scene from boxes without masks: core SAM3 Detect's bboxes (BOUNDING_BOX, with their scores), or a BBOX
    list from Florence-2, a VLM or a detector. Each box is segmented with SAM when CIELR SAM Loader is connected,
    otherwise the box itself is the mask, and each object says which. Object #k is box k."""

    INPUTS = {
        "required": {
            **_photo_parts_labels(
                "The photo the boxes were found in (one image).",
                # one socket for both types: ComfyUI's own union of types (as V3's MultiType writes it)
                "boxes", ("BBOX,BOUNDING_BOX", {
                    "tooltip": "Boxes in pixels, one per object: core SAM3 Detect's bboxes (BOUNDING_BOX: "
                               "{x, y, width, height, score} per box, per image), or a BBOX list [[x0, y0, x1, y1], "
                               "...] (a list per image; arrays and {'bbox': [...]} items are read too)."}),
                "What each box holds, in order, separated by commas or new lines, or one label for all boxes."),
            "box_format": (list(BOX_FORMATS), {
                "default": BOX_FORMATS[0],
                "tooltip": "How the pack that made a BBOX list writes its boxes: corners (x0, y0, x1, y1; most "
                           "packs) or corner plus size (x, y, width, height; e.g. KJNodes). BOUNDING_BOX boxes "
                           "say which themselves."}),
        },
        "optional": {
            "scores": ("STRING", {"default": "", "tooltip": SCORES_TIP + " Boxes that carry their own score "
                                                                        "(core SAM3's) keep it when this is empty."}),
            "segmenter": ("CIELR_SEGMENTER", {"tooltip": SEGMENTER_TIP}),
        },
    }

    def make(self, image, boxes, labels: str, box_format: str, scores: str = "", segmenter=None):
        from cielr_core.scene import box_dicts, is_bounding_box

        node = "CIELR Scene From Boxes"
        rgb = single_image(image, node)
        if is_bounding_box(boxes):
            try:
                found, own = box_dicts(boxes)
            except InputError as e:
                raise InputError(f"{node}: {e}") from None
        else:
            found, own = [tuple(b) for b in box_list(boxes, box_format, node)], []
        if len(found) == 0:
            raise InputError(f"{node}: no boxes came in (the detector found nothing in this image): lower the "
                             "detector's threshold or check what it was asked to find")
        return self._named(rgb, "box", found, labels, scores, segment=_segment(segmenter, rgb), own_scores=own)


class CIELRSceneFromSEGS(_SceneFrom):
    """A raw scene from Impact Pack SEGS (its detectors, MASK to SEGS, SAM detector...): each SEG's mask is
    placed at its crop region, with its label and confidence. Object #k is SEG k. Impact Pack is not needed to
    run this node."""

    INPUTS = {
        "required": {
            "image": ("IMAGE", {"tooltip": "The photo the SEGS were detected in (one image, same size)."}),
            "segs": ("SEGS", {"tooltip": "Impact Pack SEGS: ((height, width), [SEG, ...])."}),
        },
        "optional": {
            "labels": ("STRING", {"multiline": True, "default": "",
                                  "tooltip": "Empty: each SEG's own label. Otherwise one label per SEG (in "
                                             "order) or one for all, separated by commas or new lines."}),
            "segmenter": ("CIELR_SEGMENTER", {"tooltip": "Optional, from CIELR SAM Loader: used only for SEGs "
                                                         "that carry a box and no mask."}),
        },
    }

    def make(self, image, segs, labels: str = "", segmenter=None):
        from cielr_core.scene import split_labels

        node = "CIELR Scene From SEGS"
        rgb = single_image(image, node)
        height, width, parts = segs_parts(segs, node)
        _same_size(height, width, rgb, node, "SEGS")
        if not parts:
            raise InputError(f"{node}: the SEGS hold no SEG (the detector found nothing); lower its threshold")
        if labels.strip():
            for part, label in zip(parts, split_labels(labels, len(parts), "SEG")):
                part.label = label
        return self._result(width, height, parts, segment=_segment(segmenter, rgb))


class CIELRSceneToMasks(CIELRNode):
    """The scene's objects as a MASK batch (one mask per object, in id order) with their labels (one per line)
    and ids (comma-separated), for other packs' nodes. An empty scene gives one empty mask and no labels."""

    FUNCTION = "split"
    OUTPUTS = (
        ("MASK", "masks", "One mask per object, in id order, as a MASK batch [count, height, width]."),
        ("STRING", "labels", "The objects' labels, one per line, in the same order."),
        ("STRING", "ids", "The objects' ids, comma-separated, in the same order (what plans name)."),
    )

    INPUTS = {"required": {
        "scene": ("CIELR_SCENE", {"tooltip": "Any CIELR scene (Perceive, Build Scene, Refine Scene, Scene From "
                                             "Masks...)."}),
    }}

    def split(self, scene):
        objects = sorted(scene.objects, key=lambda o: o.id)
        masks = masks_tensor([o.mask for o in objects], scene.height, scene.width)
        labels = "\n".join(" ".join(o.label.split()) for o in objects)
        return (masks, labels, ", ".join(str(o.id) for o in objects))


class CIELRPlanToMasks(CIELRNode):
    """The plan for your own inpainting chain: per action the mask (exactly where CIELR Inpaint Actions would
    edit), the prompt, the negative prompt and the denoise. Feed the lists to Set Latent Noise Mask +
    KSampler, Inpaint Crop/Stitch or a detailer; composite with the mask (Image Composite Masked) so pixels
    outside it stay exactly as they were."""

    FUNCTION = "regions"
    OUTPUTS = (
        ("MASK", "masks", "One mask per action, as a MASK batch: exactly the blend weight CIELR Inpaint Actions "
                          "uses (grown, then feathered inside the grown edge)."),
        ("MASK", "union", "All actions' masks in one (the largest weight per pixel)."),
        ("STRING", "prompts", "The actions' prompts, one per line."),
        ("STRING", "negatives",
         "The actions' negative prompts, one per line (a remove action adds what it removes)."),
        ("MASK", "mask_list", "The masks as a list: nodes downstream run once per action."),
        ("STRING", "prompt_list", "The prompts as a list (one per action, in the same order as mask_list)."),
        ("STRING", "negative_list", "The negative prompts as a list."),
        ("FLOAT", "denoise_list",
         "Per-action denoise as a list: remove, replace and add 1.0, recolor lower, or the action's strength."),
    )
    OUTPUT_IS_LIST = (False, False, False, False, True, True, True, True)

    INPUTS = {
        "required": {
            "scene": inputs.planned_scene(),
            "plan": inputs.plan(),
            **inputs.region_inputs(),
            **inputs.prompt_inputs("Denoise for recolor actions; an action's own strength overrides it."),
        },
        "optional": {
            "image": ("IMAGE", {"tooltip": "Optional: the photo your chain will edit; checked against the "
                                           "scene's size so the masks fit it."}),
        },
    }

    def regions(self, scene, plan, grow: int, feather: int, negative: str, background_prompt: str,
                recolor_denoise: float, image=None):
        import numpy as np

        from cielr_core.editing import EditSettings, plan_regions

        node = "CIELR Plan To Masks"
        if image is not None:
            _same_size(scene.height, scene.width, single_image(image, node), node, "scene",
                       "connect the image the scene was made from (the masks are made at the scene's size)")
        settings = EditSettings(grow=grow, feather=feather, negative=negative, background_prompt=background_prompt,
                                recolor_denoise=recolor_denoise)
        regions = plan_regions(scene, plan, settings)
        masks = masks_tensor([r.weight for r in regions], scene.height, scene.width)
        union = masks_tensor([np.max(np.stack([r.weight for r in regions]), axis=0)], scene.height, scene.width)
        prompts = [" ".join(r.prompt.split()) for r in regions]
        negatives = [" ".join(r.negative.split()) for r in regions]
        return (masks, union, "\n".join(prompts), "\n".join(negatives), [m[None] for m in masks], prompts,
                negatives, [float(r.denoise) for r in regions])


NODE_CLASS_MAPPINGS = {
    "CIELRSceneFromMasks": CIELRSceneFromMasks,
    "CIELRSceneFromBoxes": CIELRSceneFromBoxes,
    "CIELRSceneFromSEGS": CIELRSceneFromSEGS,
    "CIELRSceneToMasks": CIELRSceneToMasks,
    "CIELRPlanToMasks": CIELRPlanToMasks,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "CIELRSceneFromMasks": "CIELR Scene From Masks",
    "CIELRSceneFromBoxes": "CIELR Scene From Boxes",
    "CIELRSceneFromSEGS": "CIELR Scene From SEGS",
    "CIELRSceneToMasks": "CIELR Scene To Masks",
    "CIELRPlanToMasks": "CIELR Plan To Masks",
}
