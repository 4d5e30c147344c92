"""Expectations on one day's session features.

Bounds come from the source YAML (``validation.session_features``). The label rate is the share
of labelled sessions that are anomalous; it is only checked when labels have arrived.
"""

FEATURE_SCHEMA = [
    "session_id", "component", "start_ts", "end_ts", "duration_s", "line_count", "warn_count", "error_count",
    "event_counts", "label",
]


def build_expectations(bounds: dict) -> dict:
    import great_expectations.expectations as gxe

    from nightshift.validation import learned_template_share_expectations, learned_volume_expectations

    return {
        "sessions": [
            gxe.ExpectTableColumnsToMatchSet(column_set=FEATURE_SCHEMA, exact_match=True),
            gxe.ExpectTableRowCountToBeBetween(min_value=int(bounds.get("min_sessions", 1))),
            *learned_volume_expectations(gxe, bounds),
            gxe.ExpectColumnValuesToBeUnique(column="session_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="session_id"),
            gxe.ExpectColumnValuesToBeBetween(column="line_count", min_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="warn_count", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="error_count", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="duration_s", min_value=0),
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        ],
        # only validated when bounds were learned (the batch exists then): warnings, see the function
        "template_shares": learned_template_share_expectations(gxe, bounds),
        "labels": [
            gxe.ExpectColumnMaxToBeBetween(
                column="label_rate",
                min_value=float(bounds.get("min_label_rate", 0.0)),
                max_value=float(bounds.get("max_label_rate", 1.0)),
            ),
        ],
    }

