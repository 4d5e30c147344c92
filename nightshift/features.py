"""Session features: one row per session with event counts by template and simple statistics.

The same columns feed training (pandas) and the model's input (see ``nightshift.modeling``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

WARN_LEVELS = ("WARN", "WARNING")
ERROR_LEVELS = ("ERROR", "FATAL", "SEVERE", "CRITICAL", "FAILURE")
FEATURE_COLUMNS = [
    "session_id", "component", "start_ts", "end_ts", "duration_s", "line_count", "warn_count", "error_count",
    "event_counts", "label",
]


# Up to this many distinct components, a session's first component is aggregated as an integer
# code (see session_features); beyond, as the string itself (correct, but a slower sort-based plan).
_COMPONENT_CODE_LIMIT = 5000
_COMPONENT_KEY_SPACE = 8192     # > _COMPONENT_CODE_LIMIT: the codes' share of the packed first-line key


def session_features(parsed: "DataFrame") -> "DataFrame":
    """Aggregate parsed lines (``session_id``, ``ts``, ``level``, ``template_id``, ``line_label``,
    ``component``) into sessions, in one shuffle chain (per session and template, then per session).

    Lines without a session id belong to no session and are not counted here.
    ``event_counts`` maps a template id (as a string) to the number of lines of that template;
    ``inline_label`` is 1 when any line carries an anomaly label (sources with in-line labels);
    ``component`` is the component of the session's first line (a slice for the promotion gate);
    of lines in the same first millisecond, the component that sorts first (deterministic: the same
    lines give the same features whatever the partitioning).

    Every aggregation buffer is fixed-width, so Spark runs both steps as hash aggregations: the
    component is carried as an integer code (decoded at the end), and the per-template counts as
    one packed long each (``template_id << 32 | count``), unpacked into the map after the shuffle.
    A string in a buffer (``min_by(component, ts)``) or a list of structs would make Spark fall
    back to sorting every row (``bench/ingest_steps.py``: 13.6 s against 8.1 s for 4M lines).
    """
    from pyspark.sql import functions as F

    from nightshift.ingest import literal_lookup

    lines = parsed.filter(F.col("session_id").isNotNull())
    components = sorted(
        r["component"] for r in lines.select("component").distinct().limit(_COMPONENT_CODE_LIMIT + 1).collect()
        if r["component"] is not None
    )
    if len(components) <= _COMPONENT_CODE_LIMIT:
        # (millisecond, component code) packed in one long: the minimum is the first line's
        # component, ties (lines of the same millisecond) going to the component that sorts first,
        # whatever the order Spark meets the lines in (min_by would keep whichever came first,
        # which depends on the partitioning). A null component has the code len(components).
        code = F.coalesce(literal_lookup({name: i for i, name in enumerate(components)}, F.col("component"), "int"),
                          F.lit(len(components)))
        first = F.min(F.unix_millis("ts") * _COMPONENT_KEY_SPACE + code)
        component = F.get(F.array(*[F.lit(name) for name in components], F.lit(None).cast("string")),
                          (F.col("_first") % _COMPONENT_KEY_SPACE + _COMPONENT_KEY_SPACE) % _COMPONENT_KEY_SPACE)
    else:       # the same rule on (ts, component) structs: correct, but a sort-based plan
        first = F.min(F.when(F.col("ts").isNotNull(), F.struct("ts", "component")))
        component = F.col("_first.component")
    per_template = (
        lines.groupBy("session_id", "template_id")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min("ts").alias("first_ts"),
            F.max("ts").alias("last_ts"),
            F.sum(F.col("level").isin(*WARN_LEVELS).cast("long")).alias("warn"),
            F.sum(F.col("level").isin(*ERROR_LEVELS).cast("long")).alias("error"),
            F.max("line_label").alias("line_label"),
            first.alias("first"),
        )
    )
    packed = F.shiftleft(F.col("template_id").cast("long"), 32) + F.col("n")
    sessions = per_template.groupBy("session_id").agg(
        F.min("first_ts").alias("start_ts"),
        F.max("last_ts").alias("end_ts"),
        F.sum("n").alias("line_count"),
        F.sum("warn").alias("warn_count"),
        F.sum("error").alias("error_count"),
        F.array_sort(F.collect_list(packed)).alias("_packed"),
        F.max("line_label").cast("int").alias("inline_label"),
        F.min("first").alias("_first"),
    )
    event_counts = F.map_from_arrays(
        F.transform("_packed", lambda x: F.shiftright(x, 32).cast("string")),
        F.transform("_packed", lambda x: x.bitwiseAND(F.lit(0xFFFFFFFF))),
    )
    return (
        sessions.withColumn("event_counts", event_counts)
        .withColumn("component", component)
        .withColumn("duration_s", F.col("end_ts").cast("double") - F.col("start_ts").cast("double"))
        .drop("_packed", "_first")
    )


def session_template_sets(features: "DataFrame", limit: int | None = None) -> dict[str, int] | None:
    """The number of sessions per distinct set of template ids in ``event_counts`` (key: the ids
    sorted numerically, comma-joined: ``{"1,2": 2, "3": 1}``), for the unseen-session share of
    ``nightshift.drift`` (which says why this shape); None when there are more than ``limit``
    distinct sets (default ``nightshift.drift.SESSION_TEMPLATE_SETS_MAX``): a bounded profile."""
    from pyspark.sql import functions as F

    from nightshift.drift import SESSION_TEMPLATE_SETS_MAX

    limit = SESSION_TEMPLATE_SETS_MAX if limit is None else limit
    ids = F.array_sort(F.transform(F.map_keys("event_counts"), lambda k: k.cast("long")))
    key = F.array_join(F.transform(ids, lambda t: t.cast("string")), ",")
    rows = features.groupBy(key.alias("s")).count().limit(limit + 1).collect()
    return {r["s"]: int(r["count"]) for r in rows} if len(rows) <= limit else None


def template_line_counts(features: "DataFrame") -> dict[str, int]:
    """Lines per template id over the sessions' ``event_counts`` (the profile's template distribution)."""
    from pyspark.sql import functions as F

    return {r["t"]: int(r["n"]) for r in features.select(F.explode("event_counts").alias("t", "n"))
            .groupBy("t").agg(F.sum("n").alias("n")).collect()}


def attach_labels(features: "DataFrame", labels: "DataFrame | None") -> "DataFrame":
    """Set ``label``: from the ``session_id,label`` file where it has the session, else from the
    lines' own labels (sources with in-line labels), else null (no label has arrived)."""
    from pyspark.sql import functions as F

    if labels is None:
        return features.withColumn("label", F.col("inline_label")).select(*FEATURE_COLUMNS)
    joined = features.join(labels.select("session_id", F.col("label").alias("file_label")), "session_id", "left")
    return joined.withColumn("label", F.coalesce("file_label", "inline_label")).select(*FEATURE_COLUMNS)


