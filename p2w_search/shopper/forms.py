"""What a shopper types or uploads for "like this, but ...": the changes in order, the method, a photo."""

from django import forms

from p2w_search.composition import DEFAULT_METHOD, METHODS, check_change
from p2w_search.files import read_query_photo
from p2w_search.imaging import ImageRejected

__all__ = ["METHOD_LABELS", "MAX_CHANGES", "CHANGE_MAX_LENGTH", "ChangesForm", "PhotoForm"]

METHOD_LABELS = {
    "pic2word_plus_image": "Pic2Word + reference photo (composed)",
    "pic2word": "Pic2Word (composed)",
    "image_only": "Image only (baseline)",
    "text_only": "Text only (baseline)",
    "image_plus_text": "Image + text (baseline)",
    "fusion": "Pic2Word + image + text (fusion)",
}
MAX_CHANGES = 5  # changes in a row; each one lengthens the sentence the model reads
CHANGE_MAX_LENGTH = 300


def _method_field():
    field = forms.ChoiceField(required=False, label="Method", choices=[(m, METHOD_LABELS.get(m, m)) for m in METHODS])
    field.initial = DEFAULT_METHOD
    return field


def _check(change):
    if "\x00" in change:
        raise forms.ValidationError("Null characters are not allowed.")
    if len(change) > CHANGE_MAX_LENGTH:
        raise forms.ValidationError(f"Ensure each change has at most {CHANGE_MAX_LENGTH} characters "
                                    f"(this one has {len(change)}).")
    try:
        check_change(change)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None


class ChangesField(forms.Field):
    """The ``change`` parameter, repeated once per change in the order asked; blank ones are dropped."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        return [str(text).strip() for text in (value or []) if str(text).strip()]

    def validate(self, value):
        super().validate(value)
        if len(value) > MAX_CHANGES:
            raise forms.ValidationError(f"At most {MAX_CHANGES} changes in a row; remove one to add another.")
        for change in value:
            _check(change)


class ChangesForm(forms.Form):
    """``?change=in+red&change=with+stripes&method=pic2word``: the changes asked of a reference, and the method."""

    change = ChangesField(label="Like this, but…", required=True,
                          error_messages={"required": "Say what to change, e.g. “in red”."})
    method = _method_field()

    def clean_method(self):
        return self.cleaned_data["method"] or DEFAULT_METHOD


class PhotoForm(forms.Form):
    """The shopper's photo, an optional change and the method; ``photo`` becomes the photo's bytes when valid."""

    photo = forms.FileField(label="Photo")
    change = forms.CharField(required=False, label="…but", max_length=CHANGE_MAX_LENGTH)
    status = 400  # of the page that shows the form's errors: 503 when the server could not keep a valid photo
    method = _method_field()

    def clean_photo(self):
        try:
            return read_query_photo(self.cleaned_data["photo"])
        except ImageRejected as exc:
            raise forms.ValidationError(f"This photo cannot be used: {exc.reason}.") from None

    def clean_change(self):
        change = self.cleaned_data["change"].strip()
        if change:
            _check(change)
        return change

    def clean_method(self):
        return self.cleaned_data["method"] or DEFAULT_METHOD
