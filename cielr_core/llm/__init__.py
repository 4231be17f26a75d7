"""LLM backends: chat messages (+ optional image) + an answer schema -> a validated answer.

``RemoteLLM`` talks to any OpenAI-compatible server; ``LocalLLM`` runs a transformers model with
constrained decoding; ``TextGenLLM`` wraps a plain text generator (messages and an image in, text
out). All satisfy the ``LLM`` protocol. Importing this package loads neither torch nor
transformers.
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
from .textgen import TextGenLLM
