"""llama.cpp backend: a GGUF base plus an optional GGUF LoRA, on the CPU by default.

One ``LlamaHost`` holds one loaded ``Llama`` with a lock and a prompt cache (``models/kv_cache.py``);
every backend that names the same (model, lora) shares it, so a therapist and a simulated patient
on one base reuse one model and each conversation's KV state. Prompts are tokenized by us (template
markup with special tokens, message text without) and passed to llama.cpp as token ids.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

from models.base import (BackendError, BackendUnavailableError, Capabilities, GenParams, ModelNotFoundError,
                         TextStream, Usage, clean_messages, split_prefix)
from models.compute_thread import COMPUTE
from models.cpu_share import SHARE, usable_cores
from models.kv_cache import ConversationSwitcher
from models.prompt import render_segments

DEFAULT_CACHE_BYTES = 1 << 30
TOKEN_CACHE_ENTRIES = 4096
SHARE_CHECK_TOKENS = 8

_hosts: dict[tuple, "LlamaHost"] = {}
_hosts_lock = threading.Lock()


def _import_llama_cpp():
    try:
        import llama_cpp  # noqa: F401
        from llama_cpp import llama_chat_format
    except ImportError as exc:
        raise BackendUnavailableError(
            "The llama_cpp backend needs llama-cpp-python: pip install llama-cpp-python") from exc
    return llama_cpp, llama_chat_format


class LlamaHost:
    """A loaded GGUF model shared by every backend that uses it. Not thread safe: use ``lock``."""

    def __init__(self, model_path: Path, lora_path: Path | None, n_ctx: int, n_threads: int | None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, flash_attn: bool = False):
        llama_cpp, chat_format = _import_llama_cpp()
        self.lock = threading.Lock()
        # llama-cpp-python generates on half the cores by default; a small model on a small
        # machine is faster on all of them (measured: 81 vs 54 tokens/s on 2 cores), shared with
        # the other processes generating at the same time (models/cpu_share.py) unless fixed.
        self.share = SHARE if n_threads is None else None
        n_threads = n_threads or usable_cores()
        self.threads = n_threads
        try:
            self.llm = COMPUTE.call(lambda: llama_cpp.Llama(
                model_path=str(model_path), lora_path=str(lora_path) if lora_path else None,
                n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, flash_attn=flash_attn,
                verbose=False))
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {model_path}: {exc}") from exc
        self.switcher = ConversationSwitcher(self.llm, cache_bytes)
        self._token_cache: OrderedDict[tuple[str, bool], list[int]] = OrderedDict()
        self._end_tokens: list[int] | None = None
        self.n_ctx = n_ctx
        self._formatter = self._make_formatter(chat_format)
        self._grammar_cls = llama_cpp.LlamaGrammar

    def _make_formatter(self, chat_format):
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError("This GGUF has no chat template (tokenizer.chat_template)")
        vocab = self.llm._model
        eos = vocab.token_get_text(self.llm.token_eos())
        bos = vocab.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
        return chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                               add_generation_prompt=True)

    def render(self, messages: list[dict]) -> str:
        return self._formatter(messages=messages).prompt

    def tokenize(self, messages: list[dict], prefix: str = "") -> list[int]:
        """Token ids for a chat; message text can never produce special tokens."""
        return self.tokenize_prompt(messages, prefix)[0]

    def tokenize_prompt(self, messages: list[dict], prefix: str = "") -> tuple[list[int], int]:
        """The prompt's token ids and how many of them, at the end, are the assistant prefill."""
        tokens: list[int] = []
        for text, is_user_text in render_segments(self.render, messages):
            tokens += self._tokenize_piece(text, not is_user_text)
        prefill = self._tokenize_piece(prefix, False) if prefix else []
        return tokens + prefill, len(prefill)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as message text in a prompt (cached: the prompt reuses them)."""
        return len(self._tokenize_piece(text, False))

    def _tokenize_piece(self, text: str, special: bool) -> list[int]:
        # A session re-sends its whole history every turn; only new messages need tokenizing.
        key = (text, special)
        cached = self._token_cache.get(key)
        if cached is None:
            cached = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
            self._token_cache[key] = cached
            if len(self._token_cache) > TOKEN_CACHE_ENTRIES:
                self._token_cache.popitem(last=False)
        else:
            self._token_cache.move_to_end(key)
        return cached

    def prepare(self, tokens: list[int], prefill: int = 0) -> int:
        """Restore the best saved KV state for this prompt; return the tokens it already covers."""
        return self.switcher.prepare(tokens, prefill)

    def end_tokens(self) -> list[int]:
        """Every end-of-generation token of the vocabulary (EOS, <|im_end|>, EOT...)."""
        if self._end_tokens is None:
            import llama_cpp
            vocab = self.llm._model.vocab
            self._end_tokens = [t for t in range(self.llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
        return self._end_tokens

    def min_tokens_processor(self, prompt_len: int, min_tokens: int):
        """Forbid ending the turn before ``min_tokens`` tokens (a reply must not be empty)."""
        import numpy as np
        from llama_cpp import LogitsProcessorList
        ends = np.array(self.end_tokens(), dtype=np.intc)

        def block_early_end(input_ids, scores):
            if len(input_ids) - prompt_len < min_tokens:
                scores[ends] = -np.inf
            return scores
        return LogitsProcessorList([block_early_end])

    def apply_thread_share(self) -> None:
        """Run on this process's share of the cores now (compute thread, under ``lock``)."""
        if self.share is None:
            return
        wanted = self.share.threads()
        if wanted != self.threads:
            self.llm._ctx.set_n_threads(wanted, wanted)
            self.threads = wanted

    def grammar(self, schema: dict):
        return self._grammar_cls.from_json_schema(json.dumps(schema), verbose=False)


