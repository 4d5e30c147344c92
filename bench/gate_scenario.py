"""The promotion gate on a generated scenario shaped like issue 13's real case.

The real case: four days of HDFS block sessions (~1,500 a day, ~3% anomalous, labels per day);
night 2 crowned a model trained on one day, night 4's candidate trained on three days was better
(holdout F1 0.989 vs 0.967) and was kept out by the old strict rule because the bootstrap lower
bound was exactly +0.000.

This script generates four such days with ``nightshift_datagen.hdfs`` (fixed seed) into a fresh
lake under ``--dir`` (a new temporary directory by default) and runs the four nights through the
real pipeline: the nightly DAG with ``airflow dags test`` (``nightshift.localenv.run_nightly_dag``,
as ``nightshift_datagen``'s demo and the end-to-end tests drive it), in the local environment of
``nightshift.localenv`` pointed at that directory (its own Airflow home, lake, MLflow store; never
the repo's ``./data`` or ``.airflow``). It does so once per rule: ``non_inferior`` with the
shipped ``config/`` (after) and ``old`` with a copy of ``config/`` whose ``rule``, ``bootstrap_days``
and ``margin`` lines are changed to the gate before issue 13: strict, on the holdout bootstrap, lower
bound above 0.0 (before; ``NIGHTSHIFT_CONFIG_DIR``); ``strict`` (the rule line alone, pooled days)
on request. Both runs start from the same generated days.

Per night it prints the candidates' holdout F1, the best candidate, the decision and its reason,
the champion after the night and its holdout F1; at the end whether the final champion is the
best candidate of the last night, and whether that candidate was non-inferior on every day its
decision compared it on (read from ``reports/source=hdfs/dt=<day>/decision.json``: the backtest
rows, challenger vs champion F1 per day, and the pooled bootstrap interval).

    .venv/bin/python bench/gate_scenario.py                        # old, then non_inferior
    .venv/bin/python bench/gate_scenario.py --rules non_inferior --dir /tmp/gate
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from nightshift.gate import load_policy  # noqa: E402
from nightshift.lake import Lake  # noqa: E402
from nightshift.localenv import local_environment, migrate_airflow_db, run_nightly_dag  # noqa: E402
from nightshift_datagen.hdfs import Scenario, generate  # noqa: E402

SOURCE = "hdfs"
SHORT = {"baseline_logreg": "logreg", "decision_tree": "tree", "random_forest": "forest",
         "gradient_boosting": "gboost", "pca_detector": "pca", "isolation_forest": "iforest",
         "invariants_miner": "invariants"}


# the settings each name stands for, over the shipped config/promotion.yaml; "old" is the gate
# before issue 13 as closely as settings give it (the lower bound of the holdout bootstrap must
# exceed 0.0; the tuned candidates and the in-sample exemption of the champion's own days stay)
SETTINGS = {"strict": {"rule": "strict"}, "old": {"rule": "strict", "bootstrap_days": "holdout", "margin": "0.0"},
            "non_inferior": {"rule": "non_inferior"}}
RULES = tuple(SETTINGS)


def config_dir_for(rule: str, base: Path) -> Path:
    """The shipped config when it already has ``rule``'s settings; otherwise a copy of it with only
    those lines of promotion.yaml changed."""
    shipped = PROJECT_ROOT / "config"
    wanted = SETTINGS[rule]
    policy = load_policy(shipped).to_dict()
    if all(str(policy[k]) == v for k, v in wanted.items()):
        return shipped
    target = base / "config"
    shutil.copytree(shipped, target)
    lines = (target / "promotion.yaml").read_text().splitlines(keepends=True)
    for key, value in wanted.items():
        changed = [i for i, line in enumerate(lines) if line.startswith(f"{key}:")]
        if len(changed) != 1:
            raise SystemExit(f"expected one '{key}:' line in {shipped / 'promotion.yaml'}, found {len(changed)}")
        lines[changed[0]] = f"{key}: {value}                     # changed by bench/gate_scenario.py\n"
    (target / "promotion.yaml").write_text("".join(lines))
    policy = load_policy(target).to_dict()
    if not all(str(policy[k]) == v for k, v in wanted.items()):
        raise SystemExit(f"could not set {wanted} in {target}")
    return target


def run_rule(rule: str, base: Path, scenario: Scenario) -> dict:
    """Generate the days into a fresh lake under ``base`` and run the nightly DAG on each."""
    data_root, airflow_home, logs = base / "data", base / "airflow", base / "logs"
    generated = generate(data_root, scenario)
    env = local_environment(airflow_home=airflow_home, data_root=data_root)
    env["NIGHTSHIFT_CONFIG_DIR"] = str(config_dir_for(rule, base))
    print(f"[{rule}] lake {data_root}, Airflow home {airflow_home}, config {env['NIGHTSHIFT_CONFIG_DIR']}", flush=True)
    for g in generated:
        print(f"[{rule}]   generated {g.describe()}", flush=True)
    migrate_airflow_db(env, logs / "airflow-db-migrate.log")
    nights = []
    for g in generated:
        started = time.monotonic()
        code = run_nightly_dag(g.day, env, logs / f"{g.day}.log")
        seconds = time.monotonic() - started
        record = Lake(data_root).read_report(SOURCE, g.day, "decision")
        print(f"[{rule}]   night {g.day}: airflow dags test exit {code} in {seconds:.0f}s; "
              f"{record['decision'] if record else 'no decision record'}", flush=True)
        nights.append({"day": g.day, "exit_code": code, "seconds": round(seconds, 1), "record": record,
                       "blocks": g.blocks, "anomalies": g.anomalies})
    return {"rule": rule, "base": str(base), "nights": nights}


def champion_f1(record: dict) -> float | None:
    """The holdout F1 of the champion after the night: the challenger's when it was promoted,
    the champion's own on tonight's holdout when it was kept."""
    if not record or not record.get("champion_after"):
        return None
    if record.get("champion_after") == record.get("challenger_version"):
        return record["candidates"][record["best_candidate"]]["f1"]
    return (record.get("champion_metrics") or {}).get("f1")


def short_reason(record: dict) -> str:
    """The reason without the parts every night repeats: the failed checks, or the comparison rule's detail."""
    if not record:
        return "-"
    if record["decision"] in ("skipped", "failed") or not record.get("checks"):
        return record["reason"]
    failed = [c for c in record["checks"] if not c["passed"]]
    shown = failed or [c for c in record["checks"] if c["name"] in ("bootstrap",)] or record["checks"][:1]
    return "; ".join(f"{c['name']} {'failed' if not c['passed'] else 'passed'}: {c['detail']}" for c in shown)


