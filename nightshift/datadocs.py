"""Great Expectations Data Docs that work offline.

GX 1.24 renders pages that load jQuery, Bootstrap, bootstrap-table, popper, bootstrap-datepicker,
Font Awesome, bootstrap-dark and vega from CDNs; without internet the index page stays blank
(its table is built by a script that needs ``$``). ``make_offline(site_dir)`` copies the assets
vendored in ``nightshift/static/datadocs/`` (see its README: versions, sources, licences) into
``<site>/static/vendor/`` and points every CDN URL of every page at that copy, by a path relative
to the page. A page that loads a CDN script or style sheet this module does not know makes it
fail with the list of those URLs, before any file is changed (a GX upgrade that moves its URLs
is then noticed instead of silently leaving blank pages).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

VENDOR_SOURCE = Path(__file__).resolve().parent / "static" / "datadocs"
VENDOR_SUBDIR = ("static", "vendor")    # inside the site

# every CDN URL GX 1.24's templates load -> its file in VENDOR_SOURCE
CDN_ASSETS: dict[str, str] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/dist/jquery.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/dist/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    # 1.19.0 and 1.19.1 filter-control CSS differ only in the version in their banner comment
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/dist/umd/popper.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0/dist/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free-6.6.0/css/all.min.css",
    # the package's own minified build of the same file
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark-1.1.0/dist/css/bootstrap-prefers-dark.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/build/vega-embed.min.js",
}

# the navbar logo comes from GX's bucket (with a tracking query); the site has it in static/images/
GX_IMAGES_URL = re.compile(r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/([\w.-]+)(\?[^\"'\s>]*)?")

_TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE | re.DOTALL)
_ATTR_URL = re.compile(r"""\b(src|href)\s*=\s*(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_SRI = re.compile(r"""\s+(integrity|crossorigin)(\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""", re.IGNORECASE)
_ANY_ASSET_URL = re.compile(r"""https?://[^"'\s<>()]+?\.(?:js|css)(?=[?#"'\s<>()]|$)""", re.IGNORECASE)


class UnknownCdnAssets(RuntimeError):
    """A Data Docs page loads a CDN script or style sheet that is not vendored."""

    def __init__(self, unknown: dict[str, list[str]]):
        self.unknown = unknown
        lines = [f"  {url}  (in {', '.join(pages[:3])}{' ...' if len(pages) > 3 else ''})"
                 for url, pages in sorted(unknown.items())]
        super().__init__(
            "Data Docs pages load CDN assets that are not vendored in nightshift/static/datadocs "
            "(was Great Expectations upgraded?); vendor them and add them to "
            "nightshift.datadocs.CDN_ASSETS:\n" + "\n".join(lines))


def _asset_urls(tag: str) -> list[str]:
    """The http(s) URLs a <script>/<link> tag loads (a <link> only when it is a style sheet or script)."""
    name = tag[1:].split(None, 1)[0].lower().rstrip(">")
    urls = []
    for match in _ATTR_URL.finditer(tag):
        attribute, url = match.group(1).lower(), match.group(3)
        if name == "script" and attribute == "src":
            urls.append(url)
        elif name == "link" and attribute == "href":
            rel = re.search(r"""\brel\s*=\s*["']?([^"'>]*)""", tag, re.IGNORECASE)
            if (rel and any(r in rel.group(1).lower() for r in ("stylesheet", "preload", "modulepreload"))) \
                    or re.search(r"\.(js|css)(\?|#|$)", url, re.IGNORECASE):
                urls.append(url)
    return urls


def _unknown_urls(text: str) -> set[str]:
    unknown = set()
    for tag in _TAG.finditer(text):
        unknown.update(url for url in _asset_urls(tag.group(0)) if url not in CDN_ASSETS)
    unknown.update(url for url in _ANY_ASSET_URL.findall(text) if url not in CDN_ASSETS)
    return unknown


def _rewrite(text: str, page: Path, vendor_dir: Path, images_dir: Path) -> str:
    def local(path: Path) -> str:
        return Path(os.path.relpath(path, page.parent)).as_posix()

    def tag(match: re.Match) -> str:
        original = match.group(0)
        known = [url for url in _asset_urls(original) if url in CDN_ASSETS]
        if not known:
            return original
        rewritten = original
        for url in known:
            rewritten = rewritten.replace(url, local(vendor_dir / CDN_ASSETS[url]))
        # a crossorigin script is refused from file:// pages; the local copy needs no SRI check
        return _SRI.sub("", rewritten)

    text = _TAG.sub(tag, text)
    # any other mention (inline scripts): plain URL replacement, longest first
    for url in sorted(CDN_ASSETS, key=len, reverse=True):
        if url in text:
            text = re.sub(re.escape(url) + r"(?![\w.@/-])", local(vendor_dir / CDN_ASSETS[url]), text)

    def image(match: re.Match) -> str:
        target = images_dir / match.group(1)
        return local(target) if target.is_file() else match.group(0)

    return GX_IMAGES_URL.sub(image, text)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_vendor(vendor_dir: Path) -> int:
    copied = 0
    for source in sorted(VENDOR_SOURCE.rglob("*")):
        if not source.is_file():
            continue
        target = vendor_dir / source.relative_to(VENDOR_SOURCE)
        data = source.read_bytes()
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(target, data)
        copied += 1
    return copied


def make_offline(site_dir: str | os.PathLike) -> dict:
    """Make a Data Docs site load nothing from the internet; idempotent.

    Returns ``{"pages": n, "rewritten": n, "assets_copied": n}``. Raises ``UnknownCdnAssets``
    (listing the URLs) before changing anything if a page loads a CDN asset that is not vendored,
    and ``FileNotFoundError`` if the site does not exist.
    """
    site = Path(site_dir)
    if site.is_file():
        site = site.parent          # accept the index.html path as well
    if not site.is_dir():
        raise FileNotFoundError(f"Data Docs site not found: {site}")
    pages = sorted(p for p in site.rglob("*.html") if p.is_file())
    vendor_dir = site.joinpath(*VENDOR_SUBDIR)
    pages = [p for p in pages if vendor_dir not in p.parents]

    texts = {page: page.read_text(encoding="utf-8") for page in pages}
    unknown: dict[str, list[str]] = {}
    for page, text in texts.items():
        for url in _unknown_urls(text):
            unknown.setdefault(url, []).append(page.relative_to(site).as_posix())
    if unknown:
        raise UnknownCdnAssets(unknown)

    copied = _copy_vendor(vendor_dir)
    rewritten = 0
    for page, text in texts.items():
        new = _rewrite(text, page, vendor_dir, site / "static" / "images")
        if new == text:
            continue
        # GX (another validation's checkpoint) may have rebuilt the page meanwhile: never put an
        # older page back; the rebuilt one is made offline by the run that rebuilt it
        if page.read_text(encoding="utf-8") != text:
            continue
        _write_atomic(page, new.encode("utf-8"))
        rewritten += 1
    return {"pages": len(pages), "rewritten": rewritten, "assets_copied": copied}


def site_dir_from_url(site_url: str) -> Path | None:
    """The local directory of a ``file://.../index.html`` site URL (as ``get_docs_sites_urls`` gives)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(site_url or "")
    if parsed.scheme != "file":
        return None
    path = Path(unquote(parsed.path))
    return path.parent if path.suffix == ".html" else path