def get_host(model_path: str | Path, lora_path: str | Path | None = None, n_ctx: int = 4096,
             n_threads: int | None = None, flash_attn: bool = False) -> LlamaHost:
    """Load (once) and return the shared host for this model and LoRA."""
    model = Path(model_path)
    if not model.is_file():
        raise ModelNotFoundError(f"Model file not found: {model}")
    lora = Path(lora_path) if lora_path else None
    if lora is not None and not lora.is_file():
        raise ModelNotFoundError(f"LoRA adapter file not found: {lora}")
    key = (str(model.resolve()), str(lora.resolve()) if lora else None, n_ctx, n_threads, flash_attn)
    with _hosts_lock:
        host = _hosts.get(key)
        if host is None:
            host = _hosts[key] = LlamaHost(model, lora, n_ctx, n_threads, flash_attn=flash_attn)
    return host


class LlamaCppBackend:

    def __init__(self, id: str, model_path: str | Path, lora_path: str | Path | None = None,
                 n_ctx: int = 4096, n_threads: int | None = None, flash_attn: bool = False):
        self.id = id
        self.host = get_host(model_path, lora_path, n_ctx, n_threads, flash_attn)
        self.capabilities = Capabilities(prefix=True, json_schema=True, token_count=True,
                                         context_tokens=self.host.n_ctx)

    def count_tokens(self, text: str) -> int:
        return self.host.count_tokens(text)

    def stream(self, messages: list[dict], params: GenParams) -> TextStream:
        convo, prefix = split_prefix(messages)
        tokens, prefill = self.host.tokenize_prompt(clean_messages(convo), prefix)
        if len(tokens) + params.max_tokens > self.host.n_ctx:
            raise BackendError(
                f"The conversation needs {len(tokens)} tokens plus {params.max_tokens} for the reply, "
                f"more than this model's context of {self.host.n_ctx}.")
        # Generation runs on the one compute thread (models/compute_thread.py explains why).
        return TextStream(lambda usage: COMPUTE.stream(lambda: self._generate(tokens, prefill, params, usage)))

    def _generate(self, tokens: list[int], prefill: int, params: GenParams, usage: Usage) -> Iterator[str]:
        host = self.host
        with host.lock, SHARE.busy():
            host.apply_thread_share()
            usage.prompt_tokens = len(tokens)
            usage.cached_tokens = host.prepare(tokens, prefill)  # also parks another conversation's state
            if params.fresh:
                host.llm.reset()
                usage.cached_tokens = 0
            kwargs = dict(prompt=tokens, max_tokens=params.max_tokens, temperature=params.temperature,
                          top_p=params.top_p, repeat_penalty=params.repeat_penalty,
                          stop=params.stop or None, stream=True)
            if params.seed is not None:
                kwargs["seed"] = params.seed
            if params.json_schema is not None:
                kwargs["grammar"] = host.grammar(params.json_schema)
            if params.min_tokens:
                kwargs["logits_processor"] = host.min_tokens_processor(len(tokens), params.min_tokens)
            try:
                for n, chunk in enumerate(host.llm.create_completion(**kwargs), 1):
                    if n % SHARE_CHECK_TOKENS == 0:  # another process may have started or stopped
                        host.apply_thread_share()
                    choice = chunk["choices"][0]
                    if choice.get("finish_reason"):
                        usage.finish_reason = choice["finish_reason"]
                    if choice.get("text"):
                        usage.completion_tokens += 1
                        yield choice["text"]
            except (RuntimeError, ValueError) as exc:
                raise BackendError(f"llama.cpp generation failed: {exc}") from exc
