"""Small Gradio glue shared by the tabs: user-facing errors, who is asking, picker refreshes."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from app.serving.context import AppContext
from app.serving.redact import redact_paths
from tada_core.errors import TadaError

log = logging.getLogger("app")


def user_errors(fn: Callable) -> Callable:
    """Turn a :class:`TadaError` into a ``gr.Error`` with its message; never show a traceback.

    Unexpected exceptions are logged with their traceback on the server and shown as one line.
    Messages never show the server's paths (:func:`app.serving.redact.redact_paths`).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except TadaError as err:
            raise gr.Error(html.escape(redact_paths(str(err)), quote=False), print_exception=False) from None
        except Exception as err:
            log.exception("unexpected error in %s", fn.__name__)
            text = redact_paths(f"Unexpected {type(err).__name__}: {err}. The server log has the details.")
            raise gr.Error(html.escape(text, quote=False), print_exception=False) from None

    return wrapper


NONE = "(none)"
IMAGE_BUTTONS = ["download", "fullscreen"]  # no "share": it posts to Hugging Face


def checkpoint_choices(names: list[str], allow_none: bool = False) -> list[str]:
    return ([NONE] if allow_none else []) + names


def checkpoint_dropdown(
    names: list[str], value: str | None, label: str, allow_none: bool = False, elem_id: str | None = None
) -> gr.Dropdown:
    """A checkpoint picker. Custom values are let through to the registry, which knows the names of
    checkpoints written after the page was built and refuses unknown ones with a clear message."""
    return gr.Dropdown(
        checkpoint_choices(names, allow_none), value=value, label=label, allow_custom_value=True, elem_id=elem_id
    )


def refreshed_dropdown(choices: list[str], current: str | None, fallback: str | None = None) -> dict:
    """A dropdown update with new choices that keeps the current value when it is still there."""
    value = current if current in choices else (fallback if fallback in choices else (choices[0] if choices else None))
    return gr.update(choices=choices, value=value)


def owner_of(ctx: AppContext, request: gr.Request | None) -> str:
    """The owner key of whoever sent ``request`` (:mod:`app.serving.visitors`)."""
    return ctx.visitors.owner(getattr(request, "session_hash", None))
