"""transformers + PEFT backend: one dense base per directory, any number of LoRA adapters on it.

A ``HFHost`` owns one loaded base model (CUDA bf16 when available, else CPU fp32) and the PEFT
adapters loaded onto it; ``get_host`` shares hosts by directory so several catalog entries that
differ only in their adapter cost one copy of the weights. ``HFBackend`` is the ``ChatBackend``:
it renders the chat so that message text can never become special tokens, generates on a worker
thread under the host lock (one model instance is not thread safe) and streams text deltas.

torch, transformers and peft are imported only when a model is actually loaded.
"""
from __future__ import annotations

import functools
import hashlib
import threading
from pathlib import Path
from typing import Any, Iterator

from models.base import (
    BackendError,
    BackendUnavailableError,
    Capabilities,
    GenParams,
    ModelNotFoundError,
    TextStream,
    Usage,
    clean_messages,
    split_prefix,
)
from models.compute_thread import ComputeThread
from models.prompt import render_segments

GREEDY_TEMPERATURE = 1e-5
_INSTALL_HINT = "pip install torch transformers peft"


def _import_stack() -> tuple[Any, Any]:
    """torch and transformers, or a user-facing error naming what to install."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise BackendUnavailableError(
            f"The transformers backend needs torch and transformers ({exc}): {_INSTALL_HINT}"
        ) from exc
    return torch, transformers


def _import_peft() -> Any:
    try:
        import peft
    except ImportError as exc:
        raise BackendUnavailableError(
            f"Loading a LoRA adapter needs the peft package ({exc}): pip install peft"
        ) from exc
    return peft


def _check_base_dir(base_dir: str | Path) -> Path:
    path = Path(base_dir).expanduser()
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"Model directory not found (no config.json): {path}")
    return path.resolve()


def _check_adapter_dir(adapter_path: str | Path) -> Path:
    path = Path(adapter_path).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"Adapter not found (no adapter_config.json): {path}")
    return path.resolve()


def adapter_name_for(path: str | Path) -> str:
    """A PEFT adapter name derived from the adapter's path.

    PEFT keeps adapters in ``nn.ModuleDict``s, whose keys must not contain dots, so paths can't be
    used as-is; hashing also lets two backends pointing at the same adapter share one copy.
    """
    digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
    return f"adapter_{digest}"


def default_device() -> str:
    torch, _ = _import_stack()
    return "cuda" if torch.cuda.is_available() else "cpu"


class HFHost:
    """One loaded base model, its tokenizer and the adapters loaded onto it.

    ``lock`` guards the model: hold it for a whole generation and for adapter changes.
    """

    def __init__(self, base_dir: str | Path, device: str | None = None):
        torch, transformers = _import_stack()
        self.base_dir = _check_base_dir(base_dir)
        self.device = device or default_device()
        if self.device.startswith("cuda"):
            # bf16 halves memory at no quality cost on GPUs that have it; older ones get fp16.
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.dtype = torch.float32  # CPU half-precision matmuls are slow and lossy
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                self.base_dir, local_files_only=True
            )
            model = transformers.AutoModelForCausalLM.from_pretrained(
                self.base_dir, dtype=self.dtype, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise BackendError(f"Could not load the model in {self.base_dir}: {exc}") from exc
        self.model = model.to(self.device).eval()
        self.lock = threading.Lock()
        # The fast tokenizer toggles a flag on its Rust object for split_special_tokens, so two
        # threads tokenizing at once could each see the other's setting.
        self.tokenizer_lock = threading.Lock()
        self.adapters: dict[str, str] = {}
        self.compute = ComputeThread(name=f"hf-compute-{self.base_dir.name}")

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Load a PEFT adapter under ``name`` (no-op when that name is already loaded)."""
        adapter_dir = _check_adapter_dir(path)
        with self.lock:
            if name in self.adapters:
                if self.adapters[name] != str(adapter_dir):
                    raise BackendError(f"Adapter name {name!r} is already used by {self.adapters[name]}")
                return
            peft = _import_peft()
            try:
                if not self.adapters:
                    # The first adapter turns the plain model into a PeftModel; later ones join it.
                    self.model = peft.PeftModel.from_pretrained(
                        self.model, str(adapter_dir), adapter_name=name, is_trainable=False
                    )
                else:
                    self.model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise BackendError(f"Could not load adapter {adapter_dir}: {exc}") from exc
            self.model.eval()
            self.adapters[name] = str(adapter_dir)

    def adapter_context(self, name: str | None):
        """Make ``name`` the active adapter (None: the bare base). Call with ``lock`` held.

        Returns a context manager to run the generation in.
        """
        import contextlib

        if not self.adapters:
            return contextlib.nullcontext()
        if name is None:
            return self.model.disable_adapter()
        if name not in self.adapters:
            raise BackendError(f"Adapter {name!r} is not loaded on {self.base_dir}")
        self.model.set_adapter(name)
        return contextlib.nullcontext()

    def encode(self, messages: list[dict], prefix: str = "") -> list[int]:
        """Token ids of the chat prompt; see ``encode_chat``."""
        with self.tokenizer_lock:
            return encode_chat(self.tokenizer, messages, prefix)


