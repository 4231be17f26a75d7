"""The settings schema: every setting's name, type, default, range and help, and which layers use it.

One ``Setting`` per setting, declared once here; the three layers are built from it, so they agree
by construction:

- the library validates its records with it (``EditSettings``, ``SamplerSettings``,
  ``PipelineSettings``, ``VerifySettings``, the LLM clients: ``Setting.check`` / ``problems``);
- the command line (``config.Option``) takes its type, default and help from it, and refuses a
  value outside the range, naming the flag;
- the ComfyUI nodes build their widget inputs from it (``nodes.base.widget``): default, min, max,
  step and tooltip.

``layers`` says who uses a setting: LIBRARY, CLI, NODE. A setting's ``name`` is the library's field
and the node's input name (the command line's TOML key may differ; ``config.py`` maps it). Ranges
are the widest any layer accepts: a value a saved workflow holds stays valid. ``auto`` is a value
outside the range that means "decided at run time" (working_size 0: the model family's size).

This module imports nothing heavy: ``--help`` is built from it without loading torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import InputError

LIBRARY, CLI, NODE = "library", "cli", "node"
ALL_LAYERS = frozenset({LIBRARY, CLI, NODE})

# Seeds: the diffusion sampler takes any 64-bit seed (as ComfyUI's KSampler); LLM servers and
# llama.cpp take a signed 32-bit one.
SAMPLING_SEED_MAX = 0xFFFF_FFFF_FFFF_FFFF
LLM_SEED_MAX = 2**31 - 1
EDIT_MODES = ("auto", "inpaint", "instruction edit")
NODE_DEVICES = ("auto", "cpu")


@dataclass(frozen=True)
class Setting:
    name: str  # the library's field and the node's input name
    type: type  # int, float, str, bool or list (of ints)
    default: Any
    help: str
    layers: frozenset[str] = ALL_LAYERS
    min: float | None = None
    max: float | None = None
    step: float | None = None  # the widget's step: how far one click moves it (values need not be multiples)
    round: float | None = None  # a float widget's precision
    auto: Any = None  # a value outside [min, max] that means "decided at run time"
    choices: tuple[str, ...] | None = None
    multiline: bool = False
    # a node seed that ComfyUI's frontend changes after each run (only the image's sampling seed does):
    # False is said explicitly, since the frontend adds the control to any INT input named seed
    control_after_generate: bool | None = None

    @property
    def widget_min(self) -> float | None:
        """The lowest value a widget lets through: the range's, or ``auto`` when that lies below it."""
        if self.auto is not None and self.min is not None and self.auto < self.min:
            return self.auto
        return self.min

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting, or None."""
        if self.auto is not None and value == self.auto:
            return None
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
        if self.min is None and self.max is None:
            return None
        low = "-inf" if self.min is None else number(self.min)
        high = "inf" if self.max is None else number(self.max)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            auto = f" (or {self.auto}: auto)" if self.auto is not None else ""
            return f"{self.name} must be between {low} and {high}{auto}, got {value}"
        return None

    def check(self, value: Any) -> Any:
        """``value`` when it is valid; otherwise an InputError saying what the setting accepts."""
        problem = self.problem(value)
        if problem:
            raise InputError(problem)
        return value

    def but(self, **changes: Any) -> Setting:
        """The same setting, told differently where a node means something narrower by it."""
        return replace(self, **changes)


def number(value: float) -> str:
    """A bound as people write it: 4096, 0.25, 18446744073709551615."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def problems(record: Any, settings: Iterable[Setting]) -> list[str]:
    """The problems of a record's fields (``record.<setting.name>``) against their settings."""
    found = (s.problem(getattr(record, s.name)) for s in settings)
    return [p for p in found if p]


