"""Expectations on one day's parsed lines and on its ingest accounting.

Two batches are validated: ``lines`` (the parsed partition) and ``ingest`` (a one-row frame made
from the ingest report). Bounds come from the source YAML (``validation.parsed_lines``), and the
volume also from the recent validated days (learned bounds).
"""

PARSED_SCHEMA = [
    "source_file", "line_number", "ts", "level", "component", "message", "masked", "session_id", "line_label",
    "template_id", "encoding_repaired", "raw_line", "reason",
]


def build_expectations(bounds: dict) -> dict:
    import great_expectations.expectations as gxe

    from nightshift.validation import learned_volume_expectations

    return {
        "lines": [
            gxe.ExpectTableColumnsToMatchSet(column_set=PARSED_SCHEMA, exact_match=True),
            gxe.ExpectTableRowCountToBeBetween(min_value=int(bounds.get("min_lines", 1))),
            *learned_volume_expectations(gxe, bounds),
            gxe.ExpectColumnValuesToNotBeNull(column="ts"),
            gxe.ExpectColumnValuesToBeNull(column="reason"),        # no quarantined line among parsed ones
            gxe.ExpectColumnValuesToNotBeNull(column="line_number"),
            gxe.ExpectColumnValuesToNotBeNull(column="message"),
            gxe.ExpectColumnValuesToNotBeNull(column="template_id", mostly=float(bounds.get("min_template_share", 0.99))),
            gxe.ExpectColumnValuesToNotBeNull(column="session_id", mostly=float(bounds.get("min_session_share", 0.0))),
        ],
        "ingest": [
            # one-row frame: the column max is the day's value, and GX reports it as observed
            gxe.ExpectColumnMaxToBeBetween(column="quarantine_rate", max_value=float(bounds.get("max_quarantine_rate", 0.05))),
            gxe.ExpectColumnMaxToBeBetween(column="unaccounted_lines", min_value=0, max_value=0),
        ],
    }

