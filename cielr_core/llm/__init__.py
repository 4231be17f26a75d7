"""LLM backends: chat messages (+ optional image) + an answer schema -> a validated answer.

``RemoteLLM`` talks to any OpenAI-compatible server; ``LocalLLM`` runs a transformers model with
constrained decoding. Both satisfy the ``LLM`` protocol. Importing this package loads neither
torch nor transformers.
"""

from .base import (
    LLM,
    LLMAnswerError,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    Message,
    Usage,
    extract_json,
    parse_answer,
)
from .local import LocalLLM
from .remote import RemoteLLM
from .schema import Answer, Label, schema_text, strict_schema, unbounded_fields

__all__ = [
    "LLM", "LLMAnswerError", "LLMConnectionError", "LLMError", "LLMTimeoutError", "Message", "Usage",
    "extract_json", "parse_answer", "LocalLLM", "RemoteLLM", "Answer", "Label", "schema_text",
    "strict_schema", "unbounded_fields",
]
