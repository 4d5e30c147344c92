"""The Spark jobs' entry-point plumbing: the background imports a job asks for while its JVM starts."""

from __future__ import annotations

import logging
import sys
import textwrap

from nightshift.jobrunner import import_in_background


def test_background_imports_load_the_modules_once_and_report_failures_without_raising(tmp_path, monkeypatch, caplog):
    (tmp_path / "ns_slow_module.py").write_text(textwrap.dedent("""
        import time
        time.sleep(0.3)
        LOADED = object()
    """))
    (tmp_path / "ns_broken_module.py").write_text("raise RuntimeError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("ns_slow_module", "ns_broken_module"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    caplog.set_level(logging.INFO, logger="nightshift.jobrunner")

    thread = import_in_background(("ns_slow_module", "ns_broken_module"))
    import ns_slow_module      # noqa: E402 - while (or after) the thread imports it: one module object

    thread.join(timeout=10)
    assert not thread.is_alive()
    assert sys.modules["ns_slow_module"] is ns_slow_module and ns_slow_module.LOADED is not None
    assert "ns_broken_module" not in sys.modules
    assert "background import of ns_broken_module failed: broken on purpose" in caplog.text
    assert import_in_background(()) is None


def test_the_ingest_job_imports_great_expectations_early_only_when_it_validates():
    import argparse

    from jobs import ingest
    from nightshift.validation import VALIDATION_MODULES

    assert ingest._imports(argparse.Namespace(validate=True)) == VALIDATION_MODULES
    assert "great_expectations" in VALIDATION_MODULES
    assert ingest._imports(argparse.Namespace(validate=False)) == ()
