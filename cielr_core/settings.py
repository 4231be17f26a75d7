"""The settings schema: every setting's name, type, default, range and help, and which layers use it.

One ``Setting`` per setting, declared once below as a module constant (``settings.GROW``), so readers,
editors and type checkers see each one by name; the three layers are built from them, so they agree by
construction:

- the library validates its records with it (``EditSettings``, ``SamplerSettings``,
  ``PipelineSettings``, ``VerifySettings``, the LLM clients: ``Setting.check`` / ``problems``);
- the command line (``config.Option``, one per setting with a ``cli`` entry: option group, TOML section
  and key, flag, metavar) takes its type, default and help from it, and refuses a value outside the
  range, naming the flag;
- the ComfyUI nodes build their widget inputs from it (``nodes.base.widget``): default, min, max,
  step and tooltip.

``layers`` says who uses a setting: LIBRARY, CLI, NODE. A setting's ``name`` is the library's field
and the node's input name (the command line's TOML key may differ; ``config.py`` maps it). Ranges
are the widest any layer accepts: a value a saved workflow holds stays valid. ``auto`` is a value
outside the range that means "decided at run time" (working_size 0: the model family's size).
``like(GROW, ...)`` declares a setting with another's value facts (type, default, range) and its own
help, layers and flag; ``path(...)`` a file or folder only the command line takes. ``ALL`` lists every
setting in the order declared (the command line's option order).

This module imports nothing heavy: ``--help`` is built from it without loading torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import InputError

LIBRARY, CLI, NODE = "library", "cli", "node"
ALL_LAYERS = EVERY = frozenset({LIBRARY, CLI, NODE})
NODE_ONLY, CLI_ONLY = frozenset({NODE}), frozenset({CLI})
LIBRARY_CLI, LIBRARY_NODE = frozenset({LIBRARY, CLI}), frozenset({LIBRARY, NODE})


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
    # the command line's flag: {"group": subcommands' option group, "section": TOML table, "key": TOML key
    # if not the name, "flag", "path": a file or folder, "metavar"}
    cli: dict | None = field(default=None, compare=False)

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


# ------------------------------------------------------------------------------ the declarations

def flag(group: str, section: str, *, key: str | None = None, flag: str | None = None,
         metavar: str | None = None) -> dict:
    """A setting's command-line entry: its option group, TOML table and key (if not the name), flag (if not
    ``--name``) and metavar."""
    named = {"key": key, "flag": flag, "metavar": metavar}
    return {"group": group, "section": section, **{k: v for k, v in named.items() if v is not None}}


def path(name: str, cli: dict, *, help: str) -> Setting:
    """A file or folder the command line takes (``cli``: its ``flag``): a string, empty for none, read
    relative to the --config file when it comes from there."""
    return Setting(name, str, "", help=help, layers=CLI_ONLY, cli={**cli, "path": True})


def like(base: Setting, *, help: str, layers: frozenset[str] | None = None, **changes: Any) -> Setting:
    """A setting with ``base``'s value facts (type, default, range...), its own help, layers and flag."""
    return dataclasses.replace(base, help=help, layers=base.layers if layers is None else layers,
                               cli=changes.pop("cli", None), **changes)


MODELS_DIR = path("dir", flag("models", "models", flag="--models-dir", metavar="DIR"),
    help="A ComfyUI models folder; model names are looked up in its grounding-dino/, groundingdino/, "
         "bert-base-uncased/, sams/, LLM/, diffusers/ and checkpoints/ sub-folders.")
CLI_DEVICE = Setting(
    "device", str, "cpu", layers=CLI_ONLY, cli=flag("models", "models", metavar="DEV"),
    help="Where the models run: cpu, cuda, cuda:1, mps or auto.")
NODE_DEVICE = Setting(
    "device", str, "auto", choices=("auto", "cpu"), layers=NODE_ONLY,
    help="auto: the device ComfyUI runs models on (the GPU when there is one); cpu: keep it off the GPU.")
