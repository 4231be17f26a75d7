"""Make groundingdino-py 0.4.0 build and run on transformers 5 exactly as it does on 4.57.

groundingdino wraps a ``BertModel`` in its ``BertModelWarper``, which (1) copies three helper
methods that transformers 5 removed (``get_extended_attention_mask``, ``invert_attention_mask``,
``get_head_mask``) and (2) calls ``BertEmbeddings``/``BertEncoder`` with 4.x keyword arguments
(``past_key_values_length``, ``head_mask``, ``return_dict``...) that transformers 5 rejects.

Nothing here patches a class: the helpers are bound onto the one ``BertModel`` instance handed to
groundingdino, and the encoder-only forward is set on the one ``BertModelWarper`` instance, and only
when the installed transformers lacks what groundingdino expects. On transformers 4.x nothing is
changed. The helpers reproduce transformers 4.57.6 (``modeling_utils.ModuleUtilsMixin``) for the
encoder case, including the 3-D self-attention mask groundingdino passes.

``local_text_encoder`` supplies groundingdino's text encoder from a local folder during the build
(tokenizer and config with ``local_files_only=True``; the weights come from the GroundingDINO
checkpoint's ``bert.*`` keys, so none are read from the folder).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

_BUILD_LOCK = threading.Lock()


# --- the helpers transformers 5 removed (semantics of 4.57.6, encoder models) ---------------


def _extended_attention_mask(self: Any, attention_mask: torch.Tensor, input_shape: Any = None,
                             device: Any = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """1 = attend, 0 = masked -> additive mask: 0 where attended, dtype's min where masked."""
    dtype = self.dtype if dtype is None else dtype
    if attention_mask.dim() == 3:  # [batch, from, to]: groundingdino's per-phrase mask
        extended = attention_mask[:, None, :, :]
    elif attention_mask.dim() == 2:  # [batch, to]; BERT here is never a decoder
        extended = attention_mask[:, None, None, :]
    else:
        raise ValueError(f"Wrong shape for input_ids (shape {input_shape}) or attention_mask "
                         f"(shape {attention_mask.shape})")
    extended = extended.to(dtype=dtype)
    return (1.0 - extended) * torch.finfo(dtype).min


def _invert_attention_mask(self: Any, encoder_attention_mask: torch.Tensor) -> torch.Tensor:
    if encoder_attention_mask.dim() == 3:
        extended = encoder_attention_mask[:, None, :, :]
    else:
        extended = encoder_attention_mask[:, None, None, :]
    extended = extended.to(dtype=self.dtype)
    return (1.0 - extended) * torch.finfo(self.dtype).min


def _head_mask(self: Any, head_mask: torch.Tensor | None, num_hidden_layers: int,
               is_attention_chunked: bool = False) -> Any:
    if head_mask is None:
        return [None] * num_hidden_layers
    # Head masks were dropped from transformers 5's attention; groundingdino never passes one.
    raise NotImplementedError("head_mask is not supported by the transformers 5 compatibility layer")


_HELPERS = {
    "get_extended_attention_mask": _extended_attention_mask,
    "invert_attention_mask": _invert_attention_mask,
    "get_head_mask": _head_mask,
}


def add_missing_helpers(bert: torch.nn.Module) -> list[str]:
    """Bind the helpers groundingdino's warper copies onto this BertModel, where missing."""
    added = []
    for name, fn in _HELPERS.items():
        if not hasattr(bert, name):
            setattr(bert, name, types.MethodType(fn, bert))
            added.append(name)
    return added


# --- the warper's forward ------------------------------------------------------------------


def embeddings_take_past_length(embeddings: torch.nn.Module) -> bool:
    """True on transformers 4.x, whose BertEmbeddings.forward groundingdino's warper calls as is."""
    return "past_key_values_length" in inspect.signature(embeddings.forward).parameters


def _encoder_only_forward(self: Any, input_ids: torch.Tensor | None = None,
                          attention_mask: torch.Tensor | None = None,
                          token_type_ids: torch.Tensor | None = None,
                          position_ids: torch.Tensor | None = None, head_mask: Any = None,
                          inputs_embeds: torch.Tensor | None = None,
                          encoder_hidden_states: Any = None, encoder_attention_mask: Any = None,
                          past_key_values: Any = None, use_cache: Any = None,
                          output_attentions: Any = None, output_hidden_states: Any = None,
                          return_dict: Any = None) -> Any:
    """BertModelWarper.forward for what groundingdino uses (no decoder, cache or head mask).

    Same steps as the original: extended mask from the (3-D) attention mask, embeddings with the
    given position ids, encoder, pooler.
    """
    from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

    if (encoder_hidden_states is not None or past_key_values is not None or head_mask is not None
            or self.config.is_decoder):
        raise NotImplementedError("groundingdino's text encoder runs as a plain encoder here")
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
    input_shape = input_ids.size() if input_ids is not None else inputs_embeds.size()[:-1]
    device = input_ids.device if input_ids is not None else inputs_embeds.device
    if attention_mask is None:
        attention_mask = torch.ones(input_shape, device=device)
    if token_type_ids is None:
        token_type_ids = torch.zeros(input_shape, dtype=torch.long, device=device)
    extended = self.get_extended_attention_mask(attention_mask, input_shape)
    embedding_output = self.embeddings(input_ids=input_ids, position_ids=position_ids,
                                       token_type_ids=token_type_ids, inputs_embeds=inputs_embeds)
    encoder_outputs = self.encoder(embedding_output, attention_mask=extended)
    sequence_output = encoder_outputs[0]
    pooled_output = self.pooler(sequence_output) if self.pooler is not None else None
    return BaseModelOutputWithPoolingAndCrossAttentions(last_hidden_state=sequence_output,
                                                         pooler_output=pooled_output)


def adapt_warper(warper: torch.nn.Module) -> bool:
    """Give this BertModelWarper a transformers-5 forward when its own cannot run. True if changed."""
    if embeddings_take_past_length(warper.embeddings):
        return False
    warper.forward = types.MethodType(_encoder_only_forward, warper)
    return True


# --- building groundingdino with a local text encoder ---------------------------------------


def load_text_encoder(folder: str | Path) -> tuple[Any, torch.nn.Module]:
    """(tokenizer, BertModel with random weights) from a local bert-base-uncased style folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = str(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    config = BertConfig.from_pretrained(folder, local_files_only=True)
    bert = BertModel(config)  # weights follow from the checkpoint's bert.* keys
    add_missing_helpers(bert)
    return tokenizer, bert


@contextlib.contextmanager
def local_text_encoder(folder: str | Path) -> Iterator[None]:
    """While building, groundingdino's tokenizer/BERT factories read ``folder`` and nothing else.

    groundingdino calls ``get_tokenlizer.get_tokenlizer(name)`` and
    ``get_tokenlizer.get_pretrained_language_model(name)``; both are swapped for the duration of
    the build only (under a lock) and restored afterwards.
    """
    from groundingdino.util import get_tokenlizer as factories

    tokenizer, bert = load_text_encoder(folder)
    with _BUILD_LOCK:
        saved = factories.get_tokenlizer, factories.get_pretrained_language_model
        factories.get_tokenlizer = lambda _name: tokenizer
        factories.get_pretrained_language_model = lambda _name: bert
        try:
            yield
        finally:
            factories.get_tokenlizer, factories.get_pretrained_language_model = saved
