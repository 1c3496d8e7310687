"""The admin as one writer of the catalog among others: imports, the product API, embedding workers.

An import holds the products and images it writes until it commits (minutes for a large catalog),
and writes while a change form is open. The admin neither waits for it without end nor writes
back the values its form showed.
"""

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect

from p2w_search import locks

__all__ = ["BoundedWrites", "SaveChangedFields", "WriteRefused", "showing_initial"]


class WriteRefused(Exception):
    """Raised inside a BoundedWrites admin's write: nothing of it is written, and ``redirect_to`` says why."""

    def __init__(self, message, *, redirect_to):
        super().__init__(message)
        self.redirect_to = redirect_to


class BoundedWrites:
    """A ModelAdmin whose saves, deletes and actions wait ``locks.LOCK_WAIT_MS`` at most for rows another
    transaction holds; then nothing of the request is written, and the staff member reads why.

    A selection holding an id that cannot be one of the model's is refused in words too (Django's
    own ``response_action`` raised ValueError: a 500).
    """

    busy_message = ("Nothing was changed: another change of these rows is being written, most likely an import of a "
                    "merchant's catalog that has not ended yet. Try again once it has.")

    def changeform_view(self, request, *args, **kwargs):
        return self._bounded(request, super().changeform_view, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        return self._bounded(request, super().delete_view, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):  # actions, list_editable
        return self._bounded(request, super().changelist_view, *args, **kwargs)

    def _bounded(self, request, view, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        try:
            with locks.bounded_lock_wait():
                return view(request, *args, **kwargs)
        except locks.RowsBusy:
            self.message_user(request, self.busy_message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        except WriteRefused as refused:
            self.message_user(request, str(refused), messages.ERROR)
            return HttpResponseRedirect(refused.redirect_to)

    def response_action(self, request, queryset):
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                self.model._meta.pk.to_python(value)
        except ValidationError:
            self.message_user(request, f"The selection holds an id that is no {self.model._meta.verbose_name}'s: "
                                       "nothing was changed.", messages.ERROR)
            return None  # the list again, with the message
        return super().response_action(request, queryset)


def showing_initial(form_class):
    """``form_class``, its fields' values as the page showed them sent back in hidden inputs (``show_hidden_initial``).

    Its ``changed_data`` are then the fields the user changed, rather than those that differ from
    the row as it is now, changed by another writer meanwhile maybe. Not file fields: Django
    compares an upload with nothing.
    """
    for field in form_class.base_fields.values():
        if not isinstance(field, forms.FileField):
            field.show_hidden_initial = True
    return form_class


class SaveChangedFields:
    """A ModelAdmin whose change form writes only the fields the staff member changed, and of its inlines only the
    forms changed: a form opened before an import (or an API edit) and saved after it wrote back every value it
    showed. A field both changed keeps the staff member's value: the last writer wins, as with the product API.
    """

    def get_form(self, request, obj=None, **kwargs):
        return showing_initial(super().get_form(request, obj, **kwargs))

    def get_formsets_with_inlines(self, request, obj=None):
        for formset, inline in super().get_formsets_with_inlines(request, obj):
            showing_initial(formset.form)
            yield formset, inline

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        columns = {field.name for field in obj._meta.concrete_fields}
        obj.save(update_fields=[name for name in form.changed_data if name in columns])