def record(cls: type, values: Mapping[str, Any]) -> Any:
    """The dataclass ``cls`` from ``values`` by field name (names it has no field for are ignored)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def check_all(record: Any, settings: Iterable[Setting], what: str) -> None:
    """InputError listing every field of ``record`` out of range (``what``: "edit settings", ...)."""
    found = problems(record, settings)
    if found:
        raise InputError(f"{what} out of range:\n" + "\n".join(f"  - {p}" for p in found))


# ------------------------------------------------------------------------------ perception

BOX_THRESHOLD = Setting("box_threshold", float, 0.3, "Minimum detector confidence for a box (GroundingDINO). "
                        "Lower finds more, with more false boxes.", min=0.0, max=1.0, step=0.01)
TEXT_THRESHOLD = Setting("text_threshold", float, 0.25, "Minimum confidence that a box matches its label "
                         "(GroundingDINO).", min=0.0, max=1.0, step=0.01)
MAX_ROUNDS = Setting("max_rounds", int, 3, "Refinement rounds: at most this many LLM verdicts, each of which may "
                     "add objects. 0 turns refinement off (the scene passes through; relations are computed if "
                     "missing).", min=0, max=10)
EXTRA_LABELS = Setting("extra_labels", str, "", "Object names to detect in any case, separated by commas; they "
                       "come first, before the LLM's proposals (without an LLM they are the only labels).")
LABELS = Setting("labels", str, "tv, speaker, lamp, sofa, table", "Object names to find, separated by commas or "
                 "new lines. Connect CIELR Propose Labels to let an LLM choose them.", frozenset({NODE}),
                 multiline=True)

# ------------------------------------------------------------------------------ LLM

SERVER_URL = Setting("base_url", str, "http://127.0.0.1:8080/v1", "The API root, usually ending in /v1. "
                     "llama.cpp: http://127.0.0.1:8080/v1, Ollama: http://127.0.0.1:11434/v1, OpenAI: "
                     "https://api.openai.com/v1.", frozenset({NODE}))
LLM_URL = SERVER_URL.but(default="", layers=frozenset({CLI}), help="An OpenAI-compatible server's API root, e.g. "
                         "http://127.0.0.1:8080/v1 (llama.cpp) or http://127.0.0.1:11434/v1 (Ollama). Without it "
                         "(and without --llm-local) no LLM is used.")
LLM_MODEL = Setting("model", str, "local-model", "The model name the server knows, e.g. qwen2.5:7b (Ollama) or "
                    "gpt-4o-mini (OpenAI). A llama.cpp server with one model accepts any name.")
API_KEY_ENV = Setting("api_key_env", str, "", "The NAME of the environment variable that holds the API key (e.g. "
                      "OPENAI_API_KEY), set where ComfyUI or the command runs. Never the key itself: only this "
                      "name is saved. Empty for servers without keys.")
LOCAL_LLM = Setting("local", str, "", "A local model instead of a server: a .gguf file or a Hugging Face folder "
                    "(looked up in the models folder's LLM/ too).", frozenset({CLI}))
TEMPERATURE = Setting("temperature", float, 0.0, "0 = always the most likely answer (repeatable, best for plans). "
                      "Higher values vary the answers.", min=0.0, max=2.0, step=0.05)
LLM_SEED = Setting("seed", int, 0, "Seed of the LLM's sampling (with temperature above 0); with the same seed "
                   "and settings a run is repeatable.", min=0,
                   max=LLM_SEED_MAX, control_after_generate=False)
LLM_TIMEOUT = Setting("timeout", float, 120.0, "Seconds to wait for one answer before giving up with an error. A "
                      "few retries follow connection errors and busy servers, never a timeout.", min=1.0,
                      max=3600.0, step=1.0)
LLM_MAX_RETRIES = Setting("max_retries", int, 2, "Extra tries after a connection error or HTTP 5xx/429.",
                          frozenset({LIBRARY, CLI}), min=0, max=5)
LLM_MAX_TOKENS = Setting("max_tokens", int, 1024, "The longest answer, in tokens (plans need about 100; answers "
                         "follow a JSON schema, so they end when it closes).", min=1, max=32768)
LLM_VISION = Setting("vision", bool, False, "The model reads images (e.g. gpt-4o, llava, qwen2.5-vl): labels are "
                     "then proposed from the photo too, and edits can be judged by it.")

# ------------------------------------------------------------------------------ editing

SAMPLING_SEED = Setting("seed", int, 0, "Action n samples with seed + n - 1, so a one-action plan matches a "
                        "KSampler with this seed.", min=0, max=SAMPLING_SEED_MAX, control_after_generate=True)
STEPS = Setting("steps", int, 20, "Sampling steps per action.", min=1, max=10000)
CFG = Setting("cfg", float, 7.0, "Classifier-free guidance: how strongly each action follows its prompt.",
              min=0.0, max=100.0, step=0.1, round=0.01)
GROW = Setting("grow", int, 8, "Pixels the target masks are grown by before inpainting, so edges, shadows and "
               "halos are repainted too. Nothing outside the grown mask ever changes.", min=0, max=4096, step=1)
FEATHER = Setting("feather", int, 8, "Width in pixels of the soft blend, inside the grown mask: the new pixels "
                  "fade in from the grown mask's edge. 0 = hard edge.", min=0, max=4096, step=1)
CONTEXT = Setting("context", int, 64, "Pixels of surroundings around each grown mask that the model sees. More "
                  "context blends better; the crop is what gets scaled.", min=0, max=4096, step=1)
WORKING_SIZE = Setting("working_size", int, 0, "Each crop is scaled to about working_size x working_size pixels "
                       "(keeping its shape, sides multiples of what the VAE and the model's patches need) for "
                       "sampling. 0 = auto: 512 for SD1.5-class models, 1024 for SDXL, SD3, Flux, Qwen-Image and "
                       "Z-Image.", min=64, max=4096, step=8, auto=0)
NEGATIVE = Setting("negative", str, "", "Negative prompt for every action (remove actions add the removed objects' "
                   "labels to it).", multiline=True)
BACKGROUND_PROMPT = Setting("background_prompt", str, "empty background, the surroundings continue seamlessly, "
                            "nothing there", "What a remove action paints when it has no prompt of its own.",
                            multiline=True)
RECOLOR_DENOISE = Setting("recolor_denoise", float, 0.6, "Denoise for recolor actions: lower keeps the object's "
                          "shape. Remove, replace and add use 1.0; an action's own strength overrides both.",
                          min=0.0, max=1.0, step=0.01)
CANDIDATES = Setting("candidates", int, 1, "Samples per action (seeds seed + k); the one with the best verdict is "
                     "kept. 1 = one sample, no extra cost. Needs the detector.", min=1, max=8)
RETRIES = Setting("retries", int, 0, "When every candidate of an action failed: rounds that grow the mask, raise a "
                  "recolor's denoise and strengthen the prompt, then sample the candidates again. At most "
                  "candidates x (1 + retries) samples per action.", min=0, max=4)
GUIDANCE = Setting("guidance", float, 0.0, "Distilled guidance, for models that read it (Flux.1 dev/Kontext, Flux "
                   "Fill, Flux.2), as the FluxGuidance node sets it. 0 = auto: the family's default (Flux.1 3.5, Fill "
                   "30, Flux.2 4). Other families ignore it; use cfg 1 with these models.",
                   frozenset({LIBRARY, NODE}), min=0.0, max=100.0, step=0.1, round=0.01)
EDIT_MODE = Setting("edit_mode", str, "auto", "auto: inpaint (with inpaint conditioning for inpainting models), or "
                    "instruction edit where every model of the family edits from a reference (Flux.2). 'instruction "
                    "edit': the crop goes in as a reference latent and each action is phrased as a command (\"remove "
                    "the speaker, show the wall behind it\"): use it with Flux Kontext and Qwen-Image-Edit, whose "
                    "weights look like Flux.1 dev and Qwen-Image. 'inpaint': never a reference.",
                    frozenset({LIBRARY, NODE}), choices=EDIT_MODES)
VERIFY = Setting("verify", bool, False, "Look at every action again with the detector and report the verdict (on "
                 "by itself with candidates > 1 or retries).", frozenset({LIBRARY, CLI}))
JUDGE = Setting("judge", bool, False, "Also let the LLM judge each edited region before and after, 1-5 (needs a "
                "vision model).", frozenset({LIBRARY, CLI}))
ACTION_INDEX = Setting("index", int, 1, "Which action: 1 = the first, as plan messages count them.",
                       frozenset({NODE}), min=1, max=64)
# Verify Edit reads grow to know where each action could have changed pixels
VERIFY_GROW = GROW.but(layers=frozenset({NODE}), help="The grow the edit used: the region around each action where "
                       "a new object may appear.")

# ------------------------------------------------------------------------------ models and metrics (command line)

_CLI = frozenset({CLI})
MODELS_DIR = Setting("dir", str, "", "A ComfyUI models folder; model names are looked up in its grounding-dino/, "
                     "groundingdino/, bert-base-uncased/, sams/, LLM/, diffusers/ and checkpoints/ sub-folders.", _CLI)
CLI_DEVICE = Setting("device", str, "cpu", "Where the models run: cpu, cuda, cuda:1, mps or auto.", _CLI)
NODE_DEVICE = Setting("device", str, "auto", "auto: the device ComfyUI runs models on (the GPU when there is one); "
                      "cpu: keep it off the GPU.", frozenset({NODE}), choices=NODE_DEVICES)
GDINO_FILE = Setting("grounding_dino", str, "", "GroundingDINO weights (.pth) or Hugging Face folder; default: the "
                     "official file names in the models folder.", _CLI)
TEXT_ENCODER = Setting("text_encoder", str, "", "GroundingDINO's BERT folder (default: bert-base-uncased in the "
                       "models folder).", _CLI)
SAM_FILE = Setting("sam", str, "", "SAM checkpoint (.pth/.safetensors, any ViT size); default: the official file "
                   "names in the models folder.", _CLI)
INPAINT_MODEL = Setting("inpaint", str, "", "The inpainting model: a diffusers folder (model_index.json), or one "
                        "checkpoint file together with --inpaint-config.", _CLI)
INPAINT_CONFIG = Setting("inpaint_config", str, "", "For a single checkpoint file: a local folder with the "
                         "pipeline's config files in diffusers layout (nothing is downloaded).", _CLI)
METRIC_SIZES = Setting("sizes", list, [256, 512], "SmartEdit protocol sizes, comma-separated.", _CLI)
LPIPS_BACKBONE = Setting("lpips_backbone", str, "", "torchvision backbone weights for LPIPS (e.g. "
                         "squeezenet1_1-b8a52dc0.pth); without it LPIPS is reported as not computed.", _CLI)
LPIPS_LINEAR = Setting("lpips_linear", str, "", "The LPIPS v0.1 linear layers (e.g. squeeze.pth).", _CLI)
LPIPS_NET = Setting("lpips_net", str, "squeeze", "LPIPS network: squeeze, alex or vgg.", _CLI,
                    choices=("squeeze", "alex", "vgg"))
CLIP_MODEL = Setting("clip", str, "", "A local CLIP model folder (Hugging Face format) for the CLIP score; without "
                     "it the CLIP score is reported as not computed.", _CLI)
IDCS = Setting("idcs", bool, False, "Compute IDCS with the LLM (needs a vision model: --llm-vision).", _CLI)

ALL = tuple(v for v in dict(globals()).values() if isinstance(v, Setting))
