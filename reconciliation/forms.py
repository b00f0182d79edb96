"""Forms of the triage screens: they collect input; the workflow service decides."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from connectors.models import Connection
from reconciliation.models import Override


def workers() -> Any:
    """People who can be given exceptions: active users allowed to work them."""
    users = get_user_model().objects.filter(is_active=True, is_staff=True)
    code = "change_reconciliationexception"
    return (
        users.filter(
            Q(is_superuser=True)
            | Q(user_permissions__codename=code, user_permissions__content_type__app_label="reconciliation")
            | Q(
                groups__permissions__codename=code,
                groups__permissions__content_type__app_label="reconciliation",
            )
        )
        .distinct()
        .order_by("username")
    )


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(), empty_label="Nobody (unassign)", required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = workers()  # type: ignore[attr-defined]


class TagForm(forms.Form):
    names = forms.CharField(label="Tags", max_length=500, help_text="Comma-separated; new names become tags.")
    remove = forms.BooleanField(label="Remove these tags instead", required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False)

    def __init__(self, *args: Any, required: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required


class NoteForm(forms.Form):
    body = forms.CharField(label="Note", widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class DecisionForm(forms.Form):
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        required=False,
        help_text="Required to reject: say why.",
    )


class OverrideProposeForm(forms.Form):
    """A proposal on an exception's document (or any document named by type and id)."""

    action = forms.ChoiceField(choices=Override.Action.choices)
    object_type = forms.ChoiceField(
        choices=[("invoice", "Invoice"), ("credit_note", "Credit note"), ("payment", "Payment")],
        required=False,
    )
    object_id = forms.IntegerField(required=False, min_value=1)
    field_name = forms.CharField(required=False, max_length=100, help_text="Set a field: which one.")
    new_value = forms.CharField(required=False, max_length=500, help_text="Set a field: the new value.")
    limit_amount = forms.DecimalField(
        required=False,
        max_digits=19,
        decimal_places=4,
        min_value=0,
        help_text="Accept a difference: the largest difference accepted.",
    )
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.all(),
        required=False,
        help_text="Force a match: the connection holding the copy; re-push: only this destination.",
    )
    external_id = forms.CharField(
        required=False, max_length=255, help_text="Force a match: the copy's id there."
    )
    expires_at = forms.DateTimeField(required=False, help_text="Empty for the default expiry.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))

    def proposal(self) -> dict[str, Any]:
        """The keyword arguments of `override_propose` this form stands for."""
        data = self.cleaned_data
        action = data["action"]
        after: Any = None
        if action == Override.Action.SET_FIELD:
            after = data["new_value"]
        elif action == Override.Action.FORCE_MATCH:
            after = {
                "connection": data["connection"].pk if data["connection"] else None,
                "external_id": data["external_id"],
            }
        elif action == Override.Action.REPUSH and data["connection"]:
            after = {"destination": data["connection"].pk}
        return {
            "action": action,
            "reason": data["reason"],
            "object_type": data.get("object_type") or "",
            "object_id": data.get("object_id"),
            "field_name": data["field_name"].strip(),
            "after_value": after,
            "limit_amount": data["limit_amount"],
            "expires_at": data["expires_at"],
        }