_HOSTS: dict[tuple[str, str | None], HFHost] = {}
_HOSTS_LOCK = threading.Lock()


def get_host(base_dir: str | Path, device: str | None = None) -> HFHost:
    """The shared host for ``base_dir`` (loaded on first use)."""
    path = _check_base_dir(base_dir)
    # Resolve the default device first, so device=None and an explicit "cpu" share one host.
    key = (str(path), device or default_device())
    # Loading under the global lock is slow for other callers but guarantees one copy per base.
    with _HOSTS_LOCK:
        host = _HOSTS.get(key)
        if host is None:
            host = _HOSTS[key] = HFHost(path, device)
        return host


def encode_chat(tokenizer: Any, messages: list[dict], prefix: str = "") -> list[int]:
    """Prompt ids for ``messages`` (+ generation prompt, + assistant ``prefix``).

    Template markup is tokenized with special tokens recognised; message text with
    ``split_special_tokens`` so a typed ``<|im_start|>`` stays ordinary text.
    """

    def render(msgs: list[dict]) -> str:
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    ids: list[int] = []
    for text, is_user_text in render_segments(render, clean_messages(messages), prefix):
        ids.extend(
            tokenizer(text, add_special_tokens=False, split_special_tokens=is_user_text)["input_ids"]
        )
    return ids