GDINO_FILE = path("grounding_dino", flag("perception", "models", flag="--gdino", metavar="FILE"),
    help="GroundingDINO weights (.pth) or Hugging Face folder; default: the official file names in the models folder.")
TEXT_ENCODER = path("text_encoder", flag("perception", "models", flag="--text-encoder", metavar="DIR"),
    help="GroundingDINO's BERT folder (default: bert-base-uncased in the models folder).")
SAM_FILE = path("sam", flag("perception", "models", metavar="FILE"),
    help="SAM checkpoint (.pth/.safetensors, any ViT size); default: the official file names in the models folder.")
EXTRA_LABELS = Setting(
    "extra_labels", str, "", cli=flag("perception", "perception", key="labels", metavar="TEXT"),
    help="Object names to detect in any case, separated by commas; they come first, before the LLM's proposals "
         "(without an LLM they are the only labels).")
BOX_THRESHOLD = Setting(
    "box_threshold", float, 0.3, min=0.0, max=1.0, step=0.01, cli=flag("perception", "perception", metavar="X"),
    help="Minimum detector confidence for a box (GroundingDINO). Lower finds more, with more false boxes.")
TEXT_THRESHOLD = Setting(
    "text_threshold", float, 0.25, min=0.0, max=1.0, step=0.01, cli=flag("perception", "perception", metavar="X"),
    help="Minimum confidence that a box matches its label (GroundingDINO).")
MAX_ROUNDS = Setting(
    "max_rounds", int, 3, min=0, max=10, cli=flag("perception", "perception", metavar="N"),
    help="Refinement rounds: at most this many LLM verdicts, each of which may add objects. 0 turns refinement off "
         "(the scene passes through; relations are computed if missing).")
LABELS = Setting(
    "labels", str, "tv, speaker, lamp, sofa, table", multiline=True, layers=NODE_ONLY,
    help="Object names to find, separated by commas or new lines. Connect CIELR Propose Labels to let an LLM choose "
         "them.")
INSTRUCTION = Setting(
    "instruction", str, "", multiline=True, layers=NODE_ONLY,
    help="The edit instruction, as complex and implicit as you like, e.g. \"What in this room makes the TV louder? "
         "Replace it with a floor lamp.\" Use the same text in every CIELR node of the graph.")
PLAN_JSON = Setting(
    "plan_json", str, "{\"actions\": [{\"op\": \"replace\", \"targets\": [1], \"prompt\": \"a floor lamp\"}]}",
    multiline=True, layers=NODE_ONLY,
    help="The plan as JSON: an object with an 'actions' list, or just the list. Ops: remove, replace, recolor (targets"
         " + prompt), add (anchor + placement + prompt). Optional strength 0..1 overrides the denoise.")
SCHEMA_IN_PROMPT = Setting(
    "schema_in_prompt", bool, True, layers=NODE_ONLY,
    help="On: the user text ends with the answer's JSON schema, as the pack sends it to a server that cannot enforce "
         "one; right for most LLM nodes. Off: the user text alone, for an LLM node with a JSON-schema (structured "
         "output) input: connect the schema output there.")
ANSWER = Setting(
    "answer", str, "", multiline=True, layers=NODE_ONLY,
    help="The LLM's answer to the request (JSON; code fences and text around it are fine): connect the text output of "
         "any LLM node, or paste the answer here.")
PART_LABELS = like(
    LABELS, default="object", layers=NODE_ONLY,
    help="What each mask or box shows, in order, separated by commas or new lines (e.g. 'sofa, lamp, tv'), or one "
         "label for all.")
SEG_LABELS = like(
    LABELS, default="", layers=NODE_ONLY,
    help="Empty: each SEG's own label. Otherwise one label per SEG (in order) or one for all, separated by commas or "
         "new lines.")
