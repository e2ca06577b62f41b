"""The console's form for starting a release: its steps, check window and thresholds, each
field with the default a release gets when nobody chooses."""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Any

from django import forms
from django.conf import settings

from releases.analysis import Thresholds

THRESHOLD_HELP = {
    "min_requests": "fewest canary answers in a window for a check to judge anything",
    "max_p99_ms": "the canary's p99 latency may not exceed this (ms)",
    "min_success_rate": "the canary's share of successful answers may not fall below this",
    "max_p99_ratio": "nor its p99 exceed stable's times this (plus the slack)",
    "max_p99_slack_ms": "milliseconds added to stable's p99 before the ratio applies",
    "max_success_drop": "nor its success rate fall below stable's by more than this",
    "max_follow_drop": "nor its follow rate (watched after recommended) fall below stable's by more than this",
    "min_follow_samples": "answers each pool needs before the follow rate is judged",
    "failure_limit": "failed checks before the release aborts",
    "inconclusive_limit": "inconclusive checks in a row before the release pauses for a person",
    "max_step_seconds": "a step that has not passed after this long pauses",
    "follow_required_on_last_step": "the last step cannot pass until the follow rate is judged",
}


class ReleaseStartForm(forms.Form):
    steps = forms.CharField(help_text="the canary's weights in percent, increasing, separated by commas (e.g. 5,20,50)")
    interval_seconds = forms.IntegerField(min_value=10, help_text="each check's window (seconds)")
    min_step_seconds = forms.IntegerField(min_value=0, help_text="the least time on a step before it may advance")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        defaults = Thresholds(follow_required_on_last_step=settings.RELEASE_FOLLOW_REQUIRED)
        types = typing.get_type_hints(Thresholds)
        self.fields["steps"].initial = ",".join(str(step) for step in settings.RELEASE_STEPS)
        self.fields["interval_seconds"].initial = settings.RELEASE_INTERVAL_SECONDS
        self.fields["min_step_seconds"].initial = settings.RELEASE_MIN_STEP_SECONDS
        for field in fields(Thresholds):
            initial = getattr(defaults, field.name)
            help_text = THRESHOLD_HELP.get(field.name, "")
            kind = types[field.name]
            if kind is bool:
                self.fields[field.name] = forms.BooleanField(required=False, initial=initial, help_text=help_text)
            elif kind is int:
                self.fields[field.name] = forms.IntegerField(min_value=0, initial=initial, help_text=help_text)
            else:
                self.fields[field.name] = forms.FloatField(min_value=0.0, initial=initial, help_text=help_text)

    def clean_steps(self) -> list[int]:
        text: str = self.cleaned_data["steps"]
        try:
            steps = [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise forms.ValidationError(f"{text!r}: weights are whole percentages separated by commas") from None
        if not steps or any(not 0 < step < 100 for step in steps) or steps != sorted(set(steps)):
            raise forms.ValidationError("steps must be increasing weights between 1 and 99 percent")
        return steps

    def thresholds(self) -> dict[str, Any]:
        return {field.name: self.cleaned_data[field.name] for field in fields(Thresholds)}
