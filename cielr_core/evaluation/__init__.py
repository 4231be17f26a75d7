"""Evaluation metrics for instruction-based editing, one module per family:

- ``base``: ``Metric`` (a value, or the reason there is none) and ``Unavailable`` (a missing model);
- ``pixel``: masks, MSE, PSNR, SSIM;
- ``protocol``: the SmartEdit protocol (background metrics and the CLIP score at a fixed size);
- ``background``: the strict background check at full resolution;
- ``selection``: target selection (IoU, precision, recall of the edited region);
- ``lpips`` and ``clip``: the two learned metrics, from local weights only;
- ``idcs``: the instruction-description consistency score (a VLM describes, an LLM scores);
- ``sample``: every metric for one edited sample (``evaluate_edit``);
- ``summary``: averages over samples that count failures both ways (``summarise``).

numpy and Pillow only at import; torch, torchvision and transformers load inside the LPIPS and
CLIP code.
"""

from .background import strict_background
from .base import FAILED, NOT_COMPUTED, OK, Metric, Unavailable, json_number
from .clip import CLIP_PROTOCOL_MODEL, CLIPScorer, clip_score, load_clip
from .idcs import (
    IDCS_SYSTEM_PROMPT,
    IDCS_USER_TEMPLATE,
    MAX_IDCS_REASON,
    ChangeDescription,
    IDCSAnswer,
    describe_with_vlm,
    idcs,
    idcs_answer,
    idcs_messages,
    idcs_with_llm,
    side_by_side,
)
from .lpips import LPIPS_NETS, LPIPSModel, load_lpips, lpips_score
from .pixel import MASK_THRESHOLD, binarise_mask, gaussian_window, mse, psnr, psnr_from_mse, ssim, ssim_map
from .protocol import PROTOCOL_SIZES, ProtocolInputs, protocol_inputs, smartedit_metrics
from .sample import evaluate_edit
from .selection import target_selection
from .summary import WORST_VALUES, SampleResult, summarise