SCORES = Setting(
    "scores", str, "", layers=NODE_ONLY,
    help="Optional detector scores from 0 to 1, one per object or one for all, separated by commas or new lines. "
         "Empty: each object's own score where it has one (core SAM3's boxes), else 1.")
BOX_FORMAT = Setting(
    "box_format", str, "x0, y0, x1, y1", choices=("x0, y0, x1, y1", "x, y, width, height"), layers=NODE_ONLY,
    help="How the pack that made a BBOX list writes its boxes: corners (x0, y0, x1, y1; most packs) or corner plus "
         "size (x, y, width, height; e.g. KJNodes). BOUNDING_BOX boxes say which themselves.")
LLM_URL = Setting(
    "base_url", str, "", layers=CLI_ONLY, cli=flag("llm", "llm", flag="--llm-url", metavar="URL"),
    help="An OpenAI-compatible server's API root, e.g. http://127.0.0.1:8080/v1 (llama.cpp) or "
         "http://127.0.0.1:11434/v1 (Ollama). Without it (and without --llm-local) no LLM is used.")
# The node always talks to a server, so its URL starts at llama.cpp's default rather than at "none".
SERVER_URL = like(
    LLM_URL, default="http://127.0.0.1:8080/v1", layers=NODE_ONLY,
    help="The API root, usually ending in /v1. llama.cpp: http://127.0.0.1:8080/v1, Ollama: http://127.0.0.1:11434/v1,"
         " OpenAI: https://api.openai.com/v1.")
LLM_MODEL = Setting(
    "model", str, "local-model", cli=flag("llm", "llm", flag="--llm-model", metavar="NAME"),
    help="The model name the server knows, e.g. qwen2.5:7b (Ollama) or gpt-4o-mini (OpenAI). A llama.cpp server with "
         "one model accepts any name.")
API_KEY_ENV = Setting(
    "api_key_env", str, "", cli=flag("llm", "llm", flag="--llm-key-env", metavar="VAR"),
    help="The NAME of the environment variable that holds the API key (e.g. OPENAI_API_KEY), set where ComfyUI or the "
         "command runs. Never the key itself: only this name is saved. Empty for servers without keys.")
LOCAL_LLM = path("local", flag("llm", "llm", flag="--llm-local", metavar="PATH"),
    help="A local model instead of a server: a .gguf file or a Hugging Face folder (looked up in the models folder's "
         "LLM/ too).")
TEMPERATURE = Setting(
    "temperature", float, 0.0, min=0.0, max=2.0, step=0.05,
    cli=flag("llm", "llm", flag="--llm-temperature", metavar="T"),
    help="0 = always the most likely answer (repeatable, best for plans). Higher values vary the answers.")
LLM_SEED = Setting(
    "seed", int, 0, min=0, max=2147483647, control_after_generate=False,
    cli=flag("llm", "llm", flag="--llm-seed", metavar="N"),
    help="Seed of the LLM's sampling (with temperature above 0); with the same seed and settings a run is repeatable.")
LLM_TIMEOUT = Setting(
    "timeout", float, 120.0, min=1.0, max=3600.0, step=1.0, cli=flag("llm", "llm", flag="--llm-timeout", metavar="S"),
    help="Seconds to wait for one answer before giving up with an error. A few retries follow connection errors and "
         "busy servers, never a timeout.")
LLM_MAX_RETRIES = Setting(
    "max_retries", int, 2, min=0, max=5, layers=LIBRARY_CLI, cli=flag("llm", "llm", flag="--llm-retries", metavar="N"),
    help="Extra tries after a connection error or HTTP 5xx/429.")
LLM_MAX_TOKENS = Setting(
    "max_tokens", int, 1024, min=1, max=32768, cli=flag("llm", "llm", flag="--llm-max-tokens", metavar="N"),
    help="The longest answer, in tokens (plans need about 100; answers follow a JSON schema, so they end when it "
         "closes).")
