"""What a shopper types or uploads for "like this, but ...": the changes in order, the method, a photo."""

from django import forms

from p2w_search.composition import DEFAULT_METHOD, METHODS, check_change
from p2w_search.files import read_query_photo
from p2w_search.form_data import given_more_than_once
from p2w_search.imaging import ImageRejected
from p2w_search.request_values import not_text

__all__ = ["METHOD_LABELS", "MAX_CHANGES", "CHANGE_MAX_LENGTH", "ChangesForm", "PhotoForm", "link_problem"]

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
# Django's own words, and the methods there are: a link or form that names another one says which to write instead.
UNKNOWN_METHOD = ("Select a valid choice. %(value)s is not one of the available choices. "
                  f"The methods are: {', '.join(METHODS)}.")


def _method_field():
    field = forms.ChoiceField(required=False, label="Method", choices=[(m, METHOD_LABELS.get(m, m)) for m in METHODS],
                              error_messages={"invalid_choice": UNKNOWN_METHOD})
    field.initial = DEFAULT_METHOD
    return field


def link_problem(request, *, single, read):
    """Why the request's query string cannot be read as one search (a shopper's sentence), or None.

    ``single``: the parameters a search takes once (of two values, which one is meant is
    unknown: the API refuses it too); ``read``: every parameter the page reads, whose bytes
    must be UTF-8 (Django reads other bytes as U+FFFD, which would be searched as if typed).
    """
    for name in single:
        count = len(request.GET.getlist(name))
        if count > 1:
            return f"The link gives “{name}” {count} times; give it once."
    garbled = not_text(request.META.get("QUERY_STRING", ""), read)
    if garbled:
        return f"The link’s “{garbled[0]}” is not text (its bytes are not UTF-8); type it again."
    return None


def _check(change):
    if "\x00" in change:
        raise forms.ValidationError("Null characters are not allowed.")
    if "\ufffd" in change:  # Django reads a form's bytes that are not UTF-8 so: "in \xffred" was kept as "in �red"
        raise forms.ValidationError("This change holds “�” (U+FFFD), which stands for bytes that were not UTF-8; "
                                    "type it again.")
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
    retry_after = None  # with a 429 or 503 status: seconds before sending it again is worth it (Retry-After)
    method = _method_field()

    def __init__(self, *args, refused=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.refused = refused  # why the photo is not read at all (the client's budget is spent), or None

    def clean_photo(self):
        if self.refused:
            raise forms.ValidationError(self.refused)
        sent = len(self.files.getlist("photo"))
        if sent > 1:  # without the page's script, a phone can send the file input's photo and the camera's
            raise forms.ValidationError(f"Send one photo at a time; this form sent {sent}.")
        try:
            return read_query_photo(self.cleaned_data["photo"])
        except ImageRejected as exc:
            raise forms.ValidationError(f"This photo cannot be used: {exc.reason}.") from None

    def clean(self):
        data = super().clean()
        for name, reason in given_more_than_once(self.data, ("change", "method")).items():
            self.add_error(name, reason)
        return data

    def clean_change(self):
        change = self.cleaned_data["change"].strip()
        if change:
            _check(change)
        return change

    def clean_method(self):
        return self.cleaned_data["method"] or DEFAULT_METHOD
