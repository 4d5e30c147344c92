"""The persisted, versioned store of template ids for one log source.

One JSON file (``Lake.template_store_file``) holds the Drain miner state (:mod:`nightshift.drain`)
and a history: every ``version`` (incremented on each save that added templates) with the day that
produced it and the ids it added, and for every template id the day it was first seen.

Template ids are stable: they are never renumbered, a later day can only add new ids or generalise
existing templates. :meth:`TemplateStore.assign` works in two passes so that re-running a day (or
any earlier day) learns nothing and returns the same ids:

1. learn: every distinct message, in sorted order, that is not already an instance of a template
   (:meth:`TemplateMiner.match`) is fed to Drain (:meth:`TemplateMiner.add`);
2. map: every message gets the id of the template it is an instance of, looked up after learning.

After pass 1 every message of the day matches some template and keeps matching for ever (templates
only generalise, and never below the similarity threshold), so a re-run's pass 1 is a no-op and its
pass 2 sees the same state: same ids, nothing new.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nightshift.drain import TemplateMiner
from nightshift.lake import check_day, write_json_atomic

log = logging.getLogger(__name__)

STORE_FORMAT = "nightshift.templates/1"


class TemplateStoreConflict(RuntimeError):
    """Saving would change what an existing template id means (a lost update between writers)."""


def generalises(new: str, old: str) -> bool:
    """True if template ``new`` is ``old`` or ``old`` with some text turned into ``<*>``: same token
    count, and every token of ``old`` is an instance of ``new``'s token (``<*>`` matches any text
    inside a token; a whole-token ``<*>`` is Drain's wildcard)."""
    from nightshift.miner import template_fits

    return template_fits(new, old)


MINERS = ("drain", "brain")


def make_miner(miner: str = "drain", **params: Any):
    """A fresh miner of the given kind: ``drain`` (nightshift.drain, parameters depth,
    similarity_threshold, max_children) or ``brain`` (nightshift.miner, parameter threshold)."""
    if miner == "drain":
        return TemplateMiner(**params)
    if miner == "brain":
        from nightshift.miner import BrainMiner

        return BrainMiner(**params)
    raise ValueError(f"unknown miner {miner!r} (known: {', '.join(MINERS)})")


def miner_from_dict(state: dict[str, Any]):
    from nightshift.miner import STATE_FORMAT as BRAIN_FORMAT, BrainMiner

    if state.get("format") == BRAIN_FORMAT:
        return BrainMiner.from_dict(state)
    return TemplateMiner.from_dict(state)


