"""Defaults the library and the command line share, in a module that imports nothing.

``config.py`` builds ``--help`` from them without importing torch; the settings records
(``EditSettings``, ``PipelineSettings``, the LLM clients) take their defaults from here too.
"""

# perception: GroundingDINO's thresholds and the rounds of scene refinement
BOX_THRESHOLD = 0.3
TEXT_THRESHOLD = 0.25
REFINE_ROUNDS = 3  # default rounds; reasoning.refine.MAX_ROUNDS is the most allowed

# editing
GROW = 8  # pixels the target mask is grown by (covers halos and SAM's tight edges)
FEATHER = 8  # blend band inside the grown mask, pixels
CONTEXT = 64  # pixels of surroundings around the grown mask the model sees
WORKING_SIZE = 512  # crops are sampled at about WORKING_SIZE^2 pixels (512 for SD1.5, 1024 for SDXL)
BACKGROUND_PROMPT = "empty background, the surroundings continue seamlessly, nothing there"
RECOLOR_DENOISE = 0.6  # a recolor keeps the object's shape: less noise than remove/replace/add (1.0)
STEPS = 20  # sampling steps per action
# Guidance of the library and the command line (diffusers' own default). The CIELR Inpaint Actions
# node keeps ComfyUI's KSampler default, 7.0, as its cfg input, so saved workflows load unchanged.
CFG = 7.5

# the OpenAI-compatible LLM client
LLM_TIMEOUT = 120.0  # seconds per request
LLM_MAX_RETRIES = 2  # extra tries after a connection error or HTTP 5xx/429
LLM_MAX_TOKENS = 1024  # longest answer
