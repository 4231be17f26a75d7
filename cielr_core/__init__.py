"""CIELR: Complex Image Editing via LLM Reasoning, as a library.

Stages live in sub-packages named after the paper: ``perception`` (detect and segment),
``scene`` (the structured semantic representation), and later ``reasoning`` and ``editing``.
Importing this package is cheap: heavy libraries load when a stage is first used.
"""

__version__ = "0.1.0"
