"""Data validation with Great Expectations (1.x fluent API), run inside the pipeline's Spark jobs.

Suites are code: ``expectations/<suite>.py`` defines ``build_expectations(bounds) -> {batch: [...]}``.
Each batch (a Spark DataFrame) is validated by a checkpoint that also updates the local Data Docs.
The outcome is written to ``reports/.../validation_<suite>.json`` with one readable line per
failed expectation, so a person (and the demo summary) can see why a day failed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SUITES = ("parsed_lines", "session_features")
# what the first validation of a process imports (about 3.8 s on this machine): a Spark job that
# will validate imports them while its JVM starts (``nightshift.jobrunner.import_in_background``)
VALIDATION_MODULES = ("great_expectations", "great_expectations.expectations",
                      "great_expectations.execution_engine.sparkdf_execution_engine",
                      "great_expectations.render.renderer.site_builder")
# suites run on pandas frames outside the Spark jobs (see nightshift.labels.validated_labels)
PANDAS_SUITES = ("labels",)
log = logging.getLogger("nightshift.validation")


class ValidationFailed(RuntimeError):
    """The data did not meet its expectations; training and promotion must not run."""


def load_suite_module(expectations_dir: Path, suite: str):
    """Import ``<expectations_dir>/<suite>.py`` (suites live outside the package, as reviewed code)."""
    if suite not in SUITES + PANDAS_SUITES:
        raise ValueError(f"unknown suite {suite!r}; known: {SUITES + PANDAS_SUITES}")
    path = Path(expectations_dir) / f"{suite}.py"
    spec = importlib.util.spec_from_file_location(f"nightshift_expectations_{suite}", path)
    if spec is None or spec.loader is None or not path.exists():
        raise FileNotFoundError(f"expectation suite not found: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The partitions each suite validates, in fingerprint order (see data_fingerprint).
SUITE_PARTITIONS = {"parsed_lines": ("parsed", "quarantine"), "session_features": ("features",)}


def data_fingerprint(lake, source_name: str, day: str, suite: str) -> str:
    """Fingerprint (:func:`nightshift.lake.partition_fingerprint`) of the partitions ``suite``
    validates for the day, as they are now. A validation report records it; training uses a day
    only while it still matches (any rewrite of the data makes the report stale)."""
    from nightshift.lake import partition_fingerprint

    dirs = {"parsed": lake.parsed_dir, "quarantine": lake.quarantine_dir, "features": lake.features_dir}
    return partition_fingerprint(*(dirs[area](source_name, day) for area in SUITE_PARTITIONS[suite]))


def suite_batches(spark: "SparkSession", lake, source_name: str, day: str, suite: str) -> dict[str, "DataFrame"]:
    """The DataFrames a suite validates for one day."""
    if suite == "parsed_lines":
        from nightshift.ingest import read_parsed_lines

        ingest = lake.read_report(source_name, day, "ingest")
        if ingest is None:
            raise FileNotFoundError(f"no ingest report for {source_name} {day}: run ingest first")
        summary = {
            "input_lines": int(ingest["input_lines"]),
            "quarantine_rate": float(ingest["quarantine_rate"]),
            "unaccounted_lines": int(ingest["input_lines"] - ingest["parsed_lines"] - ingest["quarantined_lines"]),
        }
        return {
            "lines": read_parsed_lines(spark, lake.parsed_dir(source_name, day)),
            "ingest": spark.createDataFrame([summary]),
        }
    if suite == "session_features":
        features = spark.read.parquet(str(lake.features_dir(source_name, day)))
        batches = {"sessions": features}
        report = lake.read_report(source_name, day, "features") or {}
        if report.get("label_rate") is not None:
            batches["labels"] = spark.createDataFrame([{"label_rate": float(report["label_rate"])}])
        return batches
    raise ValueError(f"unknown suite {suite!r}")


def learned_volume_expectations(gxe, bounds: dict) -> list:
    """The batch's row count within the bounds learned from the recent validated days (median +- k
    MAD, ``nightshift.drift.learned_volume_bounds``, passed in ``bounds["learned_volume"]``), with
    that history in ``meta`` (shown by the Data Docs); nothing until there are enough such days."""
    learned = bounds.get("learned_volume")
    if not learned:
        return []
    return [gxe.ExpectTableRowCountToBeBetween(
        min_value=int(learned["min"]), max_value=int(learned["max"]),
        meta={"learned_from": learned["days"], "median": learned["median"], "k_mad": learned["k_mad"]})]


def learned_template_share_expectations(gxe, bounds: dict) -> list:
    """Each of the most frequent templates' share of tonight's lines within the bounds learned from
    the recent validated days (``nightshift.drift.learned_template_share_bounds``, passed in
    ``bounds["learned_template_shares"]``), one column ``share_t<id>`` each of the
    ``template_shares`` batch (:func:`template_share_batch`), history in ``meta``, severity
    *warning*: a share out of its bounds is reported (validation report, Data Docs), and the day
    stays usable; the drift check (``nightshift.drift``) decides the alert."""
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column=f"share_t{b['template_id']}", min_value=float(b["min"]), max_value=float(b["max"]),
            severity="warning",
            meta={"learned_from": b["days"], "median": b["median"], "k_mad": b["k_mad"], "template_id": b["template_id"]})
        for b in bounds.get("learned_template_shares") or []
    ]


def template_share_batch(spark: "SparkSession", lake, source_name: str, day: str, learned: list[dict]) -> "DataFrame":
    """One row: tonight's share of lines (from the day's profile) of each template in ``learned``."""
    from nightshift.drift import profile_of, template_shares

    shares = template_shares(profile_of(lake, source_name, day), [b["template_id"] for b in learned])
    return spark.createDataFrame([{f"share_t{t}": float(v) for t, v in shares.items()}])


def describe_failure(result: Any) -> str:
    """One readable line for a failed expectation result."""
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format") and v is not None}
    column = kwargs.pop("column", None)
    observed = (result.result or {}).get("observed_value")
    details = result.result or {}
    if observed is None and details.get("element_count") == 1 and len(details.get("partial_unexpected_list") or []) == 1:
        observed = details["partial_unexpected_list"][0]    # a one-row batch (e.g. template shares): its value
    elif observed is None and "unexpected_percent" in details:
        observed = f"{details['unexpected_percent']:.2f}% unexpected ({details.get('unexpected_count')} rows)"
    exc = (result.exception_info or {}).get("exception_message") if isinstance(result.exception_info, dict) else None
    target = f"{column}: " if column else ""
    bounds = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()) if k != "column_set")
    text = f"{cfg.type}({target}{bounds})"
    if isinstance(observed, float):
        observed = f"{observed:.4g}"
    if observed is not None:
        text += f" observed {observed}"
    if exc:
        text += f" error: {exc}"
    learned = (cfg.meta or {}).get("learned_from")
    if learned:
        text += f" (bounds learned from {len(learned)} recent validated days, median {(cfg.meta or {}).get('median'):g})"
    return text


def run_validation(spark: "SparkSession", settings, lake, source, day: str, suite: str) -> dict:
    """Validate one suite for one day; write and return the report (``success``, ``failures``)."""
    import great_expectations as gx

    module = load_suite_module(settings.expectations_dir, suite)
    bounds = dict(source.validation.get(suite, {}))
    if suite in ("parsed_lines", "session_features"):
        # volume bounds learned from the recent validated days (GX shows them in the Data Docs)
        from nightshift.drift import learned_volume_bounds, load_thresholds

        thresholds = load_thresholds(settings.config_dir, source.name)
        learned = learned_volume_bounds(lake, source.name, day, suite, thresholds)
        if learned:
            bounds["learned_volume"] = learned
    if suite == "session_features":
        # the most frequent templates' line shares, against the same history (warnings: a changed
        # distribution is drift, which alerts; it does not make the data unusable)
        from nightshift.drift import learned_template_share_bounds

        shares = learned_template_share_bounds(lake, source.name, day, thresholds)
        if shares:
            bounds["learned_template_shares"] = shares
    expectations = module.build_expectations(bounds)
    lake.recover(source.name, day)      # finish an interrupted commit of the day first
    # taken before the data is read: if it is replaced meanwhile, the report is stale, never wrong
    fingerprint = data_fingerprint(lake, source.name, day, suite)
    batches = suite_batches(spark, lake, source.name, day, suite)
    if bounds.get("learned_template_shares"):
        batches["template_shares"] = template_share_batch(spark, lake, source.name, day, bounds["learned_template_shares"])

    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="file", project_root_dir=str(lake.gx_dir.parent))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_or_update_spark(name="spark")
    failures: list[str] = []
    warnings: list[str] = []    # failed expectations of severity "warning": reported, the day stays usable
    checked: dict[str, dict] = {}
    pages: dict[str, str] = {}
    if suite == "parsed_lines":
        ingest_fingerprint = (lake.read_report(source.name, day, "ingest") or {}).get("data_fingerprint")
        if ingest_fingerprint is not None and ingest_fingerprint != fingerprint:
            failures.append("ingest: the ingest report describes other data than the parsed partitions (re-run ingest)")
    for batch_name, frame in batches.items():
        name = f"{source.name}.{suite}.{batch_name}"
        try:
            asset = datasource.get_asset(name)
        except LookupError:
            asset = datasource.add_dataframe_asset(name=name)
        try:
            batch_definition = asset.get_batch_definition("whole")
        except KeyError:
            batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        gx_suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations[batch_name]))
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=gx_suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            )
        )
        # the run name ties a Data Docs result to its day (GX's default is "__none__")
        result = checkpoint.run(batch_parameters={"dataframe": frame},
                                run_id=RunIdentifier(run_name=f"{source.name} {day} {suite}.{batch_name}"))
        batch_failures, batch_warnings = [], []
        evaluated = 0
        for identifier in result.run_results:       # the exact Data Docs page of this result
            urls = context.get_docs_sites_urls(resource_identifier=identifier)
            if urls and urls[0].get("site_url"):
                pages[batch_name] = urls[0]["site_url"]
        for run_result in result.run_results.values():
            for expectation_result in run_result.results:
                evaluated += 1
                if not expectation_result.success:
                    severity = getattr(expectation_result.expectation_config, "severity", None)
                    target = batch_warnings if str(getattr(severity, "value", severity)) == "warning" else batch_failures
                    target.append(f"{batch_name}: {describe_failure(expectation_result)}")
        checked[batch_name] = {"expectations": evaluated, "failed": len(batch_failures)}
        if batch_warnings:
            checked[batch_name]["warnings"] = len(batch_warnings)
        failures.extend(batch_failures)
        warnings.extend(batch_warnings)

    docs = context.get_docs_sites_urls()
    if docs:    # GX's pages load their scripts from CDNs: point them at vendored copies (offline viewing)
        from nightshift.datadocs import UnknownCdnAssets, make_offline, site_dir_from_url

        site = site_dir_from_url(docs[0]["site_url"])
        try:
            if site is not None and site.is_dir():
                make_offline(site)
        except UnknownCdnAssets as exc:     # the docs still work online; the data verdict stands
            log.error("Data Docs not made offline: %s", exc)
    report = {
        "source": source.name,
        "day": day,
        "suite": suite,
        "success": not failures,
        "failures": failures,
        "warnings": warnings,
        "batches": checked,
        "data_fingerprint": fingerprint,
        "data_docs": docs[0]["site_url"] if docs else None,
        "data_docs_pages": pages,
    }
    lake.write_report(source.name, day, f"validation_{suite}", report)
    if failures:
        log.error("validation %s failed for %s %s:\n  %s", suite, source.name, day, "\n  ".join(failures))
    if warnings:
        log.warning("validation %s warnings for %s %s:\n  %s", suite, source.name, day, "\n  ".join(warnings))
    else:
        log.info("validation %s passed for %s %s (%s)", suite, source.name, day, json.dumps(checked))
    return report


def require_passed(lake, source_name: str, day: str, suite: str) -> dict:
    """The day's ``suite`` verdict, as the nightly DAG's ``validate_*`` tasks check it after the
    Spark job wrote it: returns the report when the suite passed on the data as it is now;
    raises :class:`ValidationFailed` (its first line is the reason) when it failed, was not run,
    or describes other data than the day's partitions hold now (a stale report is never trusted)."""
    report = lake.read_report(source_name, day, f"validation_{suite}")
    if report is None:
        raise ValidationFailed(f"{suite} was not validated for {source_name} {day}: no validation report "
                               "(the Spark job stopped before it; see ingest_and_validate's log)")
    current = data_fingerprint(lake, source_name, day, suite)
    if report.get("data_fingerprint") != current:
        raise ValidationFailed(f"the {suite} validation report of {source_name} {day} describes other data than "
                               "the day holds now (rewritten since it was validated): re-run the day")
    if not report["success"]:
        failures = report.get("failures") or ["(no reason recorded)"]
        raise ValidationFailed(f"{suite} validation failed for {source_name} {day}: {failures[0]}"
                               + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
                               + "\n" + "\n".join(f"  {f}" for f in failures)
                               + f"\nData Docs: {report.get('data_docs')}")
    return report
