"""The identity of an item of your own data, where no id names it: a digest of its content.

Splits are keyed by identity (bal.splits.split_by_identity), so an item must stay the same item when it
is labelled, moved to another class folder, or when items are added before it. Equal contents are told
apart by their count among the equal ones, in file order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def digest(content: bytes) -> str:
    """A content's SHA-256, 16 hex digits: what suggest records, to tell later that an item is the one it saw."""
    return hashlib.sha256(content).hexdigest()[:16]


def content_ids(contents: Iterable[bytes]) -> list[str]:
    """``<digest>#<n>`` for each content: its digest and its count among equal contents."""
    seen: dict[str, int] = {}
    ids = []
    for content in contents:
        d = digest(content)
        seen[d] = seen.get(d, 0) + 1
        ids.append(f"{d}#{seen[d]}")
    return ids
