"""A pickled object that runs code when unpickled: stands in for a model or checkpoint file that would."""

from __future__ import annotations

CODE_RAN: list[str] = []


def _mark(msg: str) -> None:
    CODE_RAN.append(msg)


class Evil:
    """Unpickling this calls _mark, which records that code ran; safe loaders must refuse it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_mark, ("executed",))
