"""The shipped workflows, described as graphs; scripts/build_workflows.py turns each into the UI
format with ComfyUI's own frontend, so widget order and link layout are exactly what it saves.

A node: (key, type, [x, y], {widget: value}, title or None, [width, height] or None). A link: (from key, output index,
to key, input name). Groups: (title, [x, y, w, h], colour). Notes are Note nodes with text.
"""

from __future__ import annotations

# The example photo (a CIEBench sample whose instruction is the one below). It ships beside the workflows;
# copy it into ComfyUI/input to run them as they are.
PHOTO = "cielr_example_photo.jpg"
PHOTO_SOURCE = ("ciebench-dev", "0", "0.png")  # under tests/data
COMFY_EXAMPLE = "example.png"  # ComfyUI ships input/example.png

# Model files a workflow's widgets name: file name -> (direct download URL, ComfyUI model folder). Each is
# declared on the node whose widget names it, so ComfyUI offers the absent ones for download. Only files
# the server lists count as present (.pth, .safetensors, ...): a .gguf file is never listed, so it is left
# out (it would be reported missing for ever); the Read me note names it.
MODELS = {
    "groundingdino_swint_ogc.pth": (("https://huggingface.co/ShilongLiu/GroundingDINO/resolve/main/"
                                     "groundingdino_swint_ogc.pth"), "grounding-dino"),
    "sam_vit_b_01ec64.pth": (("https://huggingface.co/ybelkada/segment-anything/resolve/main/checkpoints/"
                              "sam_vit_b_01ec64.pth"), "sams"),
}
# Model folders a widget names: folder -> the files ComfyUI can see in it, declared at the workflow's top
# level (the widget holds the folder's name, not the file's). The bert folder's other files (config.json,
# vocab.txt, tokenizer.json, tokenizer_config.json) are not model files to ComfyUI: the README links them.
BERT = "https://huggingface.co/google-bert/bert-base-uncased/resolve/main/"
MODEL_FOLDERS = {"bert-base-uncased": [("model.safetensors", BERT + "model.safetensors", "bert-base-uncased")]}
THUMBNAIL_SCALE = 0.75  # the canvas zoom of the thumbnails: titles and widgets are drawn from about 0.57 up

BLUE, GREEN, PURPLE, ORANGE = "#3f789e", "#3f8e5e", "#7a5fa0", "#a1683f"

PERCEPTION_NODES = [
    ("image", "LoadImage", [40, 100], {"image": PHOTO}, None, [340, 380]),
    ("gdino", "CIELRGroundingDINOLoader", [40, 540],
     {"model_name": "groundingdino_swint_ogc.pth", "text_encoder": "bert-base-uncased", "device": "auto"}, None,
     [340, 130]),
    ("sam", "CIELRSAMLoader", [40, 720], {"model_name": "sam_vit_b_01ec64.pth", "device": "auto"}, None,
     [340, 110]),
    ("perceive", "CIELRPerceive", [460, 100],
     {"labels": "tv, speaker, lamp, sofa, table", "box_threshold": 0.3, "text_threshold": 0.25}, None,
     [360, 260]),
    ("build", "CIELRBuildScene", [880, 100], {}, None, [260, 110]),
]
PERCEPTION_LINKS = [
    ("image", 0, "perceive", "image"), ("gdino", 0, "perceive", "detector"), ("sam", 0, "perceive", "segmenter"),
    ("image", 0, "build", "image"), ("perceive", 0, "build", "scene"),
]

WORKFLOWS = {
    "cielr_perception": {
        "nodes": PERCEPTION_NODES + [
            ("scene_json", "PreviewAny", [1220, 100], {}, "Scene JSON", [360, 260]),
            ("preview", "PreviewImage", [1220, 420], {}, "Scene overlay", [360, 380]),
            ("note", "Note", [460, 540], {"text": (
                "CIELR perception: GroundingDINO finds every instance of each label, SAM segments it, "
                "Build Scene adds relations (left of, on top of, inside, nearest...).\n\n"
                "Models: models/grounding-dino/groundingdino_swint_ogc.pth, models/bert-base-uncased/ "
                "(the Hugging Face folder), models/sams/sam_vit_b_01ec64.pth. Optional: connect a depth "
                "map (bright = near) to Build Scene for in front of / behind. Download links: the pack's "
                "README.\n\nThe photo: example_workflows/cielr_example_photo.jpg in the pack's folder; copy it "
                "into ComfyUI/input, or load your own.")}, "Read me", [680, 200]),
        ],
        "links": PERCEPTION_LINKS + [("build", 1, "scene_json", "source"), ("build", 2, "preview", "images")],
        "groups": [("Input and models", [20, 20, 380, 840], BLUE), ("Perception", [440, 20, 720, 380], GREEN),
                   ("Results", [1200, 20, 400, 820], PURPLE)],
    },
}

