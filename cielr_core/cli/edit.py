"""The ``edit`` and ``scene`` subcommands: the method on one photo, and the scene alone."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..config import Settings, find_inpaint_model, find_perception_models, resolve_device
from ..errors import InputError
from . import common

EDIT_EXAMPLES = """\
examples:
  # models and the LLM server from a config file (see 'python -m cielr_core --help' for its layout)
  python -m cielr_core edit room.jpg "Something in this room makes the TV louder; replace it with a floor lamp" \\
      -o out/room.png --config cielr.toml

  # the same with flags: models in a ComfyUI models folder, a llama.cpp server
  python -m cielr_core edit room.jpg "remove the cup on the left" -o out/room.png \\
      --models-dir ~/ComfyUI/models --inpaint ~/models/sd-inpainting \\
      --llm-url http://127.0.0.1:8080/v1 --llm-model smollm2

  # best of 3 with one retry round: each action sampled three times, the detector keeps the best;
  # OUT.verdicts.json says why each candidate passed or failed
  python -m cielr_core edit room.jpg "remove the cup on the left" -o out/room.png --config cielr.toml \\
      --candidates 3 --retries 1

  # without an LLM: look at the scene, write the plan yourself, edit with it
  python -m cielr_core scene room.jpg --labels "tv, speaker" -o out/room.scene.json --config cielr.toml
  echo '{"actions": [{"op": "replace", "targets": [2], "prompt": "a floor lamp"}]}' > plan.json
  python -m cielr_core edit room.jpg "replace the speaker with a floor lamp" -o out/room.png \\
      --labels "tv, speaker" --plan plan.json --config cielr.toml

Next to OUT (here out/room.png) it writes room.scene.json, room.preview.png, room.trace.txt,
room.plan.json and room.mask.png (the pixels the edit may have changed; all others are bit-exact).
Use a lossless format (.png) for OUT to keep that guarantee in the file.
"""

SCENE_EXAMPLES = """\
examples:
  # labels given, no LLM needed
  python -m cielr_core scene room.jpg --labels "tv, speaker, sofa" --models-dir ~/ComfyUI/models

  # labels proposed by the LLM from the instruction, then refined (--max-rounds)
  python -m cielr_core scene room.jpg --instruction "what makes the TV louder?" -o out/room.scene.json \\
      --config cielr.toml

