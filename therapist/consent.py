"""The consent text a patient reads and accepts before a first session, with its version.

The text is a Markdown template (built-in, or a file set in the config) filled with the crisis
contacts, review frequency and study contact from the settings. A consent row stores the version
and the SHA-256 of the exact text shown, so changing either asks every patient again.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from config import ConfigError, Settings
from therapist.escalation import resources_for

BUILTIN = Path(__file__).with_name("consent.md")


@dataclass(frozen=True)
class ConsentText:
    version: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def consent_text(settings: Settings) -> ConsentText:
    path = Path(settings.consent_file) if settings.consent_file else BUILTIN
    try:
        template = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Consent text {path} cannot be read: {exc}") from None
    contacts = resources_for(settings.crisis_locale, settings.crisis_resources)
    values = {"crisis_contacts": f"Please {contacts}.", "review_frequency": settings.review_frequency,
              "supervisor_contact": settings.supervisor_contact}
    # Plain replacement, not str.format: a custom text may contain other braces.
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return ConsentText(settings.consent_version, template.strip())