class TemplateStore:
    """Stable template ids for one source, backed by a Drain miner and a per-day history."""

    def __init__(
        self,
        miner: TemplateMiner,
        version: int = 0,
        history: list[dict[str, Any]] | None = None,
        first_seen: dict[int, str] | None = None,
        messages: dict[str, int] | None = None,
    ) -> None:
        self._miner = miner
        self._messages: dict[str, int] = dict(messages or {})  # every masked message seen -> its id
        self._version = version
        self._history: list[dict[str, Any]] = list(history or [])
        self._first_seen: dict[int, str] = dict(first_seen or {})
        self._pending: dict[str, list[int]] = {}  # day -> ids added since the last save

    # -- loading and saving -------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str, miner: str = "drain", **params: Any) -> TemplateStore:
        """Load the store at ``path``, or create an empty one if the file does not exist.

        ``miner`` picks the miner of a new store (:func:`make_miner`; ``drain`` takes depth,
        similarity_threshold, max_children, default 4, 0.5, 100). For an existing store the stored
        miner and its parameters win (ids must keep their meaning); a warning is logged when they
        differ from the ones given.
        """
        path = Path(path)
        if miner == "drain":
            params = {"depth": 4, "similarity_threshold": 0.5, "max_children": 100} | params
        wanted = make_miner(miner, **params)
        if not path.exists():
            return cls(wanted)
        with path.open() as fh:
            payload = json.load(fh)
        if payload.get("format") != STORE_FORMAT:
            raise ValueError(f"{path}: unsupported template store format {payload.get('format')!r}")
        miner = miner_from_dict(payload["miner"])
        if type(miner) is not type(wanted) or miner.parameters() != wanted.parameters():
            log.warning(
                "template store %s was built with %s; ignoring the requested %s",
                path,
                miner.parameters(),
                wanted.parameters(),
            )
        return cls(
            miner,
            version=int(payload["version"]),
            history=payload["versions"],
            first_seen={int(k): str(v) for k, v in payload["first_seen"].items()},
            messages={str(k): int(v) for k, v in payload.get("messages", {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON payload as it would be saved now (pending additions not yet versioned)."""
        return {
            "format": STORE_FORMAT,
            "version": self._version,
            "versions": self._history,
            "first_seen": {str(k): v for k, v in sorted(self._first_seen.items())},
            "miner": self._miner.to_dict(),
            "messages": dict(sorted(self._messages.items())),
        }

    def save(self, path: Path | str) -> None:
        """Write the store to ``path`` atomically.

        Each day that added templates since the last save becomes a new version (normally one
        per save). Refuses (:class:`TemplateStoreConflict`) to overwrite a file on disk whose ids
        this store would give another meaning (see :meth:`check_replaces`): one writer per source
        (``locks.exclusive(settings, "templates:<source>")`` around load ... save) makes that
        impossible, the check makes a missing lock loud instead of silently renumbering.
        """
        self.check_replaces(path)
        version = self._version
        history = list(self._history)
        for day, ids in self._pending.items():
            version += 1
            history.append({"version": version, "day": day, "added": sorted(ids)})
        payload = self.to_dict() | {"version": version, "versions": history}
        write_json_atomic(Path(path), payload)
        self._version, self._history, self._pending = version, history, {}

    def check_replaces(self, path: Path | str) -> None:
        """Raise :class:`TemplateStoreConflict` unless every id in the store file at ``path`` keeps
        its meaning here: the template may only generalise (tokens -> ``<*>``), never be replaced,
        and every message keeps its id."""
        path = Path(path)
        if not path.exists():
            return
        on_disk = json.loads(path.read_text())
        ours = self.templates()
        for record in on_disk["miner"]["clusters"]:
            tid, old = int(record["id"]), str(record["template"])
            if tid not in ours or not generalises(ours[tid], old):
                raise TemplateStoreConflict(
                    f"{path}: template id {tid} is {old!r} on disk but would become {ours.get(tid)!r}; "
                    "another ingest of this source saved meanwhile (is the templates lock held?)"
                )
        for message, tid in on_disk.get("messages", {}).items():
            if self._messages.get(message, tid) != int(tid):
                raise TemplateStoreConflict(
                    f"{path}: message {message!r} has id {tid} on disk but {self._messages[message]} here"
                )

    # -- template ids -------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """The saved version: how many saves added templates."""
        return self._version

    @property
    def miner(self):
        return self._miner

    @property
    def history(self) -> list[dict[str, Any]]:
        """One ``{"version", "day", "added"}`` record per saved version, oldest first."""
        return [dict(entry) for entry in self._history]

    def assign(self, messages: Iterable[str], day: str) -> dict[str, int]:
        """Map every distinct masked message to a template id, learning new templates.

        Messages are processed in sorted order, so the result does not depend on input order.
        Ids created here are recorded as first seen on ``day``.
        """
        check_day(day)
        distinct = sorted(set(messages))
        known = len(self._miner)
        unknown = [m for m in distinct if m not in self._messages and self._miner.match(m) is None]
        if hasattr(self._miner, "learn"):       # a batch miner learns the day's new messages at once
            self._miner.learn(unknown)
        else:
            for message in unknown:
                if self._miner.match(message) is None:
                    self._miner.add(message)
        assigned: dict[str, int] = {}
        for message in distinct:
            if message in self._messages:      # a message keeps the id it was first given
                assigned[message] = self._messages[message]
                continue
            found = self._miner.match(message)
            if found is None:  # cannot happen: see the module docstring
                raise RuntimeError(f"learned message has no template: {message!r}")
            assigned[message] = self._messages[message] = found[0]
        added = list(range(known + 1, len(self._miner) + 1))
        if added:
            for template_id in added:
                self._first_seen[template_id] = day
            self._pending.setdefault(day, []).extend(added)
            log.info("day %s added %d templates (%d in total)", day, len(added), len(self._miner))
        return assigned

    def check_assignments(self, assignments: dict[str, int]) -> None:
        """Raise :class:`TemplateStoreConflict` unless every id exists and its template fits the
        message it was given for (a day's ``_template_ids.json`` against this store)."""
        from nightshift.miner import template_fits

        templates = self.templates()
        for message, tid in assignments.items():
            template = templates.get(int(tid))
            if template is None or not template_fits(template, message):
                raise TemplateStoreConflict(f"message {message!r} has id {tid}, whose template is {template!r}")

    def new_template_ids(self, day: str) -> list[int]:
        """Ids first seen on ``day``, ascending."""
        return sorted(i for i, seen in self._first_seen.items() if seen == day)

    def first_seen(self, template_id: int) -> str:
        """The day ``template_id`` was first seen."""
        return self._first_seen[template_id]

    def templates(self) -> dict[int, str]:
        """Current template of every id."""
        return self._miner.templates()
