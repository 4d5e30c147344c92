"""Training: pick the labelled days, train candidates, log each as an MLflow run.

The most recent labelled day is the holdout (never trained on); the training set is the other
labelled days of the rolling window. Only days whose data passed validation are used. A source
declared ``labels: none`` gets a plan from its first validated day: the label-free detectors train
on that day and are judged on the same day, in sample, by the flag-rate bounds only
(``TrainingPlan.in_sample``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from nightshift.airflow_links import airflow_tags
from nightshift.candidate_kinds import DETECTOR_KINDS, SUPERVISED_KINDS
from nightshift.lake import Lake

log = logging.getLogger("nightshift.training")
DEFAULT_TUNING = {"budget_s": 60.0, "max_configs": 4}


@dataclass(frozen=True)
class TrainingConfig:
    model_name_prefix: str
    experiment_prefix: str
    window_days: int
    metric: str
    candidates: tuple[dict[str, Any], ...]
    tuning: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_TUNING))

    def model_name(self, source: str) -> str:
        return f"{self.model_name_prefix}_{source}"

    def experiment_name(self, source: str) -> str:
        return f"{self.experiment_prefix}-{source}"

    def candidate(self, name: str) -> dict[str, Any]:
        for c in self.candidates:
            if c["name"] == name:
                return c
        raise KeyError(f"no candidate {name!r} in training config; known: {[c['name'] for c in self.candidates]}")


def load_training_config(config_dir: Path) -> TrainingConfig:
    path = Path(config_dir) / "training.yaml"
    raw = yaml.safe_load(path.read_text())
    candidates = tuple(raw["candidates"])
    names = [c["name"] for c in candidates]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"{path}: candidate names must be unique and non-empty, got {names}")
    if raw.get("metric", "f1") != "f1":
        raise ValueError(f"{path}: only metric 'f1' is supported, got {raw.get('metric')!r}")
    tuning = {**DEFAULT_TUNING, **(raw.get("tuning") or {})}
    unknown = set(tuning) - set(DEFAULT_TUNING)
    if unknown:
        raise ValueError(f"{path}: unknown tuning keys {sorted(unknown)}; known: {sorted(DEFAULT_TUNING)}")
    if not float(tuning["budget_s"]) >= 0 or int(tuning["max_configs"]) < 1:
        raise ValueError(f"{path}: tuning.budget_s must be >= 0 and tuning.max_configs >= 1, got {tuning}")
    for c in candidates:
        if c.get("kind") not in SUPERVISED_KINDS + DETECTOR_KINDS:
            raise ValueError(f"{path}: candidate {c.get('name')!r} has unknown kind {c.get('kind')!r}")
    return TrainingConfig(
        tuning={"budget_s": float(tuning["budget_s"]), "max_configs": int(tuning["max_configs"])},
        model_name_prefix=raw["model_name_prefix"],
        experiment_prefix=raw["experiment_prefix"],
        window_days=int(raw["window_days"]),
        metric="f1",
        candidates=candidates,
    )


@dataclass(frozen=True)
class TrainingPlan:
    source: str
    day: str
    holdout_days: tuple[str, ...]
    train_days: tuple[str, ...]
    excluded_days: dict[str, str] = field(default_factory=dict)
    skip_reason: str | None = None
    labelled: bool = True          # False for a source declared `labels: none`: detectors only, judged without labels
    # why a labelled source's night trains the detectors only (``plan_for_source``): None otherwise
    fallback: str | None = None

    @property
    def labelled_days(self) -> tuple[str, ...]:
        """All usable days, oldest first (training days then holdout days), each once (an in-sample
        plan trains and holds out the same day)."""
        return tuple(dict.fromkeys(self.train_days + self.holdout_days))

    @property
    def in_sample(self) -> bool:
        """The holdout is a training day: the first validated day of a source without labels, on
        which the detectors are judged by the flag-rate bounds only (no out-of-sample night exists)."""
        return bool(set(self.holdout_days) & set(self.train_days))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainingPlan":
        return cls(**{**d, "train_days": tuple(d["train_days"]), "holdout_days": tuple(d["holdout_days"])})


def plan_training(lake: Lake, source: str, day: str, config: TrainingConfig, holdout_days: int = 1,
                  labelled: bool = True) -> TrainingPlan:
    """Choose holdout and training days among the window's labelled, validated days up to ``day``:
    the latest ``holdout_days`` are held out (never trained on), the earlier ones are trained on.

    A source without labels (``labelled=False``) needs one validated day only: with a single one,
    that day is both the training day and the holdout (an in-sample plan, ``TrainingPlan.in_sample``:
    the detectors' flag rate on the day they were fitted on, judged by the bounds only); from the
    second validated day on it is split like a labelled source's."""
    first = (dt.date.fromisoformat(day) - dt.timedelta(days=config.window_days - 1)).isoformat()
    from nightshift.validation import data_fingerprint

    usable, excluded = [], {}
    lake.recover(source)      # finish interrupted commits before judging what the days hold
    for d in lake.days_with("features", source):
        if not first <= d <= day:
            continue
        problems = []
        for suite in ("parsed_lines", "session_features"):
            report = lake.read_report(source, d, f"validation_{suite}")
            if report is None:
                problems.append(f"{suite} not validated")
            elif not report["success"]:
                problems.append(f"{suite} failed validation")
            elif report.get("data_fingerprint") != data_fingerprint(lake, source, d, suite):
                problems.append(f"{suite} validated an older version of the data (re-validate)")
        missing_labels = labels_problem(lake, source, d) if labelled else None
        if missing_labels:
            problems.append(missing_labels)
        if problems:
            excluded[d] = "; ".join(problems)
        else:
            usable.append(d)
    if not labelled and len(usable) == 1:
        # a detector needs no labels to fit, so the first validated day can already give a model;
        # judging it needs a day too, and there is no other: the same day, in sample
        return TrainingPlan(source, day, (usable[0],), (usable[0],), excluded, None, labelled)
    needed = holdout_days + 1
    if len(usable) < needed:
        reason = (
            f"need {needed} validated labelled days in the {config.window_days}-day window "
            f"({holdout_days} holdout + 1 training), have {len(usable)}"
        )
        if not labelled:
            reason = (f"need 1 validated day in the {config.window_days}-day window (source without labels), "
                      f"have {len(usable)}" if not usable else
                      reason.replace("validated labelled days", "validated days (source without labels)"))
        return TrainingPlan(source, day, (), (), excluded, reason, labelled)
    return TrainingPlan(source, day, tuple(usable[-holdout_days:]), tuple(usable[:-holdout_days]), excluded, None,
                        labelled)


def plan_for_source(lake: Lake, source: str, day: str, config: TrainingConfig, holdout_days: int, labelled: bool,
                    champion_version: Callable[[], str | None]) -> TrainingPlan:
    """The night's plan. A labelled source with no labelled day in the window (a new source whose
    labels arrive days later) is not left without a model: unless its champion was judged with
    labels, the label-free detectors train on its validated days and are judged without labels, as
    for a source declared ``labels: none`` (``TrainingPlan.fallback`` says why), night after night
    until labels arrive; then the usual plan takes over and every candidate, supervised or not,
    meets that champion through the labelled gate. A champion judged with labels (labels stopped
    coming for a while), or any labelled day in the window (the labels flow: wait for the second),
    keeps the skip. ``champion_version`` is asked only when the fallback is possible (it reads the
    registry)."""
    plan = plan_training(lake, source, day, config, holdout_days, labelled=labelled)
    if not (labelled and plan.skip_reason):
        return plan
    fallback = plan_training(lake, source, day, config, holdout_days, labelled=False)
    # a validated day the labelled plan did not exclude has labels: they flow, wait for the second
    if fallback.skip_reason or any(d not in plan.excluded_days for d in fallback.labelled_days):
        return plan
    version = champion_version()
    if version is not None and (lake.registering_decision(source, version) or {}).get("labelled") is not False:
        return plan
    why = (f"no labelled day yet in the {config.window_days}-day window and "
           + ("no champion" if version is None else f"champion v{version} judged without labels")
           + ": the label-free detectors train on the validated days and are judged without labels until labels "
           f"arrive ({plan.skip_reason})")
    log.info("%s %s: %s", source, day, why)
    return TrainingPlan(fallback.source, fallback.day, fallback.holdout_days, fallback.train_days,
                        plan.excluded_days, None, False, why)


def labels_problem(lake: Lake, source: str, day: str, settings=None) -> str | None:
    """Why a day has no usable labels (for training and for ``nightshift.retraining``'s wait), or ``None`` when it has: a labels file that passed the
    ``labels`` suite (``nightshift.labels.validated_labels``), or labels carried by the lines."""
    from nightshift.labels import LabelsRejected, validated_labels

    try:
        labels = validated_labels(settings, lake, source, day)
    except LabelsRejected as exc:
        return f"labels rejected: {exc}"
    if labels is not None:
        return None if labels.stats.labelled else "labels file has no labelled session"
    report = lake.read_report(source, day, "features") or {}
    return None if report.get("labelled_sessions") else "no labels yet"


def _has_labels(lake: Lake, source: str, day: str) -> bool:
    """A day is labelled once a valid labels file has arrived, or when its lines carry labels."""
    return labels_problem(lake, source, day) is None


def load_labelled_sessions(lake: Lake, source: str, days: list[str] | tuple[str, ...], settings=None):
    """Labelled sessions of the given days.

    The labels file is authoritative (labels may arrive after the features were built) and is
    used only once it passed validation (``nightshift.labels.validated_labels``: raises
    ``LabelsRejected`` otherwise); without one, the label the features job derived from the lines
    themselves is used.
    """
    import pandas as pd

    from nightshift.labels import validated_labels

    frames = []
    for d in days:
        features = pd.read_parquet(lake.features_dir(source, d))
        labels = validated_labels(settings, lake, source, d)
        if labels is not None:
            merged = features.drop(columns=["label"]).merge(labels.frame, on="session_id", how="inner")
            log.info("%s %s: %d of %d sessions labelled by %s (%d bad rows, %d duplicates dropped)", source, d,
                     len(merged), len(features), labels.stats.path, labels.stats.bad_rows,
                     labels.stats.duplicates_dropped)
        else:
            merged = features[features["label"].notna()].copy()
        merged["day"] = d
        frames.append(merged)
    data = pd.concat(frames, ignore_index=True)
    data["label"] = data["label"].astype(int)
    return data


def load_sessions(lake: Lake, source: str, days) -> "Any":
    """All sessions of the given days, labels or not (a source declared ``labels: none``)."""
    import pandas as pd

    frames = []
    for d in days:
        frame = pd.read_parquet(lake.features_dir(source, d))
        frame["day"] = d
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def flag_rates(model, frame) -> dict[str, float]:
    """Share of sessions a model flags (P(anomalous) >= 0.5), per day of ``frame``."""
    from nightshift.modeling import to_model_input

    flagged = model.predict_proba(to_model_input(frame))[:, 1] >= 0.5
    return {str(d): float(flagged[(frame["day"] == d).to_numpy()].mean()) for d in sorted(frame["day"].unique())}


def classification_metrics(y_true, y_pred, y_score=None) -> dict[str, float]:
    """The gate's metrics (``nightshift.gate.metrics``) as floats for MLflow, plus average
    precision when scores are given and both classes are present."""
    from sklearn.metrics import average_precision_score

    from nightshift.gate import metrics

    result = {k: float(v) for k, v in metrics(y_true, y_pred).items()}
    if y_score is not None and 0 < sum(y_true) < len(y_true):
        result["average_precision"] = float(average_precision_score(y_true, y_score))
    return result


def setup_mlflow(settings, experiment_name: str) -> str:
    """Point MLflow at the configured store and return the experiment id (created if needed)."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if settings.mlflow_tracking_uri.startswith("sqlite:"):
        settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
        artifact_location = settings.mlflow_artifacts_dir.as_uri()
    try:
        return mlflow.create_experiment(experiment_name, artifact_location=artifact_location)
    except mlflow.exceptions.MlflowException as exc:
        # the night's mapped train_candidate tasks run at once under a real executor: another
        # one may have created it since the lookup (seen in tests/test_stack.py)
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        experiment = mlflow.get_experiment_by_name(experiment_name)
        if experiment is None:
            raise
        return experiment.experiment_id


DATASET_RACE_ATTEMPTS = 4


def log_dataset_input(dataset, context: str, attempts: int = DATASET_RACE_ATTEMPTS) -> None:
    """``mlflow.log_input`` that survives the night's candidates logging the same dataset at once.

    MLflow's store looks the (experiment, name, digest) dataset up and inserts it when missing, in
    one transaction that is not serialised against another run doing the same: the night's
    ``train_candidate`` tasks all log the same training and holdout frames, and the second insert
    fails on the ``datasets`` primary key (seen with the MLflow server on PostgreSQL in
    tests/test_stack.py, 4 tasks started within a second: ``BAD_REQUEST: UniqueViolation ...
    dataset_pk``). The failed transaction is rolled back whole, and the next attempt finds the
    dataset and only links it to this run, so the call is retried; any other error is raised."""
    import random

    import mlflow

    for attempt in range(1, attempts + 1):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except mlflow.exceptions.MlflowException as exc:
            text = str(exc)
            duplicate = "dataset_pk" in text or "UNIQUE constraint failed: datasets." in text
            if not duplicate or attempt == attempts:
                raise
            log.warning("dataset %r was created by another run at the same time (attempt %d of %d): retrying",
                        dataset.name, attempt, attempts)
            time.sleep(random.uniform(0.05, 0.3))


def train_candidate(settings, config: TrainingConfig, plan: TrainingPlan, candidate_name: str) -> dict[str, Any]:
    """Train one candidate (see :func:`_train_candidate`); the result also carries ``window``, the
    task's [start, end] in epoch seconds (loading, search, fit and MLflow logging), from which the
    night report (``nightshift.night``) takes the training share of the night."""
    started = time.time()
    result = _train_candidate(settings, config, plan, candidate_name)
    result["window"] = [round(started, 3), round(time.time(), 3)]
    return result


def _train_candidate(settings, config: TrainingConfig, plan: TrainingPlan, candidate_name: str) -> dict[str, Any]:
    """Train one candidate on the plan's days, evaluate on the holdout, log an MLflow run.

    Supervised kinds: a hyperparameter search within ``config.tuning`` (``nightshift.tuning``,
    time-ordered on the training days), then the chosen params are fitted in a
    ``ThresholdedClassifier`` (F1 threshold chosen out-of-fold on the training days and folded
    into the model's probabilities). Detectors fit on the training sessions without labels.
    Training time (search + fit) is logged as the metrics ``train_seconds``, ``tuning_seconds``,
    ``fit_seconds``.

    Returns a small dict (run id, model URI, holdout metrics) for the evaluate step.
    """
    import mlflow
    import numpy as np
    import pandas as pd
    import sklearn
    from mlflow.models import infer_signature

    import nightshift_model
    from nightshift.modeling import build_model, fit_model, to_model_input
    from nightshift.tuning import search

    if plan.skip_reason:
        raise ValueError(f"training plan is skipped: {plan.skip_reason}")
    candidate = config.candidate(candidate_name)
    lake = Lake(settings.data_root)
    if not plan.labelled:
        return _train_detector_without_labels(settings, config, plan, candidate)
    train = load_labelled_sessions(lake, plan.source, plan.train_days)
    holdout = load_labelled_sessions(lake, plan.source, plan.holdout_days)
    if train["label"].nunique() < 2:
        raise ValueError(f"training days {plan.train_days} have only one class; cannot train {candidate_name}")
    X_train, y_train = to_model_input(train), train["label"].to_numpy()
    X_holdout, y_holdout = to_model_input(holdout), holdout["label"].to_numpy()

    experiment_id = setup_mlflow(settings, config.experiment_name(plan.source))
    kind = candidate["kind"]
    supervised = kind in SUPERVISED_KINDS
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{plan.day}.{candidate_name}") as run:
        mlflow.set_tags(
            {"nightshift.source": plan.source, "nightshift.day": plan.day, "nightshift.candidate": candidate_name,
             "nightshift.role": "candidate", "nightshift.supervised": str(supervised).lower(), **airflow_tags()}
        )
        mlflow.log_params(
            {"kind": kind, "train_days": ",".join(plan.train_days), "holdout_days": ",".join(plan.holdout_days),
             "window_days": config.window_days, "train_sessions": len(train), "holdout_sessions": len(holdout)}
        )
        log_dataset_input(
            mlflow.data.from_pandas(
                pd.concat([X_train, train[["label"]]], axis=1),
                source=str(lake.root / "features" / f"source={plan.source}"), name="train", targets="label",
            ),
            context="training",
        )
        log_dataset_input(
            mlflow.data.from_pandas(
                pd.concat([X_holdout, holdout[["label"]]], axis=1),
                source=str(lake.root / "features" / f"source={plan.source}"), name="holdout", targets="label",
            ),
            context="holdout",
        )
        started = time.monotonic()
        # the search and the threshold see the training sessions only; the holdout is scored below
        tuned = search(candidate, train, config.tuning["budget_s"], config.tuning["max_configs"]) if supervised else None
        params = tuned["params"] if tuned else dict(candidate.get("params") or {})
        tuned_at = time.monotonic()
        days = train["day"].to_numpy() if "day" in train.columns else None
        model = fit_model(build_model(kind, params), X_train, y_train, days)
        finished = time.monotonic()
        timing = {"train_seconds": finished - started, "tuning_seconds": tuned_at - started,
                  "fit_seconds": finished - tuned_at}
        mlflow.log_params({f"model.{k}": v for k, v in params.items()})
        if tuned:
            mlflow.log_params({"tuning.validation": tuned["validation"][:500], "tuning.budget_s": tuned["budget_s"],
                               "tuning.tried": len(tuned["tried"]), "tuning.configurations": tuned["configurations"],
                               "tuning.cut_by_budget": tuned["cut_by_budget"]})
            mlflow.log_dict(tuned, "tuning.json")
        threshold = getattr(model, "threshold_", None)
        if threshold is not None:
            mlflow.log_params({"threshold": round(threshold, 6), "threshold.chosen_on": model.threshold_source_[:500]})
            mlflow.log_metric("threshold", threshold)
        train_metrics = classification_metrics(y_train, model.predict(X_train))
        scores = model.predict_proba(X_holdout)[:, 1]
        predictions = model.predict(X_holdout)
        metrics = classification_metrics(y_holdout, predictions, scores)
        mlflow.log_metrics({f"train_{k}": v for k, v in train_metrics.items()})
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        mlflow.log_metrics(timing)
        mlflow.log_metric("vocabulary_size", len(model.named_steps["vectorize"].vocabulary_))
        # pyfunc (and so the Spark UDF used for batch scoring) returns class probabilities:
        # [P(normal), P(anomalous)] per session
        signature = infer_signature(X_train, model.predict_proba(X_train.head(5)))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=X_train.head(2),
            pyfunc_predict_fn="predict_proba",
            serialization_format="cloudpickle",
            # only the model's own package (vectorizer, candidates, input contract): the pickle names
            # nightshift_model.EventCountVectorizer, and nothing else of ours is needed to load it
            code_paths=[str(Path(nightshift_model.__file__).parent)],
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}", f"numpy=={np.__version__}"],
        )
    log.info("candidate %s, holdout %s: %s", candidate_name, ",".join(plan.holdout_days), metrics)
    return {"candidate": candidate_name, "run_id": run.info.run_id, "model_uri": info.model_uri, "metrics": metrics,
            "kind": kind, "supervised": supervised, "params": params, "threshold": threshold,
            "seconds": {k: round(v, 3) for k, v in timing.items()}}


def _train_detector_without_labels(settings, config: TrainingConfig, plan: TrainingPlan, candidate: dict[str, Any]) -> dict[str, Any]:
    """A source without labels: fit a label-free detector on the training days' sessions and log
    its flag rate per day (no F1 exists: nothing says which sessions are anomalous)."""
    import mlflow
    import numpy as np
    import pandas as pd
    import sklearn
    from mlflow.models import infer_signature

    import nightshift_model
    from nightshift.modeling import build_model, to_model_input

    kind, name = candidate["kind"], candidate["name"]
    if kind not in DETECTOR_KINDS:
        raise ValueError(f"source {plan.source} has no labels (labels: none): candidate {name!r} ({kind}) needs labels; "
                         f"only {DETECTOR_KINDS} can train")
    lake = Lake(settings.data_root)
    train, holdout = load_sessions(lake, plan.source, plan.train_days), load_sessions(lake, plan.source, plan.holdout_days)
    X_train = to_model_input(train)
    sessions = load_sessions(lake, plan.source, plan.labelled_days)   # each day once (in sample: the same day)
    experiment_id = setup_mlflow(settings, config.experiment_name(plan.source))
    params = dict(candidate.get("params") or {})
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{plan.day}.{name}") as run:
        mlflow.set_tags({"nightshift.source": plan.source, "nightshift.day": plan.day, "nightshift.candidate": name,
                         "nightshift.role": "candidate", "nightshift.supervised": "false", "nightshift.labels": "none",
                         "nightshift.in_sample": str(plan.in_sample).lower(), **airflow_tags()})
        mlflow.log_params({"kind": kind, **{f"model.{k}": v for k, v in params.items()},
                           "train_days": ",".join(plan.train_days), "holdout_days": ",".join(plan.holdout_days),
                           "window_days": config.window_days, "train_sessions": len(train), "holdout_sessions": len(holdout)})
        started = time.monotonic()
        model = build_model(kind, params).fit(X_train, None)
        seconds = time.monotonic() - started
        rates = flag_rates(model, sessions)
        metrics = {"sessions": int(len(holdout)), "flag_rate": rates[plan.holdout_days[-1]], "f1": None}
        mlflow.log_metrics({"train_seconds": seconds, "tuning_seconds": 0.0, "fit_seconds": seconds,
                            "holdout_flag_rate": metrics["flag_rate"]})
        mlflow.log_dict(rates, "flag_rates.json")
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(X_train, model.predict_proba(X_train.head(5))),
            input_example=X_train.head(2), pyfunc_predict_fn="predict_proba", serialization_format="cloudpickle",
            code_paths=[str(Path(nightshift_model.__file__).parent)],
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}", f"numpy=={np.__version__}"])
    return {"candidate": name, "run_id": run.info.run_id, "model_uri": info.model_uri, "metrics": metrics, "kind": kind,
            "supervised": False, "params": params, "threshold": None, "flag_rates": rates,
            "seconds": {"train_seconds": round(seconds, 3), "tuning_seconds": 0.0, "fit_seconds": round(seconds, 3)}}