def read_labels(spark: "SparkSession", path, max_bad_row_share: float | None = None) -> "DataFrame | None":
    """The ``session_id,label`` file as a Spark DataFrame (``None`` if absent), read on the driver
    by ``nightshift.labels`` like every other consumer: bad rows (labels other than 0/1) are left
    out, exact duplicates kept once; conflicting duplicates or too many bad rows raise
    ``LabelsRejected``."""
    frame, _stats = read_labels_with_stats(spark, path, max_bad_row_share)
    return frame


def read_labels_with_stats(spark: "SparkSession", path, max_bad_row_share: float | None = None):
    """``(DataFrame, stats dict)`` of a labels file, or ``(None, None)`` when it is absent."""
    from nightshift import labels as labels_mod

    bound = labels_mod.DEFAULT_MAX_BAD_ROW_SHARE if max_bad_row_share is None else max_bad_row_share
    labels = labels_mod.read_labels_file(path, bound)
    if labels is None:
        return None, None
    # labels files are small (one row per session): no second reader in Spark
    rows = list(zip(labels.frame["session_id"].tolist(), labels.frame["label"].astype(int).tolist()))
    return spark.createDataFrame(rows, "session_id string, label int"), labels.stats.to_dict()


def run_features(spark: "SparkSession", lake, source_name: str, day: str) -> dict:
    """Build the day's session features from its parsed partition; write them and a report."""
    import logging

    from pyspark.sql import functions as F

    from nightshift.ingest import read_parsed_lines

    lake.recover(source_name, day)      # finish an interrupted commit of the day first
    parsed_dir = lake.parsed_dir(source_name, day)
    if not parsed_dir.exists():
        raise FileNotFoundError(f"no parsed data for {source_name} {day}: run ingest first ({parsed_dir})")
    parsed = read_parsed_lines(spark, parsed_dir)
    from nightshift.labels import max_bad_row_share

    labels, label_stats = read_labels_with_stats(spark, lake.labels_file(source_name, day),
                                                 max_bad_row_share(source_name))
    features = attach_labels(session_features(parsed), labels)
    # staged, then swapped in by rename (Lake.commit): a failed or killed write leaves the old
    # features readable, never an empty or half-written partition
    stage = lake.new_stage("features", source_name, day)
    features.write.parquet(str(stage))
    written = spark.read.parquet(str(stage))
    row = written.agg(
        F.count(F.lit(1)).alias("sessions"),
        F.count("label").alias("labelled"),
        F.sum("label").alias("anomalous"),
        F.sum("line_count").alias("lines"),
        F.sum("warn_count").alias("warn"),
        F.sum("error_count").alias("error"),
    ).first()
    # the day's profile for drift detection (nightshift.drift): lines per template, sessions per
    # set of templates, level shares
    templates = template_line_counts(written)
    lines_in_sessions = int(row["lines"] or 0)
    profile = {
        "lines": lines_in_sessions,          # lines in sessions (lines without a session id are not profiled)
        "sessions": row["sessions"],
        "templates": templates,
        "session_template_sets": session_template_sets(written),   # for the unseen-session share
        "mean_session_length": round(lines_in_sessions / row["sessions"], 4) if row["sessions"] else None,
        "warn_share": round(int(row["warn"] or 0) / lines_in_sessions, 6) if lines_in_sessions else None,
        "error_share": round(int(row["error"] or 0) / lines_in_sessions, 6) if lines_in_sessions else None,
    }
    report = {
        "source": source_name,
        "day": day,
        "sessions": row["sessions"],
        "labelled_sessions": row["labelled"],
        "anomalous_sessions": int(row["anomalous"] or 0),
        "label_rate": (float(row["anomalous"] or 0) / row["labelled"]) if row["labelled"] else None,
        "labels_file": lake.labels_file(source_name, day).exists(),
        "labels": label_stats,   # rows, bad rows, duplicates dropped (None without a labels file)
        "profile": profile,
    }
    lake.commit("features", source_name, day, [(stage, lake.features_dir(source_name, day))])
    lake.write_report(source_name, day, "features", report)
    logging.getLogger("nightshift.features").info("features %s %s: %s", source_name, day,
                                                  {k: v for k, v in report.items() if k != "profile"})
    return report