class StopFilter:
    """Cuts a stream of text deltas at the first stop string.

    Text that could be the start of a stop string is held back until the next delta shows
    whether it is one, so a stop string split over several deltas is never partly emitted.
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.hit = False

    def feed(self, delta: str) -> str:
        if self.hit:
            return ""
        self.pending += delta
        found = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if found:
            self.hit = True
            out, self.pending = self.pending[: min(found)], ""
            return out
        keep = self._held_length()
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out

    def _held_length(self) -> int:
        """Length of the longest tail of ``pending`` that begins some stop string."""
        for size in range(min(len(self.pending), max((len(s) for s in self.stops), default=0)), 0, -1):
            tail = self.pending[-size:]
            if any(s.startswith(tail) for s in self.stops):
                return size
        return 0

    def flush(self) -> str:
        out, self.pending = ("" if self.hit else self.pending), ""
        return out


@functools.cache
def _control_class() -> type:
    """A StoppingCriteria built on first use, so that importing this module needs no transformers."""
    torch, transformers = _import_stack()

    class _Control(transformers.StoppingCriteria):
        """Stops generation when the consumer went away or a stop string was produced."""

        def __init__(self, tokenizer: Any, prompt_len: int, stops: list[str], cancel: threading.Event):
            self.tokenizer = tokenizer
            self.prompt_len = prompt_len
            self.stops = [s for s in stops if s]
            self.cancel = cancel
            self.stop_hit = False

        def __call__(self, input_ids, scores, **kwargs):
            done = self.cancel.is_set()
            if not done and self.stops:
                # Decoding the whole completion each step is cheap next to a forward pass and,
                # unlike per-token checks, sees stop strings that span token boundaries.
                text = self.tokenizer.decode(input_ids[0, self.prompt_len :], skip_special_tokens=True)
                self.stop_hit = done = any(s in text for s in self.stops)
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return _Control


class HFBackend:
    """A ``ChatBackend`` on a shared ``HFHost``, optionally with one LoRA adapter active."""

    # json_schema is not enforced by transformers' generate: callers that need JSON validate it.
    capabilities = Capabilities(prefix=True, json_schema=False)

    def __init__(
        self,
        id: str,
        base_dir: str | Path,
        adapter_path: str | Path | None = None,
        device: str | None = None,
    ):
        self.id = id
        # Check paths now so a bad catalog entry fails when it is built, not mid-session;
        # the weights themselves load lazily on first use.
        self.base_dir = _check_base_dir(base_dir)
        self.adapter_path = _check_adapter_dir(adapter_path) if adapter_path else None
        self.adapter_name = adapter_name_for(self.adapter_path) if self.adapter_path else None
        self.device = device
        self._host: HFHost | None = None

    def host(self) -> HFHost:
        """The loaded host with this backend's adapter on it (loads on first call)."""
        if self._host is None:
            host = get_host(self.base_dir, self.device)
            if self.adapter_path is not None:
                host.load_adapter(self.adapter_name, self.adapter_path)
            self._host = host
        return self._host

    def stream(self, messages: list[dict], params: GenParams) -> TextStream:
        # params.json_schema is not enforced here (capabilities.json_schema is False): callers that need
        # structured output validate and retry.
        host = self.host()
        convo, prefix = split_prefix(messages)
        ids = host.encode(convo, prefix)
        limit = getattr(host.model.config, "max_position_embeddings", None)
        if limit and len(ids) + params.max_tokens > limit:
            raise BackendError(
                f"The conversation is too long for {self.id}: {len(ids)} prompt tokens + "
                f"{params.max_tokens} to generate exceeds the model's {limit}"
            )
        return TextStream(lambda usage: self._run(host, ids, params, usage))

    def _generate_kwargs(self, host: HFHost, params: GenParams) -> dict:
        pad = host.tokenizer.pad_token_id
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "min_new_tokens": params.min_tokens or None,
            # Without a pad id generate() warns on every call; EOS is the usual stand-in.
            "pad_token_id": host.tokenizer.eos_token_id if pad is None else pad,
        }
        if params.temperature is None or params.temperature <= GREEDY_TEMPERATURE:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        if params.repeat_penalty and params.repeat_penalty != 1.0:
            kwargs["repetition_penalty"] = params.repeat_penalty
        return kwargs

    def _run(self, host: HFHost, ids: list[int], params: GenParams, usage: Usage) -> Iterator[str]:
        torch, transformers = _import_stack()
        usage.prompt_tokens = len(ids)
        cancel = threading.Event()
        streamer = transformers.TextIteratorStreamer(
            host.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        control = _control_class()(host.tokenizer, len(ids), params.stop, cancel)
        result: dict[str, Any] = {}
        kwargs = self._generate_kwargs(host, params)
        kwargs.update(
            streamer=streamer, stopping_criteria=transformers.StoppingCriteriaList([control])
        )
        # On the host's one long-lived thread: a fresh thread per reply would pay PyTorch's
        # per-thread warm-up every time (models/compute_thread.py has the numbers).
        started = threading.Event()

        def generate() -> None:
            started.set()
            self._worker(host, torch, ids, kwargs, params.seed, cancel, streamer, result)
        finished = host.compute.submit(generate)
        stops = StopFilter(params.stop)
        try:
            for delta in streamer:
                text = stops.feed(delta)
                if text:
                    yield text
                if stops.hit:
                    break
            tail = stops.flush()
            if tail:
                yield tail
        finally:
            # Runs on normal end, on a stop string and on close(): a running worker sees `cancel` at
            # its next step, so waiting is prompt; a queued one will see it when its turn comes.
            cancel.set()
            if started.is_set():
                finished.wait()
        if "error" in result:
            raise BackendError(f"{self.id}: generation failed: {result['error']}") from result["error"]
        self._fill_usage(host, usage, result, params, control.stop_hit or stops.hit)

    def _worker(self, host, torch, ids, kwargs, seed, cancel, streamer, result) -> None:
        """Generation thread body: takes the host lock, activates the adapter and generates."""
        # Polling the lock lets a cancelled stream give up its place in the queue.
        while not host.lock.acquire(timeout=0.05):
            if cancel.is_set():
                streamer.end()
                return
        try:
            if cancel.is_set():
                streamer.end()
                return
            input_ids = torch.tensor([ids], dtype=torch.long, device=host.device)
            with host.adapter_context(self.adapter_name), torch.inference_mode():
                if seed is not None:
                    torch.manual_seed(seed)  # global RNG: only meaningful while we hold the lock
                out = host.model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs
                )
            result["completion"] = out[0, len(ids) :].tolist()
        except Exception as exc:  # surfaced to the consumer as BackendError
            result["error"] = exc
            streamer.end()  # unblock the consumer, which is waiting on the streamer's queue
        finally:
            host.lock.release()

    def _fill_usage(self, host, usage: Usage, result: dict, params: GenParams, stop_hit: bool) -> None:
        completion = result.get("completion", [])
        usage.completion_tokens = len(completion)
        eos = host.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {host.tokenizer.eos_token_id}
        ended = stop_hit or (completion and completion[-1] in eos_ids)
        if not ended and len(completion) >= params.max_tokens:
            usage.finish_reason = "length"
        else:
            usage.finish_reason = "stop"