Writes the scene JSON (-o, default ./IMAGE-NAME.scene.json), the preview next to it (.preview.png)
and, when the LLM refined the scene, the trace (.trace.txt). The ids in the JSON are what a plan
(edit --plan) refers to.
"""


def _photo_command(sub: Any, name: str, summary: str, description: str,
                   examples: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=summary, description=description, epilog=examples,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", metavar="IMAGE", help="the photo")
    return parser


def add_parsers(sub: Any) -> None:
    edit = _photo_command(sub, "edit", "edit a photo from an instruction (the whole pipeline)",
                          "Edit IMAGE as INSTRUCTION says: propose labels, detect and segment, build and "
                          "refine the scene, decompose into a plan, inpaint each action.", EDIT_EXAMPLES)
    edit.add_argument("instruction", metavar="INSTRUCTION", help="what to change, in words")
    edit.add_argument("-o", "--output", required=True, metavar="OUT",
                      help="the edited image (.png recommended); the other files go next to it")
    edit.add_argument("--plan", metavar="PLAN.json", help="a plan as JSON (as written to OUT.plan.json, or a "
                      "list of actions): skips decomposition, so no LLM is needed with --labels")
    edit.add_argument("--scene", metavar="SCENE.json", help="a scene JSON made earlier for this image (e.g. "
                      "by 'scene', maybe edited): skips labels, perception and refinement")
    common.add_common(edit, "LLM (a server with --llm-url, or a local model with --llm-local)")

    scene = _photo_command(sub, "scene", "perception and the scene only (scene JSON and preview)",
                           "Detect and segment the objects of IMAGE and build the scene (objects, masks, "
                           "relations). Labels come from --labels and/or the LLM (with --instruction).",
                           SCENE_EXAMPLES)
    scene.add_argument("-o", "--output", metavar="OUT.json", help="the scene JSON (default: "
                       "./IMAGE-NAME.scene.json); the preview goes next to it")
    scene.add_argument("--instruction", metavar="TEXT", default="", help="the edit instruction: with an LLM, "
                       "labels are proposed from it and the scene is refined for it")
    common.add_common(scene, "LLM (optional: a server with --llm-url, or a local model with --llm-local)",
                      edit=False)


def _image_format_ok(path: Path) -> None:
    from PIL import Image

    ext = path.suffix.lower()
    if ext not in Image.registered_extensions():
        raise InputError(f"cannot tell the image format from {path.name!r}: end OUT in .png (lossless, "
                         "recommended), .webp, .tif or .jpg")


def _save_image(path: Path, image: Any) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _sidecar(out: Path, suffix: str) -> Path:
    return out.with_name(out.stem + suffix)


def _write_scene_files(image: Any, result: Any, scene_path: Path) -> list[Path]:
    from ..reasoning import trace_text
    from ..scene import render_preview, scene_to_json

    scene_path.parent.mkdir(parents=True, exist_ok=True)
    scene_path.write_text(scene_to_json(result.scene, indent=1) + "\n", encoding="utf-8")
    name = scene_path.name
    base = name[:-len(".scene.json")] if name.endswith(".scene.json") else scene_path.stem
    preview = scene_path.with_name(base + ".preview.png")
    _save_image(preview, render_preview(image, result.scene))
    written = [scene_path, preview]
    if result.refinement is not None and result.refinement.rounds:
        trace = scene_path.with_name(base + ".trace.txt")
        trace.write_text(f"Labels: {', '.join(result.labels)}\n{trace_text(result.refinement)}\n",
                         encoding="utf-8")
        written.append(trace)
    return written


def cmd_edit(args: argparse.Namespace, settings: Settings, reporter: common.Reporter) -> int:
    out = Path(args.output)
    _image_format_ok(out)
    image = common.read_image(args.image)
    plan = common.read_plan(args.plan) if args.plan else None
    given_scene = common.read_scene(args.scene) if args.scene else None
    llm = common.make_llm(settings)
    common.check_llm_reachable(llm)
    if llm is None and plan is None:
        raise InputError("edit needs an LLM to write the plan (--llm-url URL or --llm-local PATH, or [llm] "
                         "in --config), or a plan of your own (--plan plan.json; see the examples in "
                         "'edit --help')")
    if llm is None and given_scene is None and not settings.perception_labels.strip():
        raise InputError("without an LLM, name the objects to look for with --labels (e.g. --labels "
                         "'tv, speaker'), or give a scene with --scene")
    psettings = common.pipeline_settings(settings)
    # the detector is needed to perceive, and to verify even when the scene is given
    perception_paths = find_perception_models(settings) if given_scene is None or psettings.verifies else None
    inpaint_path, inpaint_config = find_inpaint_model(settings)
    device = resolve_device(settings.models_device)
    common.quiet_libraries(args.debug)
    t0 = time.perf_counter()
    reporter.say("loading models ...")
    detector = segmenter = None
    if perception_paths is not None:
        detector, segmenter = common.load_perception(perception_paths, device)
    engine = common.load_engine(inpaint_path, inpaint_config, settings, device)
    reporter.say(f"models loaded in {time.perf_counter() - t0:.1f} s")

    from ..edit_report import report_text
    from ..pipeline import edit_stage, plan_stage, scene_stage
    from ..plan import plan_to_json
    from ..reasoning import trace_text

    timer = reporter.stages()
    models = {"detector": detector, "segmenter": segmenter, "llm": llm, "settings": psettings}
    found = scene_stage(image, args.instruction, scene=given_scene, timer=timer, **models)
    # the scene files first: a plan that does not fit can be written against them
    written = _write_scene_files(image, found, _sidecar(out, ".scene.json"))
    plan = plan_stage(found.scene, args.instruction, llm, plan=plan, timer=timer)
    edit = edit_stage(image, found.scene, plan, engine, timer=timer, **models)

    _save_image(out, edit.image)
    plan_file = _sidecar(out, ".plan.json")
    plan_file.write_text(plan_to_json(plan) + "\n", encoding="utf-8")
    mask_file = _sidecar(out, ".mask.png")
    _save_image(mask_file, (edit.mask > 0).astype("uint8") * 255)
    trace = _sidecar(out, ".trace.txt")
    trace.write_text(report_text(args.instruction, found.labels, trace_text(found.refinement), plan_to_json(plan),
                                 edit, timer.text(), vars(llm.usage) if llm is not None else None), encoding="utf-8")
    if trace not in written:
        written.append(trace)
    for path in (out, plan_file, mask_file):
        written.append(path)
    if psettings.verifies:
        verdicts = _sidecar(out, ".verdicts.json")
        verdicts.write_text(json.dumps([r.to_dict() for r in edit.reports], indent=1) + "\n",
                            encoding="utf-8")
        written.append(verdicts)
        for r in edit.reports:
            reporter.say(f"action {r.index} ({r.op}): {r.verdict.short()}"
                         + (f", candidate {r.kept.number} of {len(r.attempts)} kept" if r.kept else ""))
    reporter.say(f"seconds: {timer.text()}")
    for path in [out] + [p for p in written if p != out]:
        print(path)
    return 0


def cmd_scene(args: argparse.Namespace, settings: Settings, reporter: common.Reporter) -> int:
    image = common.read_image(args.image)
    out = Path(args.output) if args.output else Path.cwd() / (Path(args.image).stem + ".scene.json")
    instruction = args.instruction.strip()
    llm = common.make_llm(settings) if instruction else None
    common.check_llm_reachable(llm)
    if llm is None and not settings.perception_labels.strip():
        hint = ("an LLM (--llm-url or --llm-local) to propose them from --instruction" if not instruction
                else "an LLM (--llm-url or --llm-local)")
        raise InputError(f"name the objects to look for with --labels (e.g. --labels 'tv, speaker'), or "
                         f"give {hint}")
    paths = find_perception_models(settings)
    psettings = common.pipeline_settings(settings)
    device = resolve_device(settings.models_device)
    common.quiet_libraries(args.debug)
    t0 = time.perf_counter()
    reporter.say("loading models ...")
    detector, segmenter = common.load_perception(paths, device)
    reporter.say(f"models loaded in {time.perf_counter() - t0:.1f} s")
    from ..pipeline import scene_stage

    timer = reporter.stages()
    found = scene_stage(image, instruction, detector=detector, segmenter=segmenter, llm=llm,
                        settings=psettings, timer=timer)
    written = _write_scene_files(image, found, out)
    reporter.say(f"{len(found.scene.objects)} objects; seconds: {timer.text()}")
    for path in written:
        print(path)
    return 0
