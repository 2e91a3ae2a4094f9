"""Forms: parse and validate input for the web pages."""

from __future__ import annotations

from django import forms

from search.models import Listing


class ListingForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Listing
        fields = ["title", "external_id", "address", "zipcode", "bedrooms", "bathrooms", "area", "price"]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".jpg,.jpeg,.png,.webp,.gif,.zip"}))
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self, data: object, initial: object = None) -> list[object]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    # The field shadows Form.files only in the type stubs; Django's metaclass moves it into base_fields.
    files = MultipleFileField(  # type: ignore[assignment]
        help_text="Photos (JPEG, PNG, WebP, GIF) or a zip of photos."
    )