INSTRUCTION = ("Many people like to watch movies on TV, but the sound from the TV itself may not be loud enough. "
               "What device in the picture can enhance the sound from the TV? Replace it with a floor lamp.")
MODELS.update({
    "v1-5-pruned-emaonly-fp16.safetensors": (
        "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
        "v1-5-pruned-emaonly-fp16.safetensors", "checkpoints"),
    "512-inpainting-ema.safetensors": (
        "https://huggingface.co/stabilityai/stable-diffusion-2-inpainting/resolve/main/"
        "512-inpainting-ema.safetensors", "checkpoints"),
})
SAMPLER = {"seed": 0, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal"}


def _edit_graph(llm_node: tuple, checkpoint: str, note: str, verify: bool = False) -> dict:
    """The whole CIELR graph: perception, refinement, decomposition, inpainting, with previews; with
    ``verify``, best of 3 per action and a second look at the result (Verify Edit)."""
    nodes = [
        ("image", "LoadImage", [40, 100], {"image": PHOTO}, None, [340, 380]),
        ("instruction", "PrimitiveStringMultiline", [40, 520], {"value": INSTRUCTION}, "Instruction", [340, 160]),
        llm_node,
        ("gdino", "CIELRGroundingDINOLoader", [40, 980],
         {"model_name": "groundingdino_swint_ogc.pth", "text_encoder": "bert-base-uncased", "device": "auto"}, None,
         [340, 130]),
        ("sam", "CIELRSAMLoader", [40, 1150], {"model_name": "sam_vit_b_01ec64.pth", "device": "auto"}, None,
         [340, 110]),
        ("ckpt", "CheckpointLoaderSimple", [40, 1300], {"ckpt_name": checkpoint}, None, [340, 100]),
        ("labels", "CIELRProposeLabels", [460, 100], {"extra_labels": ""}, None, [360, 160]),
        ("perceive", "CIELRPerceive", [460, 330], {"box_threshold": 0.3, "text_threshold": 0.25}, None, [360, 200]),
        ("build", "CIELRBuildScene", [460, 580], {}, None, [360, 110]),
        ("scene_view", "PreviewImage", [460, 730], {}, "Scene overlay", [360, 320]),
        ("refine", "CIELRRefineScene", [880, 100], {"max_rounds": 3}, None, [360, 260]),
        ("decompose", "CIELRDecompose", [880, 440], {}, None, [360, 120]),
        ("trace", "PreviewAny", [880, 620], {}, "Refinement trace", [360, 220]),
        ("plan_view", "PreviewAny", [880, 870], {}, "Plan", [360, 220]),
        ("inpaint", "CIELRInpaintActions", [1300, 100], SAMPLER, None, [380, 560]),
        ("save", "SaveImage", [1740, 100], {"filename_prefix": "cielr_edit"}, "Edited photo", [400, 420]),
        ("steps_view", "PreviewImage", [1740, 560], {}, "After each action", [400, 320]),
        ("report", "PreviewAny", [1300, 700], {}, "Edit report", [380, 200]),
        ("mask_image", "MaskToImage", [1300, 940], {}, None, [380, 60]),
        ("mask_view", "PreviewImage", [1740, 920], {}, "Edited region (mask)", [400, 320]),
        ("note", "Note", [460, 1120], {"text": note}, "Read me", [780, 200]),
    ]
    links = [
        ("image", 0, "labels", "image"), ("instruction", 0, "labels", "instruction"), ("llm", 0, "labels", "llm"),
        ("image", 0, "perceive", "image"), ("gdino", 0, "perceive", "detector"), ("sam", 0, "perceive", "segmenter"),
        ("labels", 0, "perceive", "labels"),
        ("image", 0, "build", "image"), ("perceive", 0, "build", "scene"), ("build", 2, "scene_view", "images"),
        ("image", 0, "refine", "image"), ("build", 0, "refine", "scene"), ("llm", 0, "refine", "llm"),
        ("instruction", 0, "refine", "instruction"), ("gdino", 0, "refine", "detector"),
        ("sam", 0, "refine", "segmenter"), ("refine", 1, "trace", "source"),
        ("refine", 0, "decompose", "scene"), ("llm", 0, "decompose", "llm"),
        ("instruction", 0, "decompose", "instruction"), ("decompose", 1, "plan_view", "source"),
        ("image", 0, "inpaint", "image"), ("refine", 0, "inpaint", "scene"), ("decompose", 0, "inpaint", "plan"),
        ("ckpt", 0, "inpaint", "model"), ("ckpt", 1, "inpaint", "clip"), ("ckpt", 2, "inpaint", "vae"),
        ("inpaint", 0, "save", "images"), ("inpaint", 2, "steps_view", "images"), ("inpaint", 3, "report", "source"),
        ("inpaint", 1, "mask_image", "mask"), ("mask_image", 0, "mask_view", "images"),
    ]
    groups = [("Input and models", [20, 20, 380, 1420], BLUE), ("Perception", [440, 20, 400, 1060], GREEN),
              ("Reasoning (LLM)", [860, 20, 400, 1080], PURPLE), ("Editing", [1280, 20, 880, 1240], ORANGE)]
    if verify:
        inpaint = next(i for i, n in enumerate(nodes) if n[0] == "inpaint")
        nodes[inpaint] = ("inpaint", "CIELRInpaintActions", [1300, 100], {**SAMPLER, "candidates": 3, "retries": 1},
                          None, [380, 560])
        nodes += [
            ("verify", "CIELRVerifyEdit", [1300, 1340], {"grow": 8, "box_threshold": 0.3, "text_threshold": 0.25},
             None, [380, 260]),
            ("verdict", "PreviewAny", [1300, 1630], {}, "Verdicts (JSON)", [380, 260]),
            ("verify_view", "PreviewImage", [1740, 1340], {}, "Verified (failed regions in red)", [400, 360]),
        ]
        links += [
            ("gdino", 0, "inpaint", "detector"), ("sam", 0, "inpaint", "segmenter"),
            ("image", 0, "verify", "image_before"), ("inpaint", 0, "verify", "image_after"),
            ("refine", 0, "verify", "scene"), ("decompose", 0, "verify", "plan"), ("gdino", 0, "verify", "detector"),
            ("sam", 0, "verify", "segmenter"), ("verify", 0, "verdict", "source"),
            ("verify", 2, "verify_view", "images"),
        ]
        groups.append(("Verification", [1280, 1280, 880, 640], GREEN))
    return {"nodes": nodes, "links": links, "groups": groups}


REMOTE_LLM = ("llm", "CIELRLLMRemote", [40, 710],
              {"base_url": "http://127.0.0.1:8080/v1", "model": "local-model", "api_key_env": ""}, None, [340, 240])
LOCAL_LLM = ("llm", "CIELRLLMLocal", [40, 710],
             {"model": "qwen2.5-1.5b-instruct-q4_k_m.gguf", "device": "auto"}, None, [340, 240])

WORKFLOWS["cielr_edit"] = {
    **_edit_graph(REMOTE_LLM, "v1-5-pruned-emaonly-fp16.safetensors", (
        "CIELR edit: an LLM works out which objects the instruction means (Propose Labels, Refine Scene), "
        "splits it into simple actions (Decompose), and your checkpoint inpaints only those regions; every pixel "
        "outside the Edited region mask stays exactly as it was.\n\n"
        "LLM: any OpenAI-compatible server (llama.cpp, Ollama's /v1, vLLM, LM Studio, OpenAI). Put the NAME of the "
        "environment variable that holds your key in api_key_env (never the key). Swap the checkpoint in Load "
        "Checkpoint; inpainting checkpoints are detected. Perception models and the example photo: see "
        "cielr_perception.\n\n"
        "Best of 3: each action is sampled three times and GroundingDINO looks at each result again (is the "
        "removed object gone, the new one there, the colour moved?); the best is kept, and when all three fail "
        "one retry round grows the mask. The Edit report lists every candidate's verdict; Verify Edit shows "
        "failed regions in red."), verify=True),
}
WORKFLOWS["cielr_local_llm_inpaint_model"] = {
    **_edit_graph(LOCAL_LLM, "512-inpainting-ema.safetensors", (
        "CIELR with a local LLM (a .gguf file in models/LLM, run by llama.cpp when llama-cpp-python is installed, "
        "else a Hugging Face folder run by transformers with JSON-schema constrained decoding, so every answer "
        "parses) and an inpainting checkpoint (9-channel UNet, detected and given inpaint conditioning). Nothing "
        "leaves this machine.\n\nThe LLM here: https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF/resolve/"
        "main/qwen2.5-1.5b-instruct-q4_k_m.gguf into models/LLM. Perception models: see cielr_perception.")),
}

_MANUAL = [n for n in PERCEPTION_NODES]
WORKFLOWS["cielr_manual_plan"] = {
    "nodes": _MANUAL + [
        ("ckpt", "CheckpointLoaderSimple", [40, 870], {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"}, None,
         [340, 100]),
        ("scene_json", "PreviewAny", [880, 250], {}, "Scene JSON (object ids)", [360, 300]),
        ("scene_view", "PreviewImage", [880, 580], {}, "Scene overlay (ids)", [360, 320]),
        ("plan", "CIELRPlanFromJSON", [1300, 100],
         {"plan_json": '{"actions": [{"op": "replace", "targets": [1], "prompt": "a floor lamp"}]}'}, None,
         [380, 200]),
        ("inpaint", "CIELRInpaintActions", [1300, 340], SAMPLER, None, [380, 560]),
        ("save", "SaveImage", [1740, 100], {"filename_prefix": "cielr_manual"}, "Edited photo", [400, 420]),
        ("mask_image", "MaskToImage", [1740, 560], {}, None, [400, 60]),
        ("mask_view", "PreviewImage", [1740, 660], {}, "Edited region (mask)", [400, 320]),
        ("note", "Note", [460, 400], {"text": (
            "CIELR without an LLM: run once to see the objects and their ids (Scene overlay, Scene JSON), then "
            "type a plan naming those ids. Ops: remove, replace, recolor (targets + prompt), add (anchor id + "
            "placement such as on_top_of, left_of + prompt).")}, "Read me", [400, 260]),
    ],
    "links": PERCEPTION_LINKS + [
        ("build", 1, "scene_json", "source"), ("build", 2, "scene_view", "images"),
        ("build", 0, "plan", "scene"),
        ("image", 0, "inpaint", "image"), ("build", 0, "inpaint", "scene"), ("plan", 0, "inpaint", "plan"),
        ("ckpt", 0, "inpaint", "model"), ("ckpt", 1, "inpaint", "clip"), ("ckpt", 2, "inpaint", "vae"),
        ("inpaint", 0, "save", "images"), ("inpaint", 1, "mask_image", "mask"),
        ("mask_image", 0, "mask_view", "images"),
    ],
    "groups": [("Input and models", [20, 20, 380, 980], BLUE), ("Perception", [440, 20, 820, 920], GREEN),
               ("Editing", [1280, 20, 880, 980], ORANGE)],
}

# ------------------------------------------------------- bring your own masks (other packs in, core sampler out)
DRESS_PINK = 0xFFA6D6  # the dress's colour in ComfyUI's input/example.png: Image Color To Mask segments it exactly
WORKFLOWS["cielr_bring_your_own_masks"] = {
    "nodes": [
        ("image", "LoadImage", [40, 100], {"image": COMFY_EXAMPLE}, None, [340, 380]),
        ("size", "GetImageSize", [40, 520], {}, None, [340, 100]),
        ("dress", "ImageColorToMask", [420, 100], {"color": DRESS_PINK}, "Mask 1: the dress (by colour)",
         [300, 90]),
        ("canvas", "SolidMask", [420, 240], {"value": 0.0}, "Empty mask, image size", [300, 110]),
        ("cloud_box", "SolidMask", [420, 400], {"value": 1.0, "width": 230, "height": 80}, "A drawn rectangle",
         [300, 110]),
        ("cloud", "MaskComposite", [420, 560], {"x": 60, "y": 30, "operation": "add"}, "Mask 2: the left cloud",
         [300, 150]),
        ("dress_img", "MaskToImage", [420, 760], {}, None, [300, 30]),
        ("cloud_img", "MaskToImage", [420, 840], {}, None, [300, 30]),
        ("pair", "ImageBatch", [420, 920], {}, "Batch the masks", [300, 50]),
        ("masks", "ImageToMask", [420, 1020], {"channel": "red"}, "MASK batch (one object per mask)", [300, 60]),
        ("from_masks", "CIELRSceneFromMasks", [800, 100], {"labels": "dress, cloud"}, None, [360, 200]),
        ("build", "CIELRBuildScene", [800, 350], {}, None, [360, 130]),
        ("scene_view", "PreviewImage", [800, 530], {}, "Scene overlay", [360, 320]),
        ("scene_text", "PreviewAny", [800, 900], {}, "The scene as the LLM reads it", [360, 240]),
        ("instruction", "PrimitiveStringMultiline", [1220, 100], {"value": "Make the dress blue."}, "Instruction",
         [360, 120]),
        ("llm", "CIELRLLMRemote", [1220, 270],
         {"base_url": "http://127.0.0.1:8080/v1", "model": "local-model", "api_key_env": ""}, None, [360, 240]),
        ("decompose", "CIELRDecompose", [1220, 560], {}, None, [360, 120]),
        ("plan_view", "PreviewAny", [1220, 730], {}, "Plan", [360, 200]),
        ("regions", "CIELRPlanToMasks", [1220, 980], {"grow": 8, "feather": 8}, None, [360, 330]),
        ("ckpt", "CheckpointLoaderSimple", [1640, 100], {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"}, None,
         [340, 100]),
        ("positive", "CLIPTextEncode", [1640, 250], {}, "Prompt of each action", [340, 100]),
        ("negative", "CLIPTextEncode", [1640, 400], {}, "Negative of each action", [340, 100]),
        ("encode", "VAEEncode", [1640, 550], {}, None, [340, 50]),
        ("noise_mask", "SetLatentNoiseMask", [1640, 650], {}, None, [340, 50]),
        ("sampler", "KSampler", [2020, 100], {"seed": 0, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
                                              "scheduler": "normal"}, None, [340, 300]),
        ("decode", "VAEDecode", [2020, 450], {}, None, [340, 50]),
        ("composite", "ImageCompositeMasked", [2020, 550], {"x": 0, "y": 0, "resize_source": True},
         "Keep everything outside the mask", [340, 150]),
        ("save", "SaveImage", [2400, 100], {"filename_prefix": "cielr_byom"}, "Edited photo (one per action)",
         [400, 420]),
        ("mask_image", "MaskToImage", [2020, 760], {}, None, [340, 30]),
        ("mask_view", "PreviewImage", [2400, 560], {}, "Edited region (mask)", [400, 320]),
        ("note", "Note", [1640, 760], {"text": (
            "Bring your own masks: any segmentation gives CIELR its scene, and ComfyUI's own sampler nodes do the "
            "edit.\n\nMasks: replace the 'Photo and your masks' group with SAM2, Florence-2, YOLO, Impact Pack "
            "(use CIELR Scene From SEGS) or boxes (CIELR Scene From Boxes). One mask per object, in the order of "
            "the labels; object #k is mask k.\n\nEditing: CIELR Plan To Masks gives, per action, the mask "
            "(grown and feathered exactly as CIELR Inpaint Actions would edit), the prompt, the negative and the "
            "denoise, as lists, so the sampler nodes run once per action and save one image per action. The VAE "
            "round trip changes every pixel a little, so Image Composite Masked pastes the result back through "
            "the same mask: every pixel outside it stays exactly as it was. (The VAE works on multiples of 8 "
            "pixels; resize_source stretches its output back to the photo's size.) For several actions applied "
            "one after the other in one image, use CIELR Inpaint Actions.")}, "Read me", [340, 420]),
    ],
    "links": [
        ("image", 0, "size", "image"), ("image", 0, "dress", "image"),
        ("size", 0, "canvas", "width"), ("size", 1, "canvas", "height"),
        ("canvas", 0, "cloud", "destination"), ("cloud_box", 0, "cloud", "source"),
        ("dress", 0, "dress_img", "mask"), ("cloud", 0, "cloud_img", "mask"),
        ("dress_img", 0, "pair", "image1"), ("cloud_img", 0, "pair", "image2"), ("pair", 0, "masks", "image"),
        ("image", 0, "from_masks", "image"), ("masks", 0, "from_masks", "masks"),
        ("image", 0, "build", "image"), ("from_masks", 0, "build", "scene"),
        ("build", 2, "scene_view", "images"), ("build", 3, "scene_text", "source"),
        ("build", 0, "decompose", "scene"), ("llm", 0, "decompose", "llm"),
        ("instruction", 0, "decompose", "instruction"), ("image", 0, "decompose", "image"),
        ("decompose", 1, "plan_view", "source"),
        ("build", 0, "regions", "scene"), ("decompose", 0, "regions", "plan"), ("image", 0, "regions", "image"),
        ("ckpt", 1, "positive", "clip"), ("regions", 5, "positive", "text"),
        ("ckpt", 1, "negative", "clip"), ("regions", 6, "negative", "text"),
        ("image", 0, "encode", "pixels"), ("ckpt", 2, "encode", "vae"),
        ("encode", 0, "noise_mask", "samples"), ("regions", 4, "noise_mask", "mask"),
        ("ckpt", 0, "sampler", "model"), ("positive", 0, "sampler", "positive"), ("negative", 0, "sampler", "negative"),
        ("noise_mask", 0, "sampler", "latent_image"), ("regions", 7, "sampler", "denoise"),
        ("sampler", 0, "decode", "samples"), ("ckpt", 2, "decode", "vae"),
        ("image", 0, "composite", "destination"), ("decode", 0, "composite", "source"),
        ("regions", 4, "composite", "mask"),
        ("composite", 0, "save", "images"), ("regions", 4, "mask_image", "mask"),
        ("mask_image", 0, "mask_view", "images"),
    ],
    "groups": [("Photo and your masks (any segmentation)", [20, 20, 720, 1100], BLUE),
               ("Scene (CIELR)", [780, 20, 400, 1140], GREEN), ("Plan (CIELR + LLM)", [1200, 20, 400, 1310], PURPLE),
               ("Your sampler (core ComfyUI nodes)", [1620, 20, 1200, 1180], ORANGE)],
}


# --- Flux.1 Fill: a modern family through its separate loaders ---------------------------------
MODELS.update({
    "flux1-fill-dev.safetensors": (
        "https://huggingface.co/black-forest-labs/FLUX.1-Fill-dev/resolve/main/flux1-fill-dev.safetensors",
        "diffusion_models"),
    "t5xxl_fp8_e4m3fn.safetensors": (
        "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp8_e4m3fn.safetensors",
        "text_encoders"),
    "clip_l.safetensors": (
        "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors", "text_encoders"),
    "ae.safetensors": (
        "https://huggingface.co/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/ae.safetensors",
        "vae"),
})


def _flux_fill_graph() -> dict:
    """cielr_edit with Flux.1 Fill: UNETLoader + DualCLIPLoader + VAELoader instead of one checkpoint."""
    graph = _edit_graph(REMOTE_LLM, "unused", (
        "CIELR edit with Flux.1 Fill (an inpainting model: detected from its weights and given inpaint "
        "conditioning). Flux settings: cfg 1, guidance 30 (0 = the family's default), working size 0 = 1024. "
        "Files: models/diffusion_models/flux1-fill-dev.safetensors, models/text_encoders/t5xxl_fp8_e4m3fn."
        "safetensors and clip_l.safetensors, models/vae/ae.safetensors. For Flux Kontext load its file here and "
        "set edit_mode to 'instruction edit'. LLM and perception models: see cielr_edit."))
    nodes = [n for n in graph["nodes"] if n[0] != "ckpt"]
    nodes += [
        ("unet", "UNETLoader", [40, 1300], {"unet_name": "flux1-fill-dev.safetensors", "weight_dtype": "default"},
         None, [340, 90]),
        ("clip", "DualCLIPLoader", [40, 1410], {"clip_name1": "t5xxl_fp8_e4m3fn.safetensors",
                                                "clip_name2": "clip_l.safetensors", "type": "flux"}, None, [340, 130]),
        ("vae", "VAELoader", [40, 1560], {"vae_name": "ae.safetensors"}, None, [340, 60]),
    ]
    inpaint = next(i for i, n in enumerate(nodes) if n[0] == "inpaint")
    key, kind, pos, _, title, size = nodes[inpaint]
    nodes[inpaint] = (key, kind, pos, {**SAMPLER, "cfg": 1.0, "working_size": 0, "guidance": 30.0,
                                       "edit_mode": "auto"}, title, size)
    links = [link for link in graph["links"] if link[0] != "ckpt"]
    links += [("unet", 0, "inpaint", "model"), ("clip", 0, "inpaint", "clip"), ("vae", 0, "inpaint", "vae")]
    groups = [(t, [r[0], r[1], r[2], 1640] if t == "Input and models" else r, c) for t, r, c in graph["groups"]]
    return {"nodes": nodes, "links": links, "groups": groups}


WORKFLOWS["cielr_edit_flux_fill"] = {
    **_flux_fill_graph(),
}


# --- any LLM node as the reasoner: each step's request out as text, the answer text back in -------------
ANY_LLM_ANSWERS = {  # example answers of the right shape; your LLM's answers go here instead
    "labels": '{"labels": ["speaker", "tv"]}',
    "refine": '{"note": "a speaker is listed", "sufficient": true, "missing_labels": [], "search_within": null}',
    "plan": '{"actions": [{"op": "replace", "targets": [1], "prompt": "a floor lamp"}]}',
}
WORKFLOWS["cielr_any_llm"] = {
    "nodes": [
        ("image", "LoadImage", [40, 100], {"image": PHOTO}, None, [340, 380]),
        ("instruction", "PrimitiveStringMultiline", [40, 520], {"value": INSTRUCTION}, "Instruction",
         [340, 120]),
        ("gdino", "CIELRGroundingDINOLoader", [40, 680],
         {"model_name": "groundingdino_swint_ogc.pth", "text_encoder": "bert-base-uncased", "device": "auto"}, None,
         [340, 130]),
        ("sam", "CIELRSAMLoader", [40, 850], {"model_name": "sam_vit_b_01ec64.pth", "device": "auto"}, None,
         [340, 110]),
        ("ckpt", "CheckpointLoaderSimple", [40, 1000], {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"}, None,
         [340, 100]),
        ("labels_request", "CIELRLabelsRequest", [460, 100], {"schema_in_prompt": True}, None, [360, 190]),
        ("labels_prompt", "PreviewAny", [460, 320], {}, "Labels request (user text)", [360, 180]),
        ("labels_llm", "PrimitiveStringMultiline", [460, 530], {"value": ANY_LLM_ANSWERS["labels"]},
         "LLM answer: labels (or your LLM node)", [360, 110]),
        ("labels_answer", "CIELRLabelsAnswer", [460, 670], {"extra_labels": ""}, None, [360, 160]),
        ("perceive", "CIELRPerceive", [460, 860], {"box_threshold": 0.3, "text_threshold": 0.25}, None, [360, 200]),
        ("build", "CIELRBuildScene", [460, 1090], {}, None, [360, 130]),
        ("refine_request", "CIELRRefineRequest", [880, 100], {"schema_in_prompt": True}, None, [360, 210]),
        ("refine_prompt", "PreviewAny", [880, 340], {}, "Refine request (user text)", [360, 180]),
        ("refine_llm", "PrimitiveStringMultiline", [880, 550], {"value": ANY_LLM_ANSWERS["refine"]},
         "LLM answer: refine (or your LLM node)", [360, 110]),
        ("refine_answer", "CIELRRefineAnswer", [880, 690], {"box_threshold": 0.3, "text_threshold": 0.25}, None,
         [360, 300]),
        ("trace", "PreviewAny", [880, 1020], {}, "Refinement trace", [360, 180]),
        ("plan_request", "CIELRDecomposeRequest", [1300, 100], {"schema_in_prompt": True}, None, [380, 210]),
        ("one_prompt", "StringConcatenate", [1300, 340], {"delimiter": "\n\n"}, "System + user as one prompt",
         [380, 200]),
        ("plan_prompt", "PreviewAny", [1300, 570], {}, "Plan request (one prompt)", [380, 180]),
        ("plan_llm", "PrimitiveStringMultiline", [1300, 780], {"value": ANY_LLM_ANSWERS["plan"]},
         "LLM answer: plan (or your LLM node)", [380, 110]),
        ("plan_answer", "CIELRDecomposeAnswer", [1300, 920], {}, None, [380, 150]),
        ("plan_view", "PreviewAny", [1300, 1100], {}, "Plan", [380, 160]),
        ("inpaint", "CIELRInpaintActions", [1720, 100], SAMPLER, None, [380, 720]),
        ("save", "SaveImage", [2140, 100], {"filename_prefix": "cielr_any_llm"}, "Edited photo", [400, 420]),
        ("mask_image", "MaskToImage", [1720, 860], {}, None, [380, 60]),
        ("mask_view", "PreviewImage", [2140, 560], {}, "Edited region (mask)", [400, 320]),
        ("note", "Note", [1720, 980], {"text": (
            "Any LLM node as the reasoner: each Request node gives the exact request CIELR's own LLM nodes send "
            "(system, user, and the answer's JSON schema), each Answer node reads the answer with the same "
            "parser and checks. Replace each 'LLM answer' text node with your LLM node (comfyui-ollama, LLM "
            "Party, a VLM node...): Request system -> its system prompt, user -> its prompt (or the one prompt "
            "from Concatenate), and its text output -> the Answer's answer. With schema_in_prompt on, the schema "
            "is at the end of the user text; turn it off when your node takes a JSON schema, and connect schema "
            "there.\n\nWithout an LLM node: run once, paste each request into any chat, paste the answers into "
            "the text nodes, run again. A bad answer stops with the problem, worded as a repair request you can "
            "send the LLM. The answers here are examples of the right shape: the ids your scene has are listed "
            "in the Refine and Plan requests, and a plan may name only those.\n\nMore refinement rounds: chain another "
            "Refine Request + Refine Answer on the scene output; once a round says the scene is enough, the "
            "rounds after it pass it on without asking. Perception models and the example photo: see "
            "cielr_perception.")},
         "Read me", [420, 420]),
    ],
    "links": [
        ("instruction", 0, "labels_request", "instruction"), ("labels_request", 1, "labels_prompt", "source"),
        ("labels_llm", 0, "labels_answer", "answer"),
        ("image", 0, "perceive", "image"), ("gdino", 0, "perceive", "detector"), ("sam", 0, "perceive", "segmenter"),
        ("labels_answer", 0, "perceive", "labels"),
        ("image", 0, "build", "image"), ("perceive", 0, "build", "scene"),
        ("build", 0, "refine_request", "scene"), ("instruction", 0, "refine_request", "instruction"),
        ("refine_request", 1, "refine_prompt", "source"),
        ("image", 0, "refine_answer", "image"), ("build", 0, "refine_answer", "scene"),
        ("refine_llm", 0, "refine_answer", "answer"), ("gdino", 0, "refine_answer", "detector"),
        ("sam", 0, "refine_answer", "segmenter"), ("refine_answer", 1, "trace", "source"),
        ("refine_answer", 0, "plan_request", "scene"), ("instruction", 0, "plan_request", "instruction"),
        ("plan_request", 0, "one_prompt", "string_a"), ("plan_request", 1, "one_prompt", "string_b"),
        ("one_prompt", 0, "plan_prompt", "source"),
        ("refine_answer", 0, "plan_answer", "scene"), ("plan_llm", 0, "plan_answer", "answer"),
        ("plan_answer", 1, "plan_view", "source"),
        ("image", 0, "inpaint", "image"), ("refine_answer", 0, "inpaint", "scene"),
        ("plan_answer", 0, "inpaint", "plan"),
        ("ckpt", 0, "inpaint", "model"), ("ckpt", 1, "inpaint", "clip"), ("ckpt", 2, "inpaint", "vae"),
        ("inpaint", 0, "save", "images"), ("inpaint", 1, "mask_image", "mask"),
        ("mask_image", 0, "mask_view", "images"),
    ],
    "groups": [("Input and models", [20, 20, 380, 1100], BLUE), ("Labels and perception", [440, 20, 400, 1230], GREEN),
               ("Refine (one round)", [860, 20, 400, 1210], PURPLE), ("Plan", [1280, 20, 420, 1270], PURPLE),
               ("Editing", [1700, 20, 860, 930], ORANGE)],
}
