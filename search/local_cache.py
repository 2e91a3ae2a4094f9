"""Stored photos' SIFT features, parsed once per process and kept in a bounded LRU for verification."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from django.conf import settings

from search.ml.localmatch import LocalConfig, LocalFeatures
from search.models import Feature
from search.services.features import LOCAL_ENCODER


class LocalFeaturesCache:
    """Parsed features keyed on their Feature row: a re-extracted photo gets a new row, so a new entry."""

    def __init__(self, size: int, keep: int) -> None:
        self.size, self.keep = size, keep
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, LocalFeatures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def features(self, photo_ids: Iterable[int]) -> dict[int, LocalFeatures]:
        """{photo id: its features} for the photos that have them; only rows not cached are read."""
        rows = dict(
            Feature.objects.filter(encoder=LOCAL_ENCODER, photo_id__in=list(photo_ids)).values_list(
                "photo_id", "pk"
            )
        )
        found: dict[int, LocalFeatures] = {}
        with self._lock:
            for photo_id, row in rows.items():
                if row in self._entries:
                    self._entries.move_to_end(row)
                    found[photo_id] = self._entries[row]
        missing = [row for photo_id, row in rows.items() if photo_id not in found]
        if missing:
            parsed = {
                row: (photo_id, LocalFeatures.from_bytes(bytes(data)).strongest(self.keep))
                for row, photo_id, data in Feature.objects.filter(pk__in=missing).values_list(
                    "pk", "photo_id", "data"
                )
            }
            with self._lock:
                for row, (photo_id, feats) in parsed.items():
                    found[photo_id] = self._entries[row] = feats
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return found


_cache: LocalFeaturesCache | None = None
_cache_lock = threading.Lock()


def local_features_cache() -> LocalFeaturesCache:
    """This process's cache, sized from settings (a new one when FLATSITE_LOCAL_CACHE_SIZE changes)."""
    global _cache
    size = settings.FLATSITE_LOCAL_CACHE_SIZE
    with _cache_lock:
        if _cache is None or _cache.size != size:
            # Verification only ever reads the strongest verify_features of a stored photo (see verify()).
            _cache = LocalFeaturesCache(size, LocalConfig().verify_features)
        return _cache