LLM_VISION = Setting(
    "vision", bool, False, cli=flag("llm", "llm", flag="--llm-vision"),
    help="The model reads images (e.g. gpt-4o, llava, qwen2.5-vl): labels are then proposed from the photo too, and "
         "edits can be judged by it.")
INPAINT_MODEL = path("inpaint", flag("edit", "models", metavar="PATH"),
    help="The inpainting model: a diffusers folder (model_index.json), or one checkpoint file together with "
         "--inpaint-config.")
INPAINT_CONFIG = path("inpaint_config", flag("edit", "models", metavar="DIR"),
    help="For a single checkpoint file: a local folder with the pipeline's config files in diffusers layout (nothing "
         "is downloaded).")
SAMPLING_SEED = Setting(
    "seed", int, 0, min=0, max=18446744073709551615, control_after_generate=True,
    cli=flag("edit", "edit", metavar="N"),
    help="Action n samples with seed + n - 1, so a one-action plan matches a KSampler with this seed.")
STEPS = Setting(
    "steps", int, 20, min=1, max=10000, cli=flag("edit", "edit", metavar="N"),
    help="Sampling steps per action.")
CFG = Setting(
    "cfg", float, 7.0, min=0.0, max=100.0, step=0.1, round=0.01, cli=flag("edit", "edit", metavar="X"),
    help="Classifier-free guidance: how strongly each action follows its prompt.")
GROW = Setting(
    "grow", int, 8, min=0, max=4096, step=1, cli=flag("edit", "edit", metavar="PX"),
    help="Pixels the target masks are grown by before inpainting, so edges, shadows and halos are repainted too. "
         "Nothing outside the grown mask ever changes.")
FEATHER = Setting(
    "feather", int, 8, min=0, max=4096, step=1, cli=flag("edit", "edit", metavar="PX"),
    help="Width in pixels of the soft blend, inside the grown mask: the new pixels fade in from the grown mask's edge."
         " 0 = hard edge.")
CONTEXT = Setting(
    "context", int, 64, min=0, max=4096, step=1, cli=flag("edit", "edit", metavar="PX"),
    help="Pixels of surroundings around each grown mask that the model sees. More context blends better; the crop is "
         "what gets scaled.")
WORKING_SIZE = Setting(
    "working_size", int, 0, min=64, max=4096, step=8, auto=0, cli=flag("edit", "edit", metavar="PX"),
    help="Each crop is scaled to about working_size x working_size pixels (keeping its shape, sides multiples of what "
         "the VAE and the model's patches need) for sampling. 0 = auto: 512 for SD1.5-class models, 1024 for SDXL, "
         "SD3, Flux, Qwen-Image and Z-Image.")
NEGATIVE = Setting(
    "negative", str, "", multiline=True, cli=flag("edit", "edit", metavar="TEXT"),
    help="Negative prompt for every action (remove actions add the removed objects' labels to it).")
BACKGROUND_PROMPT = Setting(
    "background_prompt", str, "empty background, the surroundings continue seamlessly, nothing there", multiline=True,
    cli=flag("edit", "edit", metavar="TEXT"),
    help="What a remove action paints when it has no prompt of its own.")
RECOLOR_DENOISE = Setting(
    "recolor_denoise", float, 0.6, min=0.0, max=1.0, step=0.01, cli=flag("edit", "edit", metavar="X"),
    help="Denoise for recolor actions: lower keeps the object's shape. Remove, replace and add use 1.0; an action's "
         "own strength overrides both.")
CANDIDATES = Setting(
    "candidates", int, 1, min=1, max=8, cli=flag("edit", "edit", metavar="N"),
    help="Samples per action (seeds seed + k); the one with the best verdict is kept. 1 = one sample, no extra cost. "
         "Needs the detector.")
RETRIES = Setting(
    "retries", int, 0, min=0, max=4, cli=flag("edit", "edit", metavar="N"),
    help="When every candidate of an action failed: rounds that grow the mask, raise a recolor's denoise and "
         "strengthen the prompt, then sample the candidates again. At most candidates x (1 + retries) samples per "
         "action.")
