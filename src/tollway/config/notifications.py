"""The `notifications:` section of the config file: webhook channels and rules, applied at start (and on
SIGHUP) by name — a channel or rule the file names is created, or updated to what the file says; ones made
through the API are left alone.

```yaml
notifications:
  channels:
    - name: ops
      url: https://hooks.example.com/tollway
      signing_secret: "${TOLLWAY_OPS_WEBHOOK_SECRET}"   # whsec_... (required: give the receiver the same)
      custom_headers: {x-team: billing}
  rules:
    - name: output tokens 80 and 100 percent
      type: entitlements.balance.threshold
      channels: [ops]                                 # channel names from this file
      features: [output-tokens]
      thresholds: [{value: 80, type: PERCENT}, {value: 100, type: PERCENT}]
    - {name: invoices, type: invoice.created, channels: [ops]}
```
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tollway.notifications.model import EVENT_TYPES, THRESHOLD_TYPES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelConfig(_Strict):
    name: str = Field(min_length=1, max_length=255)
    url: str
    signing_secret: str = Field(min_length=1)
    custom_headers: dict[str, str] = Field(default_factory=dict)
    disabled: bool = False


class ThresholdConfig(_Strict):
    value: Decimal
    type: str

    @model_validator(mode="after")
    def _known(self) -> ThresholdConfig:
        if self.type not in THRESHOLD_TYPES:
            raise ValueError(f"threshold type must be one of {', '.join(THRESHOLD_TYPES)}, got {self.type!r}")
        return self


class RuleConfig(_Strict):
    name: str = Field(min_length=1, max_length=255)
    type: str
    channels: list[str] = Field(min_length=1)
    features: list[str] = Field(default_factory=list)
    thresholds: list[ThresholdConfig] = Field(default_factory=list)
    disabled: bool = False

    @model_validator(mode="after")
    def _known(self) -> RuleConfig:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"rule type must be one of {', '.join(EVENT_TYPES)}, got {self.type!r}")
        return self


class NotificationsConfig(_Strict):
    channels: list[ChannelConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> NotificationsConfig:
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("notifications.channels: two channels have the same name")
        rule_names = [r.name for r in self.rules]
        if len(set(rule_names)) != len(rule_names):
            raise ValueError("notifications.rules: two rules have the same name")
        for rule in self.rules:
            for channel in rule.channels:
                if channel not in names:
                    raise ValueError(f"notifications.rules[{rule.name}]: no channel named {channel!r} in this file")
        return self
