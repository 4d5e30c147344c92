"""Session labels that arrive as files: one reader for every consumer.

``labels/source=<s>/dt=<day>/labels.csv`` holds ``session_id,label`` rows. The features job (Spark),
training and the promotion gate (pandas, via ``nightshift.training``) and the champion watch
(``nightshift.monitoring``) all read it through this module, so they all see the same labels:

* the label is coerced to a number: ``"1"``, ``" 1 "``, ``"1.0"``, ``"0"`` are accepted; anything
  that is not numerically 0 or 1 (``"maybe"``, ``"2"``, an empty field, a row with too few fields)
  is a **bad row**; session ids are trimmed, and an empty one is a bad row too;
* **exact duplicates** (same session, same label) are kept once and counted;
* **conflicting duplicates** (same session, labels 0 and 1) reject the file: there is no right
  answer to pick, and picking one silently made results depend on read order;
* the share of bad rows is bounded per source (``validation.labels.max_bad_row_share`` in
  ``sources/<s>.yaml``, default :data:`DEFAULT_MAX_BAD_ROW_SHARE`): above it the file is rejected
  (:class:`LabelsRejected`, naming the file, the counts and example rows).

Labels that arrive after the features were built are validated with Great Expectations before
training or the watch uses them (:func:`validated_labels`, suite ``expectations/labels.py``); the
outcome is ``reports/source=<s>/dt=<day>/validation_labels.json`` with the file's sha256, and a
file is validated again only when its content (or the bounds) change. Great Expectations is
imported only when a validation actually runs.

Sources whose lines carry labels (e.g. BGL) have no labels file: their labels come from the
features (``inline_label``), and every function here returns ``None`` for them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from nightshift.lake import Lake
    from nightshift.settings import Settings

log = logging.getLogger("nightshift.labels")

DEFAULT_MAX_BAD_ROW_SHARE = 0.01
REPORT_STEP = "validation_labels"
SUITE = "labels"
_EXAMPLES = 5


class LabelsRejected(ValueError):
    """A labels file cannot be used (conflicting duplicates, too many bad rows, failed validation)."""


@dataclass(frozen=True)
class LabelStats:
    path: str
    sha256: str
    rows: int                      # data rows in the file (header and blank lines excluded)
    labelled: int                  # distinct sessions with a usable label
    bad_rows: int
    duplicates_dropped: int        # exact duplicates (same session, same label) beyond the first
    conflicting_sessions: int      # sessions labelled both 0 and 1
    bad_examples: tuple[str, ...] = ()
    conflict_examples: tuple[str, ...] = ()

    @property
    def bad_row_share(self) -> float:
        return self.bad_rows / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bad_examples": list(self.bad_examples),
                "conflict_examples": list(self.conflict_examples), "bad_row_share": self.bad_row_share}


@dataclass(frozen=True)
class Labels:
    """Clean labels: ``frame`` has one row per session (``session_id`` str, ``label`` int 0/1)."""

    frame: "pd.DataFrame"
    stats: LabelStats


def _coerce_label(text: str) -> int | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if math.isnan(value) or value not in (0.0, 1.0):
        return None
    return int(value)


def parse_labels_bytes(data: bytes, path: str = "labels.csv") -> Labels:
    """Parse a labels file's content, without judging it: ``frame`` holds each distinct
    ``(session_id, label)`` once, so a conflicting session still has two rows (see
    :func:`check_labels`). Raises :class:`LabelsRejected` only when the header is unusable."""
    import pandas as pd

    sha256 = hashlib.sha256(data).hexdigest()
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace"), newline=""))
    header = next(reader, None)
    names = [h.strip().lower() for h in header or []]
    if "session_id" not in names or "label" not in names:
        raise LabelsRejected(f"{path}: expected a header with columns session_id,label, got {header!r}")
    i_sid, i_label = names.index("session_id"), names.index("label")
    seen: dict[str, int] = {}
    conflicts: dict[str, None] = {}
    rows = bad = duplicates = 0
    bad_examples: list[str] = []
    for record in reader:
        if not record or (len(record) == 1 and not record[0].strip()):
            continue                                    # blank line
        rows += 1
        sid = record[i_sid].strip() if len(record) > i_sid else ""
        label = _coerce_label(record[i_label]) if len(record) > i_label else None
        if not sid or label is None:
            bad += 1
            if len(bad_examples) < _EXAMPLES:
                bad_examples.append(f"line {reader.line_num}: {','.join(record)!r}")
            continue
        previous = seen.get(sid)
        if previous is None:
            seen[sid] = label
        elif previous == label:
            duplicates += 1
        elif sid not in conflicts:
            conflicts[sid] = None
    frame = pd.DataFrame({"session_id": pd.Series(list(seen), dtype=object),
                          "label": pd.Series(list(seen.values()), dtype="int64")})
    if conflicts:
        flipped = pd.DataFrame({"session_id": pd.Series(list(conflicts), dtype=object),
                                "label": pd.Series([1 - seen[s] for s in conflicts], dtype="int64")})
        frame = pd.concat([frame, flipped], ignore_index=True)
    stats = LabelStats(
        path=str(path), sha256=sha256, rows=rows, labelled=len(seen) - len(conflicts), bad_rows=bad,
        duplicates_dropped=duplicates, conflicting_sessions=len(conflicts),
        bad_examples=tuple(bad_examples), conflict_examples=tuple(list(conflicts)[:_EXAMPLES]),
    )
    return Labels(frame, stats)


def problems(stats: LabelStats, max_bad_row_share: float) -> list[str]:
    """Why a parsed file cannot be used (empty when it can)."""
    found = []
    if stats.conflicting_sessions:
        found.append(
            f"{stats.path}: {stats.conflicting_sessions} session(s) labelled both 0 and 1, "
            f"e.g. {', '.join(stats.conflict_examples)}"
        )
    if stats.bad_row_share > max_bad_row_share:
        found.append(
            f"{stats.path}: {stats.bad_rows} of {stats.rows} rows have no usable session id or a label other "
            f"than 0/1 ({stats.bad_row_share:.2%} > max_bad_row_share {max_bad_row_share:.2%}), "
            f"e.g. {'; '.join(stats.bad_examples)}"
        )
    return found


def check_labels(parsed: Labels, max_bad_row_share: float = DEFAULT_MAX_BAD_ROW_SHARE) -> Labels:
    """``parsed`` if usable, else :class:`LabelsRejected` with every reason."""
    found = problems(parsed.stats, max_bad_row_share)
    if found:
        raise LabelsRejected("; ".join(found))
    if parsed.stats.bad_rows or parsed.stats.duplicates_dropped:
        log.warning("labels %s: %d bad row(s) skipped, %d exact duplicate(s) dropped (of %d rows)",
                    parsed.stats.path, parsed.stats.bad_rows, parsed.stats.duplicates_dropped, parsed.stats.rows)
    return parsed


def read_labels_file(path, max_bad_row_share: float = DEFAULT_MAX_BAD_ROW_SHARE) -> Labels | None:
    """Parse and check a labels file; ``None`` when it does not exist. No validation report."""
    path = Path(path)
    if not path.exists():
        return None
    return check_labels(parse_labels_bytes(path.read_bytes(), str(path)), max_bad_row_share)


def label_bounds(source: str, settings: "Settings | None" = None) -> dict[str, Any]:
    """``validation.labels`` of ``sources/<source>.yaml`` with defaults filled in (defaults only
    when the source has no YAML file, e.g. in tests)."""
    from nightshift.settings import load_settings
    from nightshift.sources import load_source

    settings = settings or load_settings()
    bounds: dict[str, Any] = {"max_bad_row_share": DEFAULT_MAX_BAD_ROW_SHARE, "min_rows": 1}
    if (Path(settings.sources_dir) / f"{source}.yaml").exists():
        bounds.update(load_source(source, settings.sources_dir).validation.get("labels", {}))
    return bounds


def max_bad_row_share(source: str, settings: "Settings | None" = None) -> float:
    return float(label_bounds(source, settings)["max_bad_row_share"])


def read_labels(lake: "Lake", source: str, day: str, settings: "Settings | None" = None) -> Labels | None:
    """The day's labels file, parsed and checked against the source's bound (no GX); ``None`` if absent."""
    return read_labels_file(lake.labels_file(source, day), max_bad_row_share(source, settings))


def validated_labels(settings: "Settings | None", lake: "Lake", source: str, day: str) -> Labels | None:
    """The day's labels once they passed the ``labels`` suite; ``None`` when no file has arrived.

    Validates with Great Expectations unless ``validation_labels.json`` already records a
    validation of this exact content (sha256) with the same bounds. Raises
    :class:`LabelsRejected` with the reasons when the file failed.
    """
    from nightshift.settings import load_settings

    path = lake.labels_file(source, day)
    if not path.exists():
        return None
    settings = settings or load_settings()
    bounds = label_bounds(source, settings)
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    report = lake.read_report(source, day, REPORT_STEP)
    fresh = _validated_as(report, sha256, bounds)
    try:
        parsed = parse_labels_bytes(data, str(path))
    except LabelsRejected as exc:
        if not fresh:
            _write_report(lake, source, day, path, sha256, bounds, [str(exc)], None, {})
        raise
    if not fresh:
        report = run_labels_validation(settings, lake, source, day, parsed, bounds)
    if not report["success"]:
        raise LabelsRejected(f"{path} failed validation ({lake.report_file(source, day, REPORT_STEP)}): "
                             + "; ".join(report["failures"]))
    return check_labels(parsed, float(bounds["max_bad_row_share"]))


def labels_need_validation(settings: "Settings | None", lake: "Lake", source: str, day: str) -> bool:
    """Whether :func:`validated_labels` would run the suite for the day: a labels file is there and
    no report records a validation of this content with the current bounds (nothing is parsed)."""
    path = lake.labels_file(source, day)
    if not path.exists():
        return False
    return not _validated_as(lake.read_report(source, day, REPORT_STEP), hashlib.sha256(path.read_bytes()).hexdigest(),
                             label_bounds(source, settings))


def _validated_as(report: dict | None, sha256: str, bounds: dict[str, Any]) -> bool:
    """Whether a ``validation_labels`` report records a validation of this content with these bounds."""
    return (report is not None and (report.get("fingerprint") or {}).get("sha256") == sha256
            and report.get("bounds") == bounds)


def run_labels_validation(settings: "Settings", lake: "Lake", source: str, day: str, parsed: Labels,
                          bounds: dict[str, Any]) -> dict[str, Any]:
    """Run the ``labels`` suite (pandas, ephemeral GX context) on a parsed file; write the report."""
    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from nightshift.validation import describe_failure, load_suite_module

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    module = load_suite_module(settings.expectations_dir, SUITE)
    expectations = module.build_expectations(bounds)
    stats = parsed.stats
    batches = {
        "labels": parsed.frame,
        "file": pd.DataFrame([{"bad_row_share": stats.bad_row_share, "conflicting_sessions": stats.conflicting_sessions,
                               "rows": stats.rows}]),
    }
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_or_update_pandas(name="pandas")
    failures: list[str] = []
    checked: dict[str, dict] = {}
    for batch_name, frame in batches.items():
        name = f"{source}.{SUITE}.{batch_name}"
        batch_definition = datasource.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations[batch_name]))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_definition,
                                                                                suite=suite))
        result = definition.run(batch_parameters={"dataframe": frame})
        batch_failures = [f"{batch_name}: {describe_failure(r)}" for r in result.results if not r.success]
        checked[batch_name] = {"expectations": len(result.results), "failed": len(batch_failures)}
        failures.extend(batch_failures)
    # the suite says that it failed; these say which rows and sessions
    failures.extend(problems(stats, float(bounds["max_bad_row_share"])) if failures else [])
    report = _write_report(lake, source, day, lake.labels_file(source, day), stats.sha256, bounds, failures,
                           stats, checked)
    if failures:
        log.error("validation labels failed for %s %s:\n  %s", source, day, "\n  ".join(failures))
    else:
        log.info("validation labels passed for %s %s: %s", source, day, stats.to_dict())
    return report


def _write_report(lake, source, day, path, sha256, bounds, failures, stats, checked) -> dict[str, Any]:
    report = {
        "source": source, "day": day, "suite": SUITE, "success": not failures, "failures": failures,
        "batches": checked, "bounds": bounds, "fingerprint": {"path": str(path), "sha256": sha256},
        "stats": stats.to_dict() if stats is not None else None,
    }
    lake.write_report(source, day, REPORT_STEP, report)
    return report
