"""Photos a user's searches showed them, kept in their session so they may open those photos after.

A realtor may see other agents' photos only where a search of theirs showed them (or where they match the
realtor's own photos, see selectors._others_photos_visible): the search pages record what they showed here.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.sessions.backends.base import SessionBase

SESSION_KEY = "search_seen_photos"
# The newest ids are kept: several full result pages' worth, and a bounded session.
LIMIT = 2000


def seen_photos(session: SessionBase) -> frozenset[int]:
    """Ids of the photos this session's searches showed."""
    stored = session.get(SESSION_KEY, [])
    if not isinstance(stored, list):
        return frozenset()
    return frozenset(i for i in stored if isinstance(i, int))


def seen_add(session: SessionBase, photo_ids: Iterable[int]) -> None:
    """Remember that a search showed these photos (the oldest are forgotten past LIMIT)."""
    new = list(dict.fromkeys(int(i) for i in photo_ids))
    if not new:
        return
    stored = session.get(SESSION_KEY, [])
    old = stored if isinstance(stored, list) else []
    fresh = set(new)
    kept = [i for i in old if isinstance(i, int) and i not in fresh]
    session[SESSION_KEY] = [*kept, *new][-LIMIT:]
