"""The account page: display name and the time zone every page shows times in."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from coachgate.accounts import services as accounts
from coachgate.accounts.models import User
from coachgate.kit.errors import CoachgateError


class AccountForm(forms.Form):
    display_name = forms.CharField(
        label="Display name", max_length=120, required=False,
        help_text="What coaches and students see instead of your email.")
    timezone = forms.ChoiceField(label="Time zone",
                                 help_text="Every page shows times in this zone.")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # forms.Form's own signature
        self.fields["timezone"].choices = [(z, z) for z in accounts.timezone_names()]  # type: ignore[attr-defined]  # a ChoiceField


@login_required
def account_settings(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]  # @login_required: an authenticated User
    form = AccountForm(request.POST or None,
                       initial={"display_name": user.display_name, "timezone": user.timezone})
    if request.method == "POST" and form.is_valid():
        try:
            accounts.update_account(user, display_name=form.cleaned_data["display_name"],
                                    timezone=form.cleaned_data["timezone"])
        except CoachgateError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Saved. Times are now shown in {user.timezone}.")
            return redirect("account_settings")
    return render(request, "web/account.html", {"form": form})
