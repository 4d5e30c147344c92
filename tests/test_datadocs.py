"""Data Docs offline (nightshift.datadocs.make_offline) on a real GX site built from a pandas frame (no Spark)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from nightshift import datadocs
from nightshift.datadocs import CDN_ASSETS, UnknownCdnAssets, make_offline, site_dir_from_url

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

REMOTE_ASSET = re.compile(r"""https?://[^"'\s<>()]+?\.(?:js|css)(?=[?#"'\s<>()]|$)""", re.IGNORECASE)
LOCAL_REF = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']*static/vendor/[^"'?#]+)""",
                       re.IGNORECASE)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """A Data Docs site as GX writes it: index, an expectation-suite page, a validation-result page."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    root = tmp_path_factory.mktemp("gx_project")
    context = gx.get_context(mode="file", project_root_dir=str(root))
    asset = context.data_sources.add_pandas(name="pandas").add_dataframe_asset(name="frame")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    # a dotted suite name: its pages live deeper (one folder per dot), as the pipeline's do
    suite = context.suites.add(gx.ExpectationSuite(name="hdfs.parsed_lines.lines", expectations=[
        gxe.ExpectColumnValuesToNotBeNull(column="template_id"),
        gxe.ExpectColumnValuesToBeBetween(column="n", min_value=0, max_value=10),
    ]))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="hdfs.parsed_lines.lines", data=batch_definition, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name="docs", validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")]))
    frame = pd.DataFrame({"template_id": ["E1", "E2", None], "n": [1, 5, 12]})
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    assert not result.success            # the failing rows make the validation page show unexpected values
    urls = context.get_docs_sites_urls()
    site = site_dir_from_url(urls[0]["site_url"])
    assert site is not None and (site / "index.html").is_file()
    return site


@pytest.fixture
def site(built_site, tmp_path) -> Path:
    copy = tmp_path / "local_site"
    shutil.copytree(built_site, copy)
    return copy


def pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if "vendor" not in p.relative_to(site).parts)


def snapshot(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def test_the_site_gx_builds_loads_from_cdns(built_site):
    """The premise: GX's pages load their scripts from CDNs, and every one of those is known."""
    found = set()
    for page in pages(built_site):
        found.update(u for u in CDN_ASSETS if u in page.read_text(encoding="utf-8"))
    assert "https://code.jquery.com/jquery-3.7.1.min.js" in found
    assert len(pages(built_site)) >= 3                      # index, suite page, validation page
    depths = {len(p.relative_to(built_site).parts) for p in pages(built_site)}
    assert len(depths) >= 2                                 # pages at several depths


def test_vendored_assets_exist_with_licences():
    for relative in set(CDN_ASSETS.values()):
        assert (datadocs.VENDOR_SOURCE / relative).is_file(), relative
    for package in {relative.split("/")[0] for relative in CDN_ASSETS.values()}:
        assert list((datadocs.VENDOR_SOURCE / package).glob("LICENSE*")), package
    # font-awesome's CSS finds its fonts at ../webfonts/ (woff2: what every current browser loads)
    css = (datadocs.VENDOR_SOURCE / "fontawesome-free-6.6.0/css/all.min.css").read_text()
    for font in set(re.findall(r"url\(\.\./webfonts/([\w.-]+\.woff2)\)", css)):
        assert (datadocs.VENDOR_SOURCE / "fontawesome-free-6.6.0/webfonts" / font).is_file(), font


def test_make_offline_leaves_no_remote_script_or_style(site):
    stats = make_offline(site)
    assert stats["rewritten"] == stats["pages"] == len(pages(site))
    checked = 0
    for page in pages(site):
        text = page.read_text(encoding="utf-8")
        assert not REMOTE_ASSET.findall(text), page
        assert not any(url in text for url in CDN_ASSETS), page
        assert "crossorigin" not in text and "integrity=" not in text   # refused / pointless on file://
        # the navbar logo comes from the site's static/images (the dark-mode CSS logo, which the
        # site does not have, stays remote: a missing background image, nothing breaks)
        assert "amazonaws.com/logo-long.png" not in text
        references = LOCAL_REF.findall(text)
        assert any(r.endswith("jquery.min.js") for r in references), page
        for reference in references:
            assert not reference.startswith("/") and "://" not in reference
            assert (page.parent / unquote(reference)).resolve().is_file(), (page, reference)
            checked += 1
    assert checked > 0
    # the index loads jQuery before the script that needs $ (the blank page of the issue)
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index.index("jquery.min.js") < index.index("$(")


def test_make_offline_is_idempotent(site):
    make_offline(site)
    first = snapshot(site)
    stats = make_offline(site)
    assert stats == {"pages": len(pages(site)), "rewritten": 0, "assets_copied": 0}
    assert snapshot(site) == first
    assert not [p for p in site.rglob("*.tmp")]


def test_unknown_cdn_asset_is_a_clear_error_and_changes_nothing(site):
    page = pages(site)[-1]
    text = page.read_text(encoding="utf-8")
    unknown = "https://cdn.example.org/npm/newlib@2.0.0/dist/newlib.min.js"
    page.write_text(text.replace("</head>", f'<script src="{unknown}"></script>\n</head>', 1), encoding="utf-8")
    before = snapshot(site)
    with pytest.raises(UnknownCdnAssets) as raised:
        make_offline(site)
    assert unknown in str(raised.value) and "not vendored" in str(raised.value)
    assert page.relative_to(site).as_posix() in str(raised.value)
    assert list(raised.value.unknown) == [unknown]
    assert snapshot(site) == before                 # checked before any file is touched
    assert not (site / "static" / "vendor").exists()


def test_unknown_stylesheet_without_css_suffix_is_caught(site):
    index = site / "index.html"
    unknown = "https://fonts.example.org/css2?family=Inter"
    index.write_text(index.read_text(encoding="utf-8").replace(
        "</head>", f'<link rel="stylesheet" href="{unknown}">\n</head>', 1), encoding="utf-8")
    with pytest.raises(UnknownCdnAssets, match=re.escape(unknown)):
        make_offline(site)


def test_missing_site_and_site_url(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_offline(tmp_path / "nope")
    assert site_dir_from_url("file:///x/y/local_site/index.html") == Path("/x/y/local_site")
    assert site_dir_from_url("https://docs.example.org/index.html") is None
    assert urlparse("file:///x").scheme == "file"


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium not installed (Debian package chromium)")
def test_index_renders_offline_in_headless_chromium(site):
    """The issue itself: opened as file:// (the machines this runs on reach no CDN), the index
    builds its results table with bootstrap-table, which needs jQuery's $. (Before make_offline it
    stays empty here: checked by hand, not asserted, since it depends on the network.)"""
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    make_offline(site)
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
         "--virtual-time-budget=5000", "--dump-dom", (site / "index.html").as_uri()],
        capture_output=True, text=True, timeout=180, check=True).stdout
    assert "fixed-table-container" in dom                   # bootstrap-table ran
    # ... and filled in the validation row (the page as written has no <td>: its rows are script data)
    assert re.search(r"<td[^>]*>(?:(?!</td>).)*hdfs\.parsed_lines\.lines", dom, re.DOTALL)
    assert "<td" not in (site / "index.html").read_text(encoding="utf-8")