VERIFY = Setting(
    "verify", bool, False, layers=LIBRARY_CLI, cli=flag("edit", "edit"),
    help="Look at every action again with the detector and report the verdict (on by itself with candidates > 1 or "
         "retries).")
JUDGE = Setting(
    "judge", bool, False, layers=LIBRARY_CLI, cli=flag("edit", "edit"),
    help="Also let the LLM judge each edited region before and after, 1-5 (needs a vision model).")
GUIDANCE = Setting(
    "guidance", float, 0.0, min=0.0, max=100.0, step=0.1, round=0.01, layers=LIBRARY_NODE,
    help="Distilled guidance, for models that read it (Flux.1 dev/Kontext, Flux Fill, Flux.2), as the FluxGuidance "
         "node sets it. 0 = auto: the family's default (Flux.1 3.5, Fill 30, Flux.2 4). Other families ignore it; use "
         "cfg 1 with these models.")
EDIT_MODE = Setting(
    "edit_mode", str, "auto", choices=("auto", "inpaint", "instruction edit"), layers=LIBRARY_NODE,
    help="auto: inpaint (with inpaint conditioning for inpainting models), or instruction edit where every model of "
         "the family edits from a reference (Flux.2). 'instruction edit': the crop goes in as a reference latent and "
         "each action is phrased as a command (\"remove the speaker, show the wall behind it\"): use it with Flux "
         "Kontext and Qwen-Image-Edit, whose weights look like Flux.1 dev and Qwen-Image. 'inpaint': never a "
         "reference.")
ACTION_INDEX = Setting(
    "index", int, 1, min=1, max=64, layers=NODE_ONLY,
    help="Which action: 1 = the first, as plan messages count them.")
VERIFY_GROW = like(
    GROW, layers=NODE_ONLY,
    help="The grow the edit used: the region around each action where a new object may appear.")
METRIC_SIZES = Setting(
    "sizes", list, [256, 512], layers=CLI_ONLY, cli=flag("metrics", "metrics", metavar="N,N"),
    help="SmartEdit protocol sizes, comma-separated.")
LPIPS_BACKBONE = path("lpips_backbone", flag("metrics", "metrics", metavar="FILE"),
    help="torchvision backbone weights for LPIPS (e.g. squeezenet1_1-b8a52dc0.pth); without it LPIPS is reported as "
         "not computed.")
LPIPS_LINEAR = path("lpips_linear", flag("metrics", "metrics", metavar="FILE"),
    help="The LPIPS v0.1 linear layers (e.g. squeeze.pth).")
LPIPS_NET = Setting(
    "lpips_net", str, "squeeze", choices=("squeeze", "alex", "vgg"), layers=CLI_ONLY,
    cli=flag("metrics", "metrics", metavar="NET"),
    help="LPIPS network: squeeze, alex or vgg.")
CLIP_MODEL = path("clip", flag("metrics", "metrics", metavar="DIR"),
    help="A local CLIP model folder (Hugging Face format) for the CLIP score; without it the CLIP score is reported as"
         " not computed.")
IDCS = Setting(
    "idcs", bool, False, layers=CLI_ONLY, cli=flag("metrics", "metrics"),
    help="Compute IDCS with the LLM (needs a vision model: --llm-vision).")



ALL = tuple(v for v in dict(globals()).values() if isinstance(v, Setting))  # in the order declared

# two seeds, two ranges: the diffusion sampler takes any 64-bit seed (as ComfyUI's KSampler), LLM servers
# and llama.cpp a signed 32-bit one
SAMPLING_SEED_MAX = SAMPLING_SEED.max
LLM_SEED_MAX = LLM_SEED.max
EDIT_MODES = EDIT_MODE.choices
BOX_FORMATS = BOX_FORMAT.choices
