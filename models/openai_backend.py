"""A backend for any OpenAI-compatible chat endpoint (llama.cpp server, vLLM, Ollama, hosted APIs).

This is how simulation and judging scale out past one machine: the model runs elsewhere and we
stream its reply through the ``openai`` client. The client is imported lazily so the rest of the
app works without it.

Server quirks handled here:

* Structured output is requested as ``response_format={"type": "json_schema", ...}`` (the OpenAI
  form). llama-cpp-python's server only knows ``{"type": "json_object", "schema": ...}`` and
  answers the former with an error, so on rejection we retry once with that form and remember the
  choice for this instance.
* Token usage is asked for with ``stream_options.include_usage``. Servers that ignore the option
  (llama-cpp-python's does) never send it; we then count streamed deltas as completion tokens
  (such servers send one token per chunk) and estimate prompt tokens from the text length.
* A model that declines to answer in OpenAI's structured form streams ``delta.refusal`` instead of
  content. A reply that is only a refusal raises ``BackendError`` quoting it, so a judge run
  records why that session got no score and a session shows a clear error, not an empty reply.
* ``repeat_penalty`` has no OpenAI equivalent and is not sent: a strict server would reject an
  unknown parameter.
"""
from __future__ import annotations

import os
import re
from typing import Any, Iterator

from models.base import (
    BackendError,
    BackendUnavailableError,
    Capabilities,
    GenParams,
    TextStream,
    Usage,
    clean_messages,
    split_prefix,
)

# Status codes that mean "this request is wrong for reasons unrelated to response_format";
# retrying with another format would only hide the real problem.
_NO_FALLBACK_STATUS = {401, 403, 404, 408, 429}
_SCHEMA_FORMAT = "json_schema"
_OBJECT_FORMAT = "json_object"
_MAX_CAUSE_CHARS = 300


