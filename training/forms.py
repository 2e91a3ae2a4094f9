"""Forms of the training pages."""

from __future__ import annotations

from typing import Any

from django import forms

from training import presets, selectors

MAX_STEPS = 10_000_000


class RunStartForm(forms.Form):
    """Start a run: a preset, optionally a step count, and which stored photos to train on."""

    preset = forms.ChoiceField(choices=[])
    steps = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_STEPS, help_text="empty: the preset's full schedule"
    )
    room = forms.ChoiceField(required=False, choices=[], label="Photos")
    name = forms.CharField(required=False, max_length=100)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["preset"].choices = [(p.name, p.label) for p in presets.web_presets()]  # type: ignore[attr-defined]
        rooms = [(room, f"only {room} photos") for room in selectors.room_choices()]
        self.fields["room"].choices = [("", "all stored photos"), *rooms]  # type: ignore[attr-defined]


class RunResumeForm(forms.Form):
    """Resume a run, optionally to a new total of steps."""

    steps = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_STEPS, help_text="empty: the run's current total"
    )
