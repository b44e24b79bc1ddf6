"""The domain's errors: what went wrong in the words of leads, attributes and models, never HTTP.

The core, the feature store and the scorer raise these; only the service's exception handlers
(`serving.errors`) turn them into status codes, and the CLI prints their message as it is.
Each message is the whole sentence a caller reads, so every layer shows the same words.
"""

from __future__ import annotations

from collections.abc import Sequence

SHOWN_IDS = 5  # a message names this many unknown leads, then counts the rest


class SamepageError(Exception):
    """Base of every domain error; `message` is the text callers are shown."""

    @property
    def message(self) -> str:
        return str(self)


class UnknownLead(SamepageError, LookupError):
    """Leads nobody knows (`lead_ids`); the message names the first few and says what was looked at."""

    def __init__(self, lead_ids: Sequence[str], detail: str) -> None:
        self.lead_ids = list(lead_ids)
        self.detail = detail
        shown = ", ".join(repr(u) for u in self.lead_ids[:SHOWN_IDS])
        if len(self.lead_ids) > SHOWN_IDS:
            shown += f" and {len(self.lead_ids) - SHOWN_IDS} more"
        noun = "Lead" if len(self.lead_ids) == 1 else "Leads"
        super().__init__(f"{noun} {shown} {detail}")


class InvalidAttribute(SamepageError, ValueError):
    """A lead attribute whose value does not fit its feature; `field` is where it is (`attributes.employees`).

    A ValueError too, so code that validates values generically keeps catching it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")

    def at(self, prefix: str) -> InvalidAttribute:
        """The same problem located inside a larger input: `at("body.leads[3].")`."""
        return InvalidAttribute(prefix + self.field, self.problem)


class NotReady(SamepageError):
    """No usable champion model; `reason` says why (missing, trained under other definitions, broken)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Not ready: {reason}")
