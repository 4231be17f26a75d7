"""The structured semantic representation (SSR) of a photo: objects, relations, text, JSON, preview.

Needs only numpy and Pillow.
"""

from .build import build_scene, make_object, merge_objects, scene_from_detections
from .external import Imported, Part, box_dicts, is_bounding_box, scene_from_parts, split_labels, split_scores
from .json_io import scene_from_dict, scene_from_json, scene_to_dict, scene_to_json
from .masks import check_mask, rle_decode, rle_encode
from .model import Relation, Scene, SceneObject, check_same_size
from .preview import render_preview
from .relations import PREDICATES, compute_relations
from .text import SceneView, compact_scene_text, llm_scene_text, scene_to_text
