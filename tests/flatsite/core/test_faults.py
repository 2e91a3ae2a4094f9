"""Fault injection hooks: inert when unset, strict about their settings."""

from __future__ import annotations

from typing import Any

import pytest

from flatsite.core import faults


def test_no_faults_when_the_setting_is_empty(settings: Any) -> None:
    settings.FLATSITE_TEST_FAULTS = ""
    assert faults.active() == faults.Faults()
    faults.photo_decode_starting("anything.jpg")  # returns at once, kills nothing


def test_faults_are_parsed_from_the_setting(settings: Any) -> None:
    settings.FLATSITE_TEST_FAULTS = "kill_on_photo=poison.jpg, slow_photo_s=0.25"
    assert faults.active() == faults.Faults(kill_on_photo="poison.jpg", slow_photo_s=0.25)


@pytest.mark.parametrize("spec", ["kill_on_fhoto=x.jpg", "slow_photo_s"])
def test_a_misspelt_fault_is_refused(settings: Any, spec: str) -> None:
    settings.FLATSITE_TEST_FAULTS = spec
    with pytest.raises(ValueError, match="unknown fault"):
        faults.active()
