"""Expectations on one day's labels file (``labels/source=<s>/dt=<day>/labels.csv``).

Run by ``nightshift.labels.validated_labels`` on pandas frames before training or the champion
watch uses labels that arrived late. Two batches: ``labels`` (the distinct ``session_id,label``
pairs of the file, after numeric coercion and trimming; a session labelled both 0 and 1 appears
twice) and ``file`` (a one-row frame with the file's accounting). Bounds come from the source YAML
(``validation.labels``).
"""

LABELS_SCHEMA = ["session_id", "label"]


def build_expectations(bounds: dict) -> dict:
    import great_expectations.expectations as gxe

    return {
        "labels": [
            gxe.ExpectTableColumnsToMatchSet(column_set=LABELS_SCHEMA, exact_match=True),
            gxe.ExpectTableRowCountToBeBetween(min_value=int(bounds.get("min_rows", 1))),
            gxe.ExpectColumnValuesToNotBeNull(column="session_id"),
            gxe.ExpectColumnValuesToBeUnique(column="session_id"),       # no session labelled both ways
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        ],
        "file": [
            # one-row frame: the column max is the file's value, and GX reports it as observed
            gxe.ExpectColumnMaxToBeBetween(column="bad_row_share", min_value=0,
                                           max_value=float(bounds.get("max_bad_row_share", 0.01))),
            gxe.ExpectColumnMaxToBeBetween(column="conflicting_sessions", min_value=0, max_value=0),
        ],
    }
