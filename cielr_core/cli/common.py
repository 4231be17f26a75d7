"""What the subcommands share: the options every one takes, progress lines, the LLM backend, settings
checks, model loading and reading the user's files."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import (
    EDIT_OPTIONS,
    LLM_OPTIONS,
    MODEL_OPTIONS,
    PERCEPTION_OPTIONS,
    Settings,
    add_options,
    find_local_llm,
    resolve_device,
)
from ..errors import InputError

if TYPE_CHECKING:
    from ..pipeline import StageTimer

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



def add_common(parser: argparse.ArgumentParser, llm_title: str, edit: bool = True) -> None:
    """The options of every subcommand: config file, debug, quiet, models, perception, LLM and (with
    ``edit``) inpainting."""
    parser.add_argument("--config", metavar="FILE", help="a TOML file with models, LLM and sampling settings "
                        "(flags win over it; see 'python -m cielr_core --help')")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")
    add_options(parser, MODEL_OPTIONS, "models")
    add_options(parser, PERCEPTION_OPTIONS, "perception")
    add_options(parser, LLM_OPTIONS, llm_title)
    if edit:
        add_options(parser, EDIT_OPTIONS, "inpainting")


class Reporter:
    """Progress lines on stderr (nothing with --quiet)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def stages(self) -> StageTimer:
        """A stage timer that says 'stage ...' when a stage starts and 'stage done in N s' when it ends."""
        from ..pipeline import StageTimer

        timer = StageTimer()

        def tell(stage: str, event: str) -> None:
            self.say(f"{stage} ..." if event == "start" else f"{stage} done in {timer.elapsed:.1f} s")

        timer.hooks.append(tell)
        return timer


def quiet_libraries(debug: bool) -> None:
    """Model libraries print loading bars and deprecation chatter; the CLI reports progress itself."""
    if debug:
        return
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning,
                            module=r"(torch|torchvision|timm|groundingdino|diffusers|transformers)(\.|$)")
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
        from ..llm import RemoteLLM

        return RemoteLLM(settings.llm_base_url, settings.llm_model, api_key_env=settings.llm_api_key_env,
                         temperature=settings.llm_temperature, seed=settings.llm_seed,
                         timeout=settings.llm_timeout,
                         max_retries=settings.llm_max_retries, max_tokens=settings.llm_max_tokens,
                         vision=settings.llm_vision)
    if settings.llm_local:
        from ..llm import LocalLLM

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

    from ..llm import LLMConnectionError, RemoteLLM

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
            "base_url is right (llama.cpp: http://127.0.0.1:8080/v1, Ollama: http://127.0.0.1:11434/v1)."
        ) from None


def pipeline_settings(settings: Settings) -> Any:
    """The library's settings from the resolved options (checked against the schema when resolved)."""
    from ..pipeline import PipelineSettings

    return PipelineSettings.of(settings.by_setting(PERCEPTION_OPTIONS + EDIT_OPTIONS))


def load_perception(paths: tuple[Path, Path | None, Path], device: str) -> tuple[Any, Any]:
    from ..perception import load_grounding_dino, load_sam

    gdino, bert, sam = paths
    return load_grounding_dino(gdino, bert, device=device), load_sam(sam, device=device)


def load_engine(path: Path, config: Path | None, settings: Settings, device: str) -> Any:
    from ..editing.diffusers_engine import DiffusersEngine, load_inpaint_pipeline
    from ..editing.engine import SamplerSettings

    pipe = load_inpaint_pipeline(path, config, device=device)
    return DiffusersEngine(pipe, SamplerSettings.of(settings.by_setting(EDIT_OPTIONS)))


def read_image(path: str) -> Any:
    from ..images import load_image

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
    from ..plan import PlanError, parse_plan

    try:
        return parse_plan(read_text(path, "plan"))
    except PlanError as e:
        raise PlanError([f"{path}: {problem}" for problem in e.problems]) from None


def read_scene(path: str) -> Any:
    from ..scene import scene_from_json

    return scene_from_json(read_text(path, "scene"))
