"""HTTP sessions as an instance keeps them: the first answer sets `JSESSIONID` and
`glide_user_route` (the node the session sticks to); a request that sends them back joins that
session, and one session's requests are served one after another (KB0755706). A request without
a known session cookie starts a session of its own."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie

MAX_SESSIONS = 20_000  # the oldest idle sessions are forgotten past this many


@dataclass
class Session:
    """One session: its id, the node serving it, and the lock that serialises it."""

    session_id: str
    node: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def route(self) -> str:
        return f"glide.{self.node:032x}"


class Sessions:
    """The instance's sessions, assigned to nodes in turn."""

    def __init__(self, nodes: int, *, serialize: bool = True) -> None:
        self.serialize = serialize
        self._nodes = max(nodes, 1)
        self._lock = threading.Lock()
        self._known: OrderedDict[str, Session] = OrderedDict()
        self._next_node = 0
        self.created = 0

    def join(self, cookie_header: str) -> tuple[Session, tuple[str, ...]]:
        """The session a request belongs to, and the Set-Cookie values to send (for a new one)."""
        wanted = _cookie(cookie_header, "JSESSIONID")
        with self._lock:
            found = self._known.get(wanted) if wanted else None
            if found is not None:
                self._known.move_to_end(found.session_id)
                return found, ()
            session = Session(secrets.token_hex(16).upper(), self._next_node)
            self._next_node = (self._next_node + 1) % self._nodes
            self._known[session.session_id] = session
            self.created += 1
            while len(self._known) > MAX_SESSIONS:
                self._known.popitem(last=False)
        cookies = (
            f"JSESSIONID={session.session_id}; Path=/; Secure; HttpOnly",
            f"glide_user_route={session.route}; Path=/; Secure; HttpOnly",
        )
        return session, cookies

    @contextmanager
    def serving(self, session: Session) -> Iterator[None]:
        """Hold the session while its request is served (when sessions are serialised)."""
        if not self.serialize:
            yield
            return
        with session.lock:
            yield


def _cookie(header: str, name: str) -> str:
    if not header:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel else ""