class OpenAIBackend:
    """Chat model served behind an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    capabilities = Capabilities(prefix=False, json_schema=True)

    def __init__(
        self,
        id: str,
        base_url: str,
        model: str,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
    ):
        if not base_url or not base_url.strip():
            raise ValueError("OpenAI backend needs a base_url, e.g. http://127.0.0.1:8080/v1")
        try:
            import httpx
            import openai
        except ImportError as exc:
            raise BackendUnavailableError(
                "The OpenAI-compatible backend needs the 'openai' package: pip install openai"
            ) from exc
        self.id = id
        self.base_url = base_url.strip()
        self.model = model
        self.timeout = timeout
        self._openai = openai
        self._httpx = httpx
        # Start optimistic; downgraded to json_object once a server rejects json_schema.
        self._schema_format = _SCHEMA_FORMAT
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=_resolve_api_key(api_key, api_key_env),
            timeout=timeout,
            max_retries=max_retries,
        )

    def stream(self, messages: list[dict], params: GenParams) -> TextStream:
        convo, prefix = split_prefix(messages)
        # Checked eagerly (not inside the generator) so the caller learns at call time.
        if prefix or (messages and messages[-1].get("prefix")):
            raise ValueError("this backend cannot continue a partial reply")
        convo = clean_messages(convo)
        return TextStream(lambda usage: self._generate(convo, params, usage))

    # -- request -------------------------------------------------------------------------------

    def _generate(self, messages: list[dict], params: GenParams, usage: Usage) -> Iterator[str]:
        deltas = 0
        saw_usage = False
        refusal: list[str] = []
        chunks = self._open(messages, params)
        try:
            for chunk in self._guard(chunks):
                if chunk.usage is not None:
                    saw_usage = True
                    _copy_usage(chunk.usage, usage)
                for choice in chunk.choices or []:
                    if choice.finish_reason:
                        usage.finish_reason = choice.finish_reason
                    text = choice.delta.content if choice.delta else None
                    if choice.delta and getattr(choice.delta, "refusal", None):
                        refusal.append(choice.delta.refusal)
                    if text:
                        deltas += 1
                        yield text
        finally:
            chunks.close()
        if refusal and not deltas:
            raise BackendError(f"The model refused to answer: {''.join(refusal)[:_MAX_CAUSE_CHARS]}")
        if not saw_usage:
            usage.completion_tokens = deltas
            usage.prompt_tokens = _estimate_tokens(messages)

    def _open(self, messages: list[dict], params: GenParams):
        """Start the streaming request, downgrading the schema format once if it is refused."""
        kwargs = _request_kwargs(self.model, messages, params)
        if params.json_schema is None:
            return self._call(kwargs)
        chosen = self._schema_format
        try:
            return self._call(kwargs, _response_format(chosen, params.json_schema))
        except BackendError as exc:
            if chosen != _SCHEMA_FORMAT or not _rejects_schema_format(exc):
                raise
            first_error = exc
        try:
            chunks = self._call(kwargs, _response_format(_OBJECT_FORMAT, params.json_schema))
        except BackendError:
            # Both forms failed: the first error describes the request we actually wanted.
            raise first_error from first_error.__cause__
        self._schema_format = _OBJECT_FORMAT
        return chunks

    def _call(self, kwargs: dict[str, Any], response_format: dict | None = None):
        extra = {"response_format": response_format} if response_format else {}
        try:
            return self._client.chat.completions.create(**kwargs, **extra)
        except self._openai.APIError as exc:
            raise self._error(exc) from exc
        except self._httpx.HTTPError as exc:
            raise self._error(exc) from exc

    def _guard(self, chunks) -> Iterator[Any]:
        """Iterate the SSE stream, turning transport failures mid-reply into BackendError."""
        try:
            yield from chunks
        except self._openai.APIError as exc:
            raise self._error(exc) from exc
        except self._httpx.HTTPError as exc:
            raise self._error(exc) from exc

    # -- errors --------------------------------------------------------------------------------

    def _error(self, exc: Exception) -> BackendError:
        """A short, user-facing message naming the endpoint and the cause (no traceback text)."""
        return BackendError(f"OpenAI-compatible endpoint {self.base_url}: {self._describe(exc)}")

    def _describe(self, exc: Exception) -> str:
        openai = self._openai
        if isinstance(exc, (openai.APITimeoutError, self._httpx.TimeoutException)):
            return f"request timed out after {self.timeout:g} s"
        if isinstance(exc, openai.APIConnectionError):
            # The client says only "Connection error."; the reason lives in the httpx cause.
            reason = exc.__cause__ or exc.__context__
            return f"cannot connect ({_short(reason) if reason else _short(exc)})"
        if isinstance(exc, openai.APIStatusError):
            return f"HTTP {exc.status_code}: {_status_message(exc)}"
        return _short(exc) or type(exc).__name__


def _resolve_api_key(api_key: str | None, api_key_env: str | None) -> str:
    if api_key:
        return api_key
    if api_key_env and os.environ.get(api_key_env):
        return os.environ[api_key_env]
    # The client refuses an empty key, and local servers ignore whatever is sent.
    return "not-needed"


def _request_kwargs(model: str, messages: list[dict], params: GenParams) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    # Only sent when set: some servers reject null or empty values for these.
    if params.stop:
        kwargs["stop"] = list(params.stop)
    if params.seed is not None:
        kwargs["seed"] = params.seed
    return kwargs


def _response_format(kind: str, schema: dict) -> dict[str, Any]:
    if kind == _SCHEMA_FORMAT:
        return {
            "type": _SCHEMA_FORMAT,
            "json_schema": {"name": _schema_name(schema), "schema": schema, "strict": True},
        }
    # llama-cpp-python's form: the schema is compiled into a grammar.
    return {"type": _OBJECT_FORMAT, "schema": schema}


def _schema_name(schema: dict) -> str:
    """OpenAI requires a name of [a-zA-Z0-9_-], at most 64 characters."""
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", str(schema.get("title") or "")).strip("_")
    return (name or "output")[:64]


def _rejects_schema_format(exc: BackendError) -> bool:
    """Whether an error plausibly means "this server does not know json_schema".

    A client error (4xx) qualifies unless it is about auth, the model or rate limits. A server
    error qualifies only when it names the field: llama-cpp-python answers an unknown
    response_format type with HTTP 500, while a transient 500 must not downgrade us for good to a
    form that some servers accept but do not enforce.
    """
    cause = exc.__cause__
    status = getattr(cause, "status_code", None)
    if status is None or status in _NO_FALLBACK_STATUS:
        return False
    if 400 <= status < 500:
        return True
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text


def _copy_usage(src: Any, usage: Usage) -> None:
    usage.prompt_tokens = src.prompt_tokens or 0
    usage.completion_tokens = src.completion_tokens or 0
    details = getattr(src, "prompt_tokens_details", None)
    usage.cached_tokens = (getattr(details, "cached_tokens", None) or 0) if details else 0


def _estimate_tokens(messages: list[dict]) -> int:
    # Roughly four characters per token for English text, plus a few template tokens per turn.
    chars = sum(len(m["content"]) for m in messages)
    return chars // 4 + 4 * len(messages)


def _status_message(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail")
        if message:
            return _short(message)
    return _short(exc.message)


def _short(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _MAX_CAUSE_CHARS else text[: _MAX_CAUSE_CHARS - 1] + "…"
