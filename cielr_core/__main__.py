"""The command line: ``python -m cielr_core {edit,scene,bench}``.

- ``edit IMAGE INSTRUCTION -o OUT``: the whole method (labels, perception, scene, refinement, plan,
  inpainting with a diffusers pipeline); writes the edited image and, next to it, the scene JSON,
  the scene preview, the refinement trace, the plan and the edited-region mask.
- ``scene IMAGE``: perception and the scene only (scene JSON and preview).
- ``bench DATASET_DIR --out DIR``: a benchmark run (see ``cielr_core.bench``).

Models and the LLM backend come from flags or a TOML file (``--config``; see ``cielr_core.config``).
Nothing is ever downloaded: the hub is switched off for this process. Errors a user can act on
(missing model, bad checkpoint, unreachable LLM, bad input) print one clear message on stderr and
exit with status 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Never download: set before any Hugging Face library is imported (they read these at import).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from . import __version__
from .config import (
    EDIT_OPTIONS,
    LLM_OPTIONS,
    METRIC_OPTIONS,
    MODEL_OPTIONS,
    PERCEPTION_OPTIONS,
    Settings,
    add_options,
    find_inpaint_model,
    find_local_llm,
    find_perception_models,
    resolve_device,
    resolve_settings,
)
from .errors import CIELRError, InputError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger("cielr_core")

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

BENCH_EXAMPLES = """\
examples:
  # the CIELR pipeline on CIEBench (data.json layout), 5 samples, resumable
  python -m cielr_core bench data/ciebench --out runs/ciebench --config cielr.toml --limit 5

  # then the rest: finished samples are skipped, the tables cover every sample
  python -m cielr_core bench data/ciebench --out runs/ciebench --config cielr.toml

  # oracle mode: the ground-truth masks as the plan's regions; proves the background stays bit-exact
  python -m cielr_core bench data/ciebench --out runs/oracle --oracle --inpaint ~/models/sd-inpainting

  # the authors' best of 3: three samples per action, the detector's verdict keeps one (recorded per sample)
  python -m cielr_core bench data/ciebench --out runs/best3 --config cielr.toml --candidates 3

  # SmartEdit's reasoning set (X.png, X_mask.jpg, one "instruction CLIP: target" line per image)
  python -m cielr_core bench SmartEdit/6-Reasoning --out runs/smartedit --config cielr.toml

Writes into --out: samples/<id>.json (one record per entry, failures included, with the stage and the
reason), images/, results.csv, summary.csv (metrics, failures dropped and counted), timings.csv,
summary.json and summary.md. Exit status 0 when the run finished, whatever the samples' results.
"""

CONFIG_HELP = """\
Every model, LLM and sampling flag can also come from a TOML file given with --config; a flag given
on the command line wins. Sections and keys (paths relative to the file):

  [models]      dir, device, grounding_dino, text_encoder, sam, inpaint, inpaint_config
  [llm]         base_url, model, api_key_env, local, temperature, seed, timeout, max_retries,
                max_tokens, vision
  [perception]  labels, box_threshold, text_threshold, max_rounds
  [edit]        seed, steps, cfg, grow, feather, context, working_size, negative, background_prompt,
                recolor_denoise, candidates, retries, verify, judge
  [metrics]     sizes, lpips_backbone, lpips_linear, lpips_net, clip, idcs   (bench only)

