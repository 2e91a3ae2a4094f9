"""find_similar PATH [PATH ...] [--k 10] [--json]: match photos against the collection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from search.matching.engine import SearchResult, image_search, query_from_file
from search.ml.images.normalise import ImageRejected


class Command(BaseCommand):
    help = "Find exact copies, edited copies, same-room and similar photos for each PATH."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--k", type=int, default=10, help="how many 'similar look' results to keep")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args: Any, **opts: Any) -> None:
        failures = 0
        # The model and the index are loaded once (cached in-process) and reused for every path.
        for path in opts["paths"]:
            try:
                if not path.is_file():
                    raise ImageRejected("no such file")
                result = image_search(query_from_file(path, path.name), k=opts["k"])
            except ImageRejected as exc:
                failures += 1
                self._error(str(path), str(exc), opts["json"])
                continue
            self._print(str(path), result, opts["json"])
        if failures == len(opts["paths"]):
            raise CommandError("no query could be searched")

    def _error(self, path: str, message: str, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"query": path, "error": message, "matches": []}))
        else:
            self.stderr.write(f"{path}: {message}")

    def _print(self, path: str, result: SearchResult, as_json: bool) -> None:
        data = result.as_json(path)
        if as_json:
            self.stdout.write(json.dumps(data))
            return
        self.stdout.write(f"{path} ({data['took_ms']} ms)")
        for m in data["matches"]:
            self.stdout.write(
                f"  {m['level']:<10} {m['score']:.3f} photo #{m['photo_id']} {m['original_name']} "
                f"(listing #{m['listing_id']})"
            )
