"""Who is asking: a visitor's owner key from their browser's token or, for API clients, their session.

A browser keeps a random token in its local storage (encrypted with the data folder's secret, so it
survives a server restart) and presents it when the page loads; :meth:`Visitors.bind` ties that
page's Gradio session to the token's owner key. Every later request of the page — and only the
session, never the token, travels with them — is then answered for that owner: the visitor sees
their own training job, runs and uploads after a reload or a restart. An API client
(``gradio_client``) that never loaded the page is its own visitor, keyed by its session.

The table of sessions is bounded (the oldest are forgotten first), so it cannot grow with the
number of visitors.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from app.serving.storage import owner_key

MAX_SESSIONS = 20_000


class Visitors:
    """Session → owner key, for at most ``max_sessions`` sessions (least recently used forgotten)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def bind(self, session: str, token: str) -> str:
        """Tie ``session`` to the owner of ``token``; returns the owner key."""
        owner = owner_key("browser:" + token)
        with self._lock:
            self._owners[session] = owner
            self._owners.move_to_end(session)
            while len(self._owners) > self.max_sessions:
                self._owners.popitem(last=False)
        return owner

    def owner(self, session: str | None) -> str:
        """The owner key of ``session``: its browser's, once bound, else the session's own."""
        if not session:
            return owner_key("anonymous")
        with self._lock:
            owner = self._owners.get(session)
            if owner is not None:
                self._owners.move_to_end(session)
                return owner
        return owner_key("session:" + session)

    def __len__(self) -> int:
        return len(self._owners)