The API key never goes into a file or a flag: api_key_env / --llm-key-env names the environment
variable that holds it.
"""


# ------------------------------------------------------------------------------- parser

def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="a TOML file with models, LLM and sampling settings "
                        "(flags win over it; see 'python -m cielr_core --help')")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cielr_core",
        description="CIELR: edit photos from complex instructions (perception -> scene -> LLM reasoning -> "
                    "plan -> masked inpainting), and benchmark it.",
        epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cielr_core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{edit,scene,bench}")
    sub.required = True
    fmt = argparse.RawDescriptionHelpFormatter

    edit = sub.add_parser("edit", help="edit a photo from an instruction (the whole pipeline)",
                          description="Edit IMAGE as INSTRUCTION says: propose labels, detect and segment, build "
                                      "and refine the scene, decompose into a plan, inpaint each action.",
                          epilog=EDIT_EXAMPLES, formatter_class=fmt)
    edit.add_argument("image", metavar="IMAGE", help="the photo")
    edit.add_argument("instruction", metavar="INSTRUCTION", help="what to change, in words")
    edit.add_argument("-o", "--output", required=True, metavar="OUT",
                      help="the edited image (.png recommended); the other files go next to it")
    edit.add_argument("--plan", metavar="PLAN.json", help="a plan as JSON (as written to OUT.plan.json, or a "
                      "list of actions): skips decomposition, so no LLM is needed with --labels")
    edit.add_argument("--scene", metavar="SCENE.json", help="a scene JSON made earlier for this image (e.g. by "
                      "'scene', maybe edited): skips labels, perception and refinement")
    _common(edit)
    add_options(edit, MODEL_OPTIONS, "models")
    add_options(edit, PERCEPTION_OPTIONS, "perception")
    add_options(edit, LLM_OPTIONS, "LLM (a server with --llm-url, or a local model with --llm-local)")
    add_options(edit, EDIT_OPTIONS, "inpainting")

    scene = sub.add_parser("scene", help="perception and the scene only (scene JSON and preview)",
                           description="Detect and segment the objects of IMAGE and build the scene (objects, "
                                       "masks, relations). Labels come from --labels and/or the LLM "
                                       "(with --instruction).",
                           epilog=SCENE_EXAMPLES, formatter_class=fmt)
    scene.add_argument("image", metavar="IMAGE", help="the photo")
    scene.add_argument("-o", "--output", metavar="OUT.json", help="the scene JSON (default: "
                       "./IMAGE-NAME.scene.json); the preview goes next to it")
    scene.add_argument("--instruction", metavar="TEXT", default="", help="the edit instruction: with an LLM, "
                       "labels are proposed from it and the scene is refined for it")
    _common(scene)
    add_options(scene, MODEL_OPTIONS, "models")
    add_options(scene, PERCEPTION_OPTIONS, "perception")
    add_options(scene, LLM_OPTIONS, "LLM (optional: a server with --llm-url, or a local model with --llm-local)")

    bench = sub.add_parser("bench", help="run a benchmark dataset and write result tables",
                           description="Run CIELR (or the oracle) on every entry of DATASET_DIR (CIEBench layout: "
                                       "data.json; SmartEdit reasoning layout: X.png, X_mask.jpg and a text file "
                                       "of 'instruction CLIP: target' lines), compute the metrics, and write "
                                       "per-sample records and summary tables. Resumable: finished samples are "
                                       "skipped.",
                           epilog=BENCH_EXAMPLES, formatter_class=fmt)
    bench.add_argument("dataset", metavar="DATASET_DIR", help="the dataset folder (or its data.json)")
    bench.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (resumed when it holds "
                       "a run of the same settings)")
    bench.add_argument("--limit", type=int, metavar="N", help="only the first N entries of the dataset")
    bench.add_argument("--oracle", action="store_true", help="use the ground-truth masks as the plan's regions "
                       "(replace each with the CLIP target text; grow 0); no perception, no LLM")
    bench.add_argument("--layout", choices=("ciebench", "smartedit"), help="dataset layout (default: detected)")
    bench.add_argument("--text-file", metavar="FILE", help="SmartEdit layout: the instruction file, when the "
                       "folder holds several")
    bench.add_argument("--check", choices=("paths", "header", "full"), default="header",
                       help="how much the dataset is verified before the run (default: header)")
    bench.add_argument("--retry-failed", action="store_true", help="run samples that failed before again")
    bench.add_argument("--overwrite", action="store_true", help="discard the records in --out and start again")
    bench.add_argument("--no-images", action="store_true", help="do not save the edited images")
    _common(bench)
    add_options(bench, MODEL_OPTIONS, "models")
    add_options(bench, PERCEPTION_OPTIONS, "perception")
    add_options(bench, LLM_OPTIONS, "LLM")
    add_options(bench, EDIT_OPTIONS, "inpainting")
    add_options(bench, METRIC_OPTIONS, "metrics")
    return parser


# ------------------------------------------------------------------------------- building blocks

class Reporter:
    """Progress lines on stderr (nothing with --quiet)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._start: dict[str, float] = {}

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def stage(self, stage: str, event: str) -> None:
        if event == "start":
            self._start[stage] = time.perf_counter()
            self.say(f"{stage} ...")
        else:
            self.say(f"{stage} done in {time.perf_counter() - self._start.pop(stage, time.perf_counter()):.1f} s")