def per_day_comparison(record: dict, delta: float) -> list[dict]:
    """The days the last night's decision compared the best candidate with the champion on (its
    backtest rows: the holdout and the earlier days, the challenger refitted out of sample there)."""
    rows = []
    for r in record.get("backtest") or []:
        diff = r["challenger_f1"] - r["champion_f1"]
        rows.append({**r, "diff": diff, "non_inferior": diff > -delta})
    return rows


def report(result: dict) -> str:
    rule, nights = result["rule"], result["nights"]
    seen = {c for n in nights for c in ((n["record"] or {}).get("candidates") or {})}
    names = [c for c in SHORT if c in seen] + sorted(seen - set(SHORT))     # config/training.yaml's order
    out = [f"rule: {rule}  (lake {result['base']})", ""]
    head = ["night", "blocks", "anomalous"] + [SHORT.get(c, c) for c in names]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for n in nights:
        cands = (n["record"] or {}).get("candidates") or {}
        cells = [n["day"], str(n["blocks"]), str(n["anomalies"])]
        cells += [f"{cands[c]['f1']:.3f}" if c in cands and cands[c].get("f1") is not None else "-" for c in names]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    head = ["night", "exit", "s", "best candidate (holdout F1)", "decision", "champion after (holdout F1)", "reason"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    version_of = {}
    for n in nights:
        r = n["record"] or {}
        if r.get("challenger_version"):
            version_of[r["challenger_version"]] = r["best_candidate"]
        best = (f"{r['best_candidate']} ({r['candidates'][r['best_candidate']]['f1']:.3f})"
                if r.get("best_candidate") else "-")
        after = r.get("champion_after")
        f1 = champion_f1(r)
        champ = (f"v{after} {version_of.get(after, '?')} ({f1:.3f})" if after and f1 is not None
                 else f"v{after}" if after else "-")
        out.append("| " + " | ".join([n["day"], str(n["exit_code"]), f"{n['seconds']:.0f}", best,
                                      r.get("decision", "-"), champ,
                                      short_reason(r).replace("|", "/")]) + " |")
    last = nights[-1]["record"] or {}
    out.append("")
    if not last.get("best_candidate"):
        out.append(f"last night: no candidate ({last.get('decision')}: {last.get('reason')})")
        return "\n".join(out)
    delta = last["policy"]["non_inferiority_delta"]
    final_is_best = last.get("champion_after") == last.get("challenger_version")
    out.append(f"last night's best candidate: {last['best_candidate']} v{last['challenger_version']} "
               f"(trained on {', '.join(last['train_days'])}); final champion: v{last.get('champion_after')} "
               f"{version_of.get(last.get('champion_after'), '?')}")
    out.append(f"final champion is the last night's best candidate: {'YES' if final_is_best else 'NO'}")
    rows = per_day_comparison(last, delta)
    if last.get("champion_before") and rows:
        for r in rows:
            out.append(f"  {r['day']}: candidate F1 {r['challenger_f1']:.3f} vs champion v{last['champion_before']} "
                       f"{r['champion_f1']:.3f} (difference {r['diff']:+.3f}; non-inferior within {delta}: "
                       f"{'yes' if r['non_inferior'] else 'no'}"
                       + ("; champion in sample" if r.get("champion_in_sample") else "") + ")")
        b = last.get("bootstrap") or {}
        if b:
            out.append(f"  pooled bootstrap over {', '.join(b.get('days') or [])}: observed {b['observed']:+.4f}, "
                       f"{b['confidence']:.0%} CI [{b['lower']:+.4f}, {b['upper']:+.4f}] (non-inferior: lower > "
                       f"-{delta}: {'yes' if b['lower'] > -delta else 'no'})")
        every = all(r["non_inferior"] for r in rows)
        out.append(f"best candidate non-inferior on every day compared: {'YES' if every else 'NO'}")
        if every and not final_is_best:
            out.append("=> the best candidate is non-inferior on every day but is NOT the champion: "
                       f"{last['reason']}")
    elif not last.get("champion_before"):
        out.append("  (no champion before the last night: nothing to compare with)")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", type=Path, default=None, help="where the lakes and Airflow homes go (default: a new temp dir)")
    p.add_argument("--rules", default="old,non_inferior", help=f"comma-separated, run in this order, one after the other: {', '.join(RULES)}")
    p.add_argument("--start-day", default="2026-05-01")
    p.add_argument("--days", type=int, default=4)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--blocks-per-day", type=int, default=1500)
    p.add_argument("--anomaly-rate", type=float, default=0.03)
    args = p.parse_args(argv)
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    if not rules or set(rules) - set(RULES):
        p.error(f"--rules must name some of {RULES}")
    root = (args.dir or Path(tempfile.mkdtemp(prefix="nightshift-gate-scenario-"))).resolve()
    if root.is_relative_to(PROJECT_ROOT / "data") or root == PROJECT_ROOT:
        p.error(f"--dir {root} would write into the repo's lake")
    scenario = Scenario(start_day=args.start_day, days=args.days, seed=args.seed, blocks_per_day=args.blocks_per_day,
                        anomaly_rate=args.anomaly_rate)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    print(f"gate scenario: {scenario}; commit {commit}; {time.strftime('%Y-%m-%d %H:%M:%S')}; under {root}", flush=True)
    results = []
    for rule in rules:
        base = root / rule
        if base.exists() and any(base.iterdir()):
            p.error(f"{base} is not empty: use a fresh --dir")
        started = time.monotonic()
        result = run_rule(rule, base, scenario)
        result["seconds"] = round(time.monotonic() - started, 1)
        results.append(result)
        (base / "result.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"[{rule}] done in {result['seconds']:.0f}s", flush=True)
    for result in results:
        print("\n" + report(result))
    return 0 if all(n["record"] for r in results for n in r["nights"]) else 1


if __name__ == "__main__":
    sys.exit(main())
