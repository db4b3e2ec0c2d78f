"""What a client is told when a handler fails: the app's own messages, or a generic one with a
reference id, never the exception's text.

A ``gr.Error`` is the app speaking to the user ("Your role (patient) may not do this.") and passes
unchanged. Anything else is a bug or a bad request, and its text ("'NoneType' object is not
subscriptable") says something about the server's insides, so the client gets "Something went
wrong (reference 3f9a1c2e)" and the server log and audit trail get the detail under that reference.
A payload Gradio cannot even read into the handler's inputs (a dict where a string belongs) fails
before the handler runs; that refusal is audited as ``access.invalid_input``.

The hook is the one place every event passes through, ``Blocks.process_api``, wrapped on the
instance (launch with ``show_error=False`` so nothing else leaks).
"""
from __future__ import annotations

import logging
import math
import secrets

import gradio as gr
from gradio.exceptions import ComponentProcessingError

from vocabulary import EventKind

log = logging.getLogger("theralab.errors")


def _endpoint(block_fn) -> str:
    return str(getattr(block_fn, "api_name", None) or getattr(block_fn, "name", None) or block_fn)[:100]


def _username(kwargs) -> str:
    request = kwargs.get("request")
    if isinstance(request, list):
        request = request[0] if request else None
    return str(getattr(request, "username", None) or "anonymous")


# What a client may send for each kind of input; Gradio would otherwise turn a number or a dict
# into its string form (a stored message "{'a': 1}") or read "notabool" as a ticked box.
_ACCEPTS = {
    gr.Textbox: (str, type(None)),
    gr.Checkbox: (bool,),
    gr.Number: (int, float, type(None)),
    gr.Slider: (int, float),
}


_SCALAR = (str, int, float, type(None))


def _problem(component, value) -> str | None:
    """What is wrong with ``value`` for ``component`` ("must be ..."), or None."""
    if isinstance(component, gr.Dropdown):
        if getattr(component, "multiselect", False):
            ok = value is None or (isinstance(value, list) and all(isinstance(v, _SCALAR) for v in value))
            return None if ok else "must be a list of choices"
        return None if isinstance(value, _SCALAR) and not isinstance(value, bool) else "must be one choice"
    for kind, accepted in _ACCEPTS.items():
        if isinstance(component, kind):
            if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
                return "must be " + "/".join(t.__name__ for t in accepted if t is not type(None))
            if isinstance(value, float) and not math.isfinite(value):  # NaN passes min/max checks
                return "must be a finite number"
    return None


def _wrong_type(block_fn, inputs) -> str | None:
    """Why the raw payload does not fit the handler's input components, or None."""
    components = getattr(block_fn, "inputs", None) or []
    if not isinstance(inputs, list):
        return None
    for component, value in zip(components, inputs):
        problem = _problem(component, value)
        if problem:
            label = getattr(component, "label", None) or type(component).__name__
            return f"{str(label)[:40]} {problem}"
    return None


def install_error_guard(blocks: gr.Blocks, audit) -> None:
    """Wrap ``blocks.process_api`` so unexpected errors reach the client only as a reference."""
    original = blocks.process_api

    async def process_api(block_fn, inputs, *args, **kwargs):
        def referenced(action: str, exc: BaseException, shown: str) -> gr.Error:
            ref = secrets.token_hex(4)
            unexpected = action == EventKind.APP_ERROR  # a bug: the traceback goes to the server log
            log.log(logging.ERROR if unexpected else logging.WARNING, "%s in %s (reference %s): %s", action,
                    _endpoint(block_fn), ref, exc, exc_info=unexpected)
            _audit(audit, _username(kwargs), action, _endpoint(block_fn), ref, exc)
            return gr.Error(shown.replace("{ref}", ref), print_exception=False)

        wrong = _wrong_type(block_fn, inputs)
        if wrong:
            raise referenced(EventKind.ACCESS_INVALID_INPUT, TypeError(wrong),
                             f"This request's input was not valid: {wrong} (reference {{ref}}).")
        try:
            return await original(block_fn, inputs, *args, **kwargs)
        except gr.Error:
            raise
        except ComponentProcessingError as exc:
            raise referenced(EventKind.ACCESS_INVALID_INPUT, exc,
                             "This request's input was not valid (reference {ref}).") from None
        except Exception as exc:
            raise referenced(EventKind.APP_ERROR, exc, "Something went wrong (reference {ref}). Tell the study "
                             "team this reference if it happens again.") from None

    blocks.process_api = process_api


def _audit(audit, actor: str, action: str, endpoint: str, ref: str, exc: BaseException) -> None:
    try:
        audit.record(actor, action, None, endpoint=endpoint, reference=ref, error=f"{type(exc).__name__}: {exc}")
    except Exception:  # the client still gets its reference; the log line above has the detail
        log.exception("could not audit %s (reference %s)", action, ref)
