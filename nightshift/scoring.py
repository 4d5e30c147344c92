"""Batch scoring: score every session of a day with the registry's champion, shadow-score the challenger.

The model input is built in Spark with the training contract (``nightshift.modeling``:
``MODEL_INPUT_COLUMNS``, event counts as a JSON object) and scored with
``mlflow.pyfunc.spark_udf``; the logged models return ``[P(normal), P(anomalous)]``, so a
session's ``score`` is element 1 and it is flagged when ``score >= THRESHOLD``.

The champion (and challenger) aliases are resolved to versions once, when the job starts, and
``models:/<name>/<version>`` is loaded, so the version recorded with every prediction is exactly
the one that produced it even if an alias moves while the job runs.

Output: ``<lake>/predictions/source=<s>/dt=<day>/`` (Parquet, ``PREDICTION_COLUMNS``, one row per
session), replaced as a whole on every run; a report ``reports/.../scoring.json``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from nightshift.lake import Lake, check_day

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

CHAMPION, CHALLENGER = "champion", "challenger"
THRESHOLD = 0.5
PREDICTION_COLUMNS = [
    "session_id", "score", "prediction", "model_name", "model_version",
    "challenger_score", "challenger_prediction", "challenger_version", "scored_at_day", "suspect",
]
NO_CHAMPION = "no champion"
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
log = logging.getLogger("nightshift.scoring")


class NoChampionError(LookupError):
    """The registered model has no ``champion`` alias (or does not exist yet): nothing to score."""

    def __init__(self, model_name: str):
        self.model_name = model_name
        super().__init__(f"no champion for {model_name}: nothing to score")


@dataclass(frozen=True)
class ScoringModel:
    """A registry model version resolved from an alias, and the Spark UDF that scores with it.

    ``predict`` takes one struct column of ``MODEL_INPUT_COLUMNS`` and returns the class
    probabilities as ``array<double>``.
    """

    name: str
    version: int
    predict: Callable[["Column"], "Column"]




def model_input(features: "DataFrame") -> "DataFrame":
    """Session features (``nightshift.features`` schema) -> ``session_id`` + the model's input columns.

    Same contract as ``nightshift.modeling.to_model_input``: missing statistics become 0 and
    ``event_counts`` (a ``map<string,bigint>``) becomes a JSON object string (``"{}"`` when null).
    """
    from pyspark.sql import functions as F

    return features.select(
        F.col("session_id").cast("string").alias("session_id"),
        F.col("line_count").cast("long").alias("line_count"),
        F.coalesce(F.col("duration_s").cast("double"), F.lit(0.0)).alias("duration_s"),
        F.coalesce(F.col("warn_count").cast("long"), F.lit(0).cast("long")).alias("warn_count"),
        F.coalesce(F.col("error_count").cast("long"), F.lit(0).cast("long")).alias("error_count"),
        F.coalesce(F.to_json(F.col("event_counts")), F.lit("{}")).alias("event_counts"),
    )


def score_sessions(inputs: "DataFrame", champion: ScoringModel, challenger: ScoringModel | None, day: str) -> "DataFrame":
    """Score ``model_input`` rows with the champion (and the challenger, if any) -> ``PREDICTION_COLUMNS``
    but ``suspect`` (``run_scoring`` adds it once the night's prediction drift is known).

    ``score`` is P(anomalous) (element 1 of the model's probabilities); ``prediction`` is
    ``score >= THRESHOLD``. The challenger columns are null when ``challenger`` is None.
    """
    from pyspark.sql import functions as F

    from nightshift.modeling import MODEL_INPUT_COLUMNS

    features = F.struct(*[F.col(c) for c in MODEL_INPUT_COLUMNS])
    scored = inputs.select(
        "session_id",
        champion.predict(features)[1].alias("score"),
        (challenger.predict(features)[1] if challenger is not None else F.lit(None).cast("double")).alias("challenger_score"),
    )
    return scored.select(
        "session_id",
        F.col("score"),
        (F.col("score") >= F.lit(THRESHOLD)).alias("prediction"),
        F.lit(champion.name).alias("model_name"),
        F.lit(champion.version).cast("long").alias("model_version"),
        F.col("challenger_score"),
        (F.col("challenger_score") >= F.lit(THRESHOLD)).alias("challenger_prediction"),
        F.lit(challenger.version if challenger is not None else None).cast("long").alias("challenger_version"),
        F.to_date(F.lit(check_day(day))).alias("scored_at_day"),
    )


def resolve_alias(client, model_name: str, alias: str) -> int | None:
    """The version the alias points at, or None when the model or the alias does not exist;
    ``nightshift.registry.RegistryUnavailable`` when the registry cannot be asked."""
    from nightshift import registry

    version = registry.alias(client, model_name, alias)
    return None if version is None else int(version.version)


def scoring_targets(params: Mapping[str, Any] | None, event_extras: Iterable[Mapping[str, Any] | None]) -> list[dict[str, str]]:
    """What a scoring DAG run scores: ``[{"source": ..., "day": ...}, ...]``.

    A manual trigger's ``day`` parameter (with its ``source``) wins; otherwise every triggering
    asset event's ``extra`` (``{"source", "day"}``) is a target, duplicates removed, in event
    order. Raises ``ValueError`` when there is neither, or an event's extra is not a valid target.
    """
    params = params or {}
    if params.get("day"):
        return [_target(params.get("source"), params["day"], "the run's parameters")]
    targets: list[dict[str, str]] = []
    extras = list(event_extras)
    for i, extra in enumerate(extras):
        extra = extra or {}
        target = _target(extra.get("source"), extra.get("day"), f"triggering asset event #{i} (extra={dict(extra)!r})")
        if target not in targets:
            targets.append(target)
    if not targets:
        raise ValueError(
            "nothing to score: this run has no 'day' parameter and no triggering asset event; "
            "trigger it with {\"source\": ..., \"day\": \"YYYY-MM-DD\"}"
        )
    return targets


def _target(source: Any, day: Any, where: str) -> dict[str, str]:
    if not isinstance(source, str) or not _SOURCE_NAME.match(source):
        raise ValueError(f"{where}: source must be a source name like 'hdfs', got {source!r}")
    try:
        return {"source": source, "day": check_day(day)}
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def skipped_report(source: str, day: str, model_name: str) -> dict[str, Any]:
    """The scoring report of a day that was not scored because there is no champion."""
    return {"source": source, "day": day, "model_name": model_name, "skipped": NO_CHAMPION,
            "reason": str(NoChampionError(model_name)), "sessions": None, "flagged": None,
            "champion_version": None, "challenger_version": None}


def run_scoring(spark: "SparkSession", settings, lake: Lake, source: str, day: str) -> dict[str, Any]:
    """Score the day's sessions of ``source`` with the champion; write the predictions and a report.

    Raises ``NoChampionError`` when the model has no champion (nothing is written) and
    ``FileNotFoundError`` when the day has no features. Returns the report.
    """
    import mlflow
    from pyspark.sql import functions as F

    from nightshift.training import load_training_config

    check_day(day)
    model_name = load_training_config(settings.config_dir).model_name(source)
    from nightshift import registry

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)      # spark_udf loads models:/ URIs through it
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    client = registry.client(settings)
    champion_version = resolve_alias(client, model_name, CHAMPION)
    if champion_version is None:
        raise NoChampionError(model_name)
    challenger_version = resolve_alias(client, model_name, CHALLENGER)
    if challenger_version == champion_version:
        challenger_version = None

    lake.recover(source, day)      # finish an interrupted commit of the day first
    features_dir = lake.features_dir(source, day)
    if not features_dir.exists():
        raise FileNotFoundError(f"no features for {source} {day}: run the nightly DAG first ({features_dir})")

    def load(version: int) -> ScoringModel:
        udf = mlflow.pyfunc.spark_udf(spark, f"models:/{model_name}/{version}", result_type="array<double>",
                                      env_manager="local")
        return ScoringModel(model_name, version, udf)

    champion = load(champion_version)
    challenger = load(challenger_version) if challenger_version is not None else None
    log.info("scoring %s %s with %s v%s (challenger: %s)", source, day, model_name, champion_version,
             f"v{challenger_version}" if challenger is not None else "none")
    predictions = score_sessions(model_input(spark.read.parquet(str(features_dir))), champion, challenger, day)
    predictions = predictions.persist()        # counted for the prediction drift, then written: scored once
    counts = predictions.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("prediction").cast("long")).alias("flagged")).first()
    from nightshift.drift import load_thresholds, prediction_drift

    drift = prediction_drift(lake, source, day, champion_version,
                             (int(counts["flagged"] or 0) / counts["n"]) if counts["n"] else None,
                             load_thresholds(settings.config_dir, source))
    if drift["suspect"]:
        log.warning("SUSPECT predictions %s %s (v%s): %s", source, day, champion_version, "; ".join(drift["reasons"]))

    # score into scratch space first, then swap it in by rename (Lake.commit): a failure or kill
    # while scoring or swapping leaves the previous predictions intact
    staging = lake.new_stage("scoring", source, day)
    predictions.withColumn("suspect", F.lit(drift["suspect"])).select(*PREDICTION_COLUMNS).write.parquet(str(staging))
    predictions.unpersist()
    out = lake.predictions_dir(source, day)
    lake.commit("scoring", source, day, [(staging, out)])

    row = spark.read.parquet(str(out)).agg(
        F.count(F.lit(1)).alias("sessions"),
        F.countDistinct("session_id").alias("distinct_sessions"),
        F.sum(F.col("prediction").cast("long")).alias("flagged"),
        F.sum(F.col("challenger_prediction").cast("long")).alias("challenger_flagged"),
        F.sum((F.col("prediction") != F.col("challenger_prediction")).cast("long")).alias("disagreements"),
    ).first()
    report = {
        "source": source,
        "day": day,
        "model_name": model_name,
        "champion_version": champion_version,
        "challenger_version": challenger_version,
        "threshold": THRESHOLD,
        "sessions": row["sessions"],
        "flagged": int(row["flagged"] or 0),
        "flag_rate": (int(row["flagged"] or 0) / row["sessions"]) if row["sessions"] else None,
        "challenger_flagged": int(row["challenger_flagged"] or 0) if challenger is not None else None,
        "disagreements": int(row["disagreements"] or 0) if challenger is not None else None,
        "predictions_dir": str(out),
        "skipped": None,
        "suspect": drift["suspect"],
        "prediction_drift": drift,
    }
    if row["distinct_sessions"] != row["sessions"]:
        raise ValueError(f"predictions for {source} {day} have duplicate sessions: {report}")
    lake.write_report(source, day, "scoring", report)
    log.info("scoring %s %s: %s", source, day, report)
    return report
