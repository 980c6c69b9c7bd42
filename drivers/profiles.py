"""Payload profiles: how one vendor's JSON becomes the normalised vocabulary of its kind.

A profile is data (YAML under ``drivers/profiles/``), so a new vendor is a new file, not a
change to the core. The built-in ``native`` profile is the gateway's own format (documented
in the README): metric names as keys, ``ts`` in seconds or ISO 8601, events as
``{"event": "<kind>", "id": ..., "ts": ..., "attrs": {...}}``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.types import DeviceKind
from gateway.vocabulary import EVENTS, METRICS

__all__ = ["FieldMap", "Profile", "ProfileError", "builtin_profiles", "load_profile"]

PROFILE_DIR = Path(__file__).parent / "profiles"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(_Strict):
    """One vendor field → one metric; ``map`` translates vendor codes into states."""

    metric: str
    scale: float = 1.0
    offset: float = 0.0
    map: dict[str, str | bool | int | float] | None = None


class EventMap(_Strict):
    """Where a vendor puts its event code and what each code means."""

    code_field: str = "event"
    codes: dict[str, str] | None = None  # vendor code → vocabulary event; None: already ours
    id_field: str | None = "id"
    attributes_field: str | None = "attrs"
    attributes: dict[str, str] = Field(default_factory=dict)  # our name → vendor path


class Profile(_Strict):
    id: str
    kind: DeviceKind
    description: str = ""
    timestamp_field: str = "ts"
    timestamp_unit: Literal["s", "ms", "iso"] = "s"
    values_at: str = ""  # dotted path to the mapping of values; "" means the payload itself
    fields: dict[str, FieldMap] | None = None  # None: keys are vocabulary metric names
    ignore_fields: list[str] = Field(default_factory=list)
    events: EventMap = Field(default_factory=EventMap)


class ProfileError(Exception):
    """A profile file is invalid; the message names the profile, the entry and the fix."""


def _check(profile: Profile, origin: str) -> None:
    problems: list[str] = []
    metrics = METRICS[profile.kind]
    events = EVENTS[profile.kind]
    seen_metrics: dict[str, str] = {}
    for vendor, fm in (profile.fields or {}).items():
        if fm.metric not in metrics:
            guess = difflib.get_close_matches(fm.metric, list(metrics), n=1)
            hint = f"; did you mean '{guess[0]}'?" if guess else ""
            problems.append(f"fields.{vendor}.metric: unknown {profile.kind} metric "
                            f"{fm.metric!r}{hint} / 未知指标")
        elif fm.metric in seen_metrics:
            problems.append(f"fields.{vendor}.metric: {fm.metric!r} is already mapped from "
                            f"{seen_metrics[fm.metric]!r}; map each metric once / 指标重复映射")
        else:
            seen_metrics[fm.metric] = vendor
    for code, name in (profile.events.codes or {}).items():
        if name not in events:
            guess = difflib.get_close_matches(name, list(events), n=1)
            hint = f"; did you mean '{guess[0]}'?" if guess else ""
            problems.append(f"events.codes.{code}: unknown {profile.kind} event {name!r}"
                            f"{hint} / 未知事件")
    if problems:
        raise ProfileError("\n".join(f"profile {profile.id!r} ({origin}): {p}" for p in problems))


def load_profile(path: Path) -> Profile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        profile = Profile.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"profile file {path}: {exc}") from exc
    except ValidationError as exc:
        lines = [f"profile file {path}: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                 for e in exc.errors(include_url=False)]
        raise ProfileError("\n".join(lines)) from exc
    _check(profile, str(path))
    return profile


def builtin_profiles(extra_dirs: list[Path] | None = None) -> dict[str, Profile]:
    """The native profile of each kind plus every YAML profile shipped or given."""
    out: dict[str, Profile] = {}
    for kind in DeviceKind:
        native = Profile(id=f"{kind.value}.native", kind=kind,
                         description="the gateway's own JSON format")
        out[native.id] = native
    for folder in [PROFILE_DIR, *(extra_dirs or [])]:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("**/*.yaml")):
            data_kind = path.stem
            profile = load_profile(path)
            if profile.id in out:
                raise ProfileError(f"profile file {path}: id {profile.id!r} is already "
                                   f"defined ({data_kind}); give each profile its own id")
            out[profile.id] = profile
    return out