def _quiet_libraries(debug: bool) -> None:
    """Model libraries print loading bars and deprecation chatter; the CLI reports progress itself."""
    if debug:
        return
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(torch|torchvision|timm|groundingdino|diffusers"
                            r"|transformers)(\.|$)")
    for name in ("transformers", "diffusers"):
        try:
            module = __import__(f"{name}.utils.logging", fromlist=["logging"])
        except ImportError:
            continue
        module.set_verbosity_error()
        module.disable_progress_bar()


def make_llm(settings: Settings) -> Any:
    """The LLM backend the settings name, or None when they name none. Nothing is contacted yet."""
    if settings.llm_base_url and settings.llm_local:
        raise InputError("give either an LLM server (--llm-url / [llm] base_url) or a local model "
                         "(--llm-local / [llm] local), not both")
    if settings.llm_base_url:
        from .llm import RemoteLLM

        return RemoteLLM(settings.llm_base_url, settings.llm_model, api_key_env=settings.llm_api_key_env,
                         temperature=settings.llm_temperature, seed=settings.llm_seed, timeout=settings.llm_timeout,
                         max_retries=settings.llm_max_retries, max_tokens=settings.llm_max_tokens,
                         vision=settings.llm_vision)
    if settings.llm_local:
        from .llm import LocalLLM

        return LocalLLM(find_local_llm(settings), device=resolve_device(settings.models_device),
                        temperature=settings.llm_temperature, seed=settings.llm_seed,
                        max_new_tokens=settings.llm_max_tokens)
    return None


def check_llm_reachable(llm: Any) -> None:
    """Fail in a second, before minutes of model loading, when nothing listens at the LLM server's
    address (the same LLMConnectionError the first request would raise). Skipped behind a proxy."""
    import socket
    import urllib.parse
    import urllib.request

    from .llm import LLMConnectionError, RemoteLLM

    if not isinstance(llm, RemoteLLM):
        return
    parts = urllib.parse.urlsplit(llm.url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InputError(f"the LLM base_url {llm.base_url!r} has an invalid port") from None
    if urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return
    wait = min(llm.timeout, 10.0)
    try:
        socket.create_connection((host, port), timeout=wait).close()
    except OSError as e:
        if isinstance(e, ConnectionRefusedError):
            reason = "connection refused: nothing listens there"
        elif isinstance(e, socket.timeout):
            reason = f"no answer within {wait:g} s"
        elif isinstance(e, socket.gaierror):
            reason = f"unknown host {host!r}"
        else:
            reason = " ".join(str(e).split()) or type(e).__name__
        raise LLMConnectionError(
            f"The LLM server at {llm.url} cannot be reached ({reason}). Check that the server is running and "
            "base_url is right (llama.cpp: http://127.0.0.1:8080/v1, Ollama: http://127.0.0.1:11434/v1).") from None


def pipeline_settings(settings: Settings) -> Any:
    from .editing import EditSettings
    from .pipeline import PipelineSettings

    edit = EditSettings(seed=settings.edit_seed, grow=settings.edit_grow, feather=settings.edit_feather,
                        context=settings.edit_context, working_size=settings.edit_working_size,
                        background_prompt=settings.edit_background_prompt, negative=settings.edit_negative,
                        recolor_denoise=settings.edit_recolor_denoise, candidates=settings.edit_candidates,
                        retries=settings.edit_retries)
    problems = edit.problems()
    if settings.edit_steps < 1 or settings.edit_steps > 1000:
        problems.append(f"steps must be between 1 and 1000, got {settings.edit_steps}")
    if problems:
        raise InputError("inpainting settings out of range:\n" + "\n".join(f"  - {p}" for p in problems))
    return PipelineSettings(extra_labels=settings.perception_labels, box_threshold=settings.perception_box_threshold,
                            text_threshold=settings.perception_text_threshold,
                            max_rounds=settings.perception_max_rounds, edit=edit, verify=settings.edit_verify,
                            judge=settings.edit_judge)


def load_perception(paths: tuple[Path, Path | None, Path], device: str) -> tuple[Any, Any]:
    from .perception import load_grounding_dino, load_sam

    gdino, bert, sam = paths
    return load_grounding_dino(gdino, bert, device=device), load_sam(sam, device=device)


def load_engine(path: Path, config: Path | None, settings: Settings, device: str) -> Any:
    from .editing.diffusers_engine import DiffusersEngine, load_inpaint_pipeline
    from .editing.engine import SamplerSettings

    pipe = load_inpaint_pipeline(path, config, device=device)
    return DiffusersEngine(pipe, SamplerSettings(steps=settings.edit_steps, cfg=settings.edit_cfg))


def read_image(path: str) -> Any:
    from .datasets import load_image

    if not Path(path).is_file():
        raise InputError(f"image not found: {path}")
    return load_image(path)


def read_text(path: str, what: str) -> str:
    """A UTF-8 text file (a byte-order mark is dropped), or an InputError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the {what} file {path}: {e}") from None


def read_plan(path: str) -> Any:
    """A plan file: {"actions": [...]} or a bare list of actions; checked against the scene later."""
    from .plan import PlanError, parse_plan

    try:
        return parse_plan(read_text(path, "plan"))
    except PlanError as e:
        raise PlanError([f"{path}: {problem}" for problem in e.problems]) from None


def read_scene(path: str) -> Any:
    from .scene import scene_from_json

    return scene_from_json(read_text(path, "scene"))


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


def _write_scene_files(image: Any, result: Any, scene_path: Path, reporter: Reporter) -> list[Path]:
    from .reasoning import trace_text
    from .scene import render_preview, scene_to_json

    scene_path.parent.mkdir(parents=True, exist_ok=True)
    scene_path.write_text(scene_to_json(result.scene, indent=1) + "\n", encoding="utf-8")
    base = scene_path.name[:-len(".scene.json")] if scene_path.name.endswith(".scene.json") else scene_path.stem
    preview = scene_path.with_name(base + ".preview.png")
    _save_image(preview, render_preview(image, result.scene))
    written = [scene_path, preview]
    if result.refinement is not None and result.refinement.rounds:
        trace = scene_path.with_name(base + ".trace.txt")
        trace.write_text(f"Labels: {', '.join(result.labels)}\n{trace_text(result.refinement)}\n", encoding="utf-8")
        written.append(trace)
    return written


def _timings(seconds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())


# ------------------------------------------------------------------------------- subcommands

def cmd_edit(args: argparse.Namespace, settings: Settings, reporter: Reporter) -> int:
    out = Path(args.output)
    _image_format_ok(out)
    image = read_image(args.image)
    plan = read_plan(args.plan) if args.plan else None
    given_scene = read_scene(args.scene) if args.scene else None
    llm = make_llm(settings)
    check_llm_reachable(llm)
    if llm is None and plan is None:
        raise InputError("edit needs an LLM to write the plan (--llm-url URL or --llm-local PATH, or [llm] in "
                         "--config), or a plan of your own (--plan plan.json; see the examples in 'edit --help')")
    if llm is None and given_scene is None and not settings.perception_labels.strip():
        raise InputError("without an LLM, name the objects to look for with --labels (e.g. --labels "
                         "'tv, speaker'), or give a scene with --scene")
    psettings = pipeline_settings(settings)
    # the detector is needed to perceive, and to verify even when the scene is given
    perception_paths = find_perception_models(settings) if given_scene is None or psettings.verifies else None
    inpaint_path, inpaint_config = find_inpaint_model(settings)
    device = resolve_device(settings.models_device)
    _quiet_libraries(args.debug)
    t0 = time.perf_counter()
    reporter.say("loading models ...")
    detector = segmenter = None
    if perception_paths is not None:
        detector, segmenter = load_perception(perception_paths, device)
    engine = load_engine(inpaint_path, inpaint_config, settings, device)
    reporter.say(f"models loaded in {time.perf_counter() - t0:.1f} s")

    from .pipeline import run_pipeline
    from .plan import plan_to_json
    from .reasoning import trace_text

    common = {"detector": detector, "segmenter": segmenter, "llm": llm, "settings": psettings,
              "on_stage": reporter.stage}
    first = run_pipeline(image, args.instruction, engine=engine, until="scene", scene=given_scene, **common)
    written = _write_scene_files(image, first, _sidecar(out, ".scene.json"), reporter)
    second = run_pipeline(image, args.instruction, engine=engine, plan=plan, scene=first.scene, **common)
    seconds = dict(first.seconds)
    for k, v in second.seconds.items():
        if k != "scene":
            seconds[k] = seconds.get(k, 0.0) + v

    _save_image(out, second.edit.image)
    plan_file = _sidecar(out, ".plan.json")
    plan_file.write_text(plan_to_json(second.plan) + "\n", encoding="utf-8")
    mask_file = _sidecar(out, ".mask.png")
    _save_image(mask_file, (second.edit.mask > 0).astype("uint8") * 255)
    trace = _sidecar(out, ".trace.txt")
    lines = [f"Instruction: {args.instruction}", f"Labels: {', '.join(first.labels)}", "",
             "Refinement:", trace_text(first.refinement), "", "Plan:", plan_to_json(second.plan), "",
             "Edit:", second.edit.report or "(no action ran)", "", "Verdicts:", second.edit.verdict_table(), "",
             f"Seconds: {_timings(seconds)}"]
    if llm is not None:
        u = llm.usage
        lines.append(f"LLM: {u.calls} requests, {u.prompt_tokens} prompt and {u.completion_tokens} completion "
                     f"tokens, {u.repairs} repair rounds")
    trace.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if trace not in written:
        written.append(trace)
    for path in (out, plan_file, mask_file):
        written.append(path)
    if psettings.verifies:
        verdicts = _sidecar(out, ".verdicts.json")
        verdicts.write_text(json.dumps([r.to_dict() for r in second.edit.reports], indent=1) + "\n", encoding="utf-8")
        written.append(verdicts)
        for r in second.edit.reports:
            reporter.say(f"action {r.index} ({r.op}): {r.verdict.short()}"
                         + (f", candidate {r.kept.number} of {len(r.attempts)} kept" if r.kept else ""))
    reporter.say(f"seconds: {_timings(seconds)}")
    for path in [out] + [p for p in written if p != out]:
        print(path)
    return 0


def cmd_scene(args: argparse.Namespace, settings: Settings, reporter: Reporter) -> int:
    image = read_image(args.image)
    out = Path(args.output) if args.output else Path.cwd() / (Path(args.image).stem + ".scene.json")
    instruction = args.instruction.strip()
    llm = make_llm(settings) if instruction else None
    check_llm_reachable(llm)
    if llm is None and not settings.perception_labels.strip():
        hint = ("an LLM (--llm-url or --llm-local) to propose them from --instruction" if not instruction
                else "an LLM (--llm-url or --llm-local)")
        raise InputError(f"name the objects to look for with --labels (e.g. --labels 'tv, speaker'), or give {hint}")
    paths = find_perception_models(settings)
    psettings = pipeline_settings(settings)
    device = resolve_device(settings.models_device)
    _quiet_libraries(args.debug)
    t0 = time.perf_counter()
    reporter.say("loading models ...")
    detector, segmenter = load_perception(paths, device)
    reporter.say(f"models loaded in {time.perf_counter() - t0:.1f} s")
    from .pipeline import run_pipeline

    result = run_pipeline(image, instruction, detector=detector, segmenter=segmenter, llm=llm, settings=psettings,
                          until="scene", on_stage=reporter.stage)
    written = _write_scene_files(image, result, out, reporter)
    reporter.say(f"{len(result.scene.objects)} objects; seconds: {_timings(result.seconds)}")
    for path in written:
        print(path)
    return 0


def bench_fingerprint(settings: Settings, oracle: bool, paths: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide a benchmark's results (resuming with others is refused)."""
    from .config import EDIT_OPTIONS, LLM_OPTIONS, METRIC_OPTIONS, PERCEPTION_OPTIONS

    # where the files and the server are, and how long to wait, do not change the answers; a llama.cpp
    # server restarted on another port must not stop a resume
    skip = {"models_inpaint", "models_inpaint_config", "models_grounding_dino", "models_text_encoder", "models_sam",
            "llm_local", "llm_base_url", "llm_timeout", "llm_max_retries", "llm_api_key_env", "edit_grow" if oracle else ""}
    options = list(EDIT_OPTIONS) + list(METRIC_OPTIONS)
    if not oracle:
        options += list(PERCEPTION_OPTIONS) + list(LLM_OPTIONS)
    out = {o.name: getattr(settings, o.name) for o in options if o.name not in skip}
    for name in ("edit_candidates", "edit_retries", "edit_verify", "edit_judge"):  # newer options: a run made
        if out.get(name) == next(o.default for o in options if o.name == name):  # before them resumes
            out.pop(name, None)
    out["models_device"] = settings.models_device
    out.update({k: str(Path(v).resolve()) if v is not None else None for k, v in paths.items()})
    return out


def cmd_bench(args: argparse.Namespace, settings: Settings, reporter: Reporter) -> int:
    from .bench.options import BenchModels, BenchOptions
    from .bench.runner import run_bench

    if not settings.metrics_sizes or any(not 11 <= s <= 8192 for s in settings.metrics_sizes):
        raise InputError(f"--sizes must be sizes from 11 to 8192, got {settings.metrics_sizes}")
    inpaint_path, inpaint_config = find_inpaint_model(settings)
    paths: dict[str, Any] = {"inpaint": inpaint_path, "inpaint_config": inpaint_config}
    perception_paths = None
    llm = None
    psettings = pipeline_settings(settings)
    if not args.oracle or psettings.verifies:  # the detector perceives, and looks at the edits again
        perception_paths = find_perception_models(settings)
        paths.update(grounding_dino=perception_paths[0], text_encoder=perception_paths[1],
                     sam=perception_paths[2])
    if not args.oracle:
        llm = make_llm(settings)
        check_llm_reachable(llm)
        if llm is None:
            raise InputError("the benchmark runs the LLM pipeline: give an LLM (--llm-url URL or --llm-local PATH, "
                             "or [llm] in --config), or use --oracle")
        if settings.llm_local:
            paths["llm_local"] = find_local_llm(settings)
    device = resolve_device(settings.models_device)
    options = BenchOptions(dataset=Path(args.dataset), out=Path(args.out), layout=args.layout,
                           text_file=args.text_file, check=args.check, limit=args.limit, oracle=args.oracle,
                           retry_failed=args.retry_failed, overwrite=args.overwrite, save_images=not args.no_images,
                           sizes=tuple(settings.metrics_sizes), progress=not args.quiet)

    def load() -> BenchModels:
        from .evaluation import load_clip, load_lpips

        _quiet_libraries(args.debug)
        detector = segmenter = None
        if perception_paths is not None:
            detector, segmenter = load_perception(perception_paths, device)
        engine = load_engine(inpaint_path, inpaint_config, settings, device)
        lpips = load_lpips(settings.metrics_lpips_backbone or None, settings.metrics_lpips_linear or None,
                           settings.metrics_lpips_net, device)
        clip = load_clip(settings.metrics_clip or None, device)
        return BenchModels(engine=engine, detector=detector, segmenter=segmenter, llm=llm, settings=psettings,
                           lpips=lpips, clip=clip, idcs=settings.metrics_idcs)

    report = run_bench(options, load, bench_fingerprint(settings, args.oracle, paths), log=reporter.say)
    s = report.summary["samples"]
    reporter.say(f"{report.entries} entries: {s['ok']} ok, {s['failed']} failed ({report.ran} run now, "
                 f"{report.skipped} finished before)")
    print(report.files["summary.md"])
    return 0


COMMANDS = {"edit": cmd_edit, "scene": cmd_scene, "bench": cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    reporter = Reporter(args.quiet)
    try:
        settings = resolve_settings(args)
        return COMMANDS[args.command](args, settings, reporter)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CIELRError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:
        if args.debug:
            raise
        text = " ".join(str(e).split())[:2000]
        print(f"error: {type(e).__name__}: {text}\n(run again with --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
