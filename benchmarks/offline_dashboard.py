"""Makes the dashboard of `asv publish` open with no network, from file:// as well.

    cd benchmarks && asv publish && python offline_dashboard.py      # rewrites html/

asv 0.6's index.html loads jQuery, flot (and its time, selection, categories and
orderBars plugins), stupidtable, blueimp-md5 and Bootstrap 3 from CDNs, and reads its
data (index.json, graphs/*.json, ...) with XMLHttpRequest, which browsers refuse for
file:// pages. This script, run after `asv publish`:

1. takes those libraries from a package on PyPI that ships them: the sdist of asv 0.5.1,
   whose asv/www/vendor/ holds the same releases (jQuery 3.3.1, flot 0.8.3 and the same
   plugins, stupidtable, md5, Bootstrap 3.1.0; each file keeps its MIT licence header;
   asv's BSD licence is copied beside them as vendor/asv-LICENSE.rst). It is fetched
   once with `pip download --no-deps --no-binary :all: asv==0.5.1` into a cache
   (--cache, default ~/.cache/bnfast/asv-www-vendor), or read from --asv-sdist FILE;
   nothing is stored in this repository;
2. copies them to html/vendor/ and points the page's <script>/<link> tags at them (the
   CDNs' integrity attributes dropped); a CDN tag it does not know is an error;
3. writes html/offline-data.js: every JSON file of html/ as text, and a wrapper of
   jQuery.ajax (this repository's code) that answers the page's requests for them
   from there; other requests go to the network as before.

Exit codes: 0 done; 1 the libraries could not be fetched, or the page has an external
tag this script does not know (a newer asv: update CDN_FILES); 2 usage errors.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ASV_VENDOR_RELEASE = "asv==0.5.1"

#: What each CDN file of asv 0.6's index.html is, among asv 0.5.1's www/vendor/ files:
#: (a regular expression on the CDN address, the vendored file).
CDN_FILES = [
    (r"/jquery-3\.3\.1\.min\.js$", "jquery-3.3.1.min.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.min\.js$", "jquery.flot-0.8.3.min.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.time\.min\.js$", "jquery.flot-0.8.3.time.min.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.selection\.min\.js$",
     "jquery.flot-0.8.3.selection.min.js"),
    (r"/flot/0\.8\.3/jquery\.flot\.categories\.min\.js$",
     "jquery.flot-0.8.3.categories.min.js"),
    (r"/jquery\.flot\.orderBars\.js$", "jquery.flot.orderBars.js"),
    (r"/stupidtable(\.min)?\.js$", "stupidtable.js"),
    (r"/md5(\.min)?\.js$", "md5.js"),
    (r"/bootstrap@3[^/]*/dist/js/bootstrap\.min\.js$", "bootstrap-3.1.0.min.js"),
    (r"/bootstrap@3[^/]*/dist/css/bootstrap\.min\.css$", "bootstrap-3.1.0.min.css"),
]
VENDOR_FILES = sorted({name for _, name in CDN_FILES})
DEFAULT_CACHE = Path.home() / ".cache" / "bnfast" / "asv-www-vendor"

# The tags that load a resource: <script src=...> and <link href=...>.
_TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
_URL = re.compile(r"""\b(src|href)\s*=\s*(["'])(https?:)?//([^"']+)\2""", re.IGNORECASE)
_SRI = re.compile(r"""\s+(integrity|crossorigin|referrerpolicy)(\s*=\s*(["'])[^"']*\3)?""",
                  re.IGNORECASE)

# Answers the page's $.ajax calls for the published JSON files from ASV_OFFLINE_DATA
# (file name -> JSON text), as a resolved jQuery promise, asynchronously like a request.
_SHIM = """
(function ($) {
  "use strict";
  var data = window.ASV_OFFLINE_DATA || {};
  var original = $.ajax;
  function answer(value) {
    var done = $.Deferred();
    setTimeout(function () { done.resolve(value, "success", null); }, 0);
    return done.promise();
  }
  $.ajax = function (url, settings) {
    if (typeof url === "object") { settings = url; url = settings.url; }
    settings = settings || {};
    var key = String(url || settings.url || "").split("?")[0].replace(/^\\.\\//, "");
    try { key = decodeURIComponent(key); } catch (e) { /* not encoded */ }
    if (Object.prototype.hasOwnProperty.call(data, key)) {
      return answer(JSON.parse(data[key]));
    }
    if (key === "swallow.ico") { return answer(""); }
    return original.apply(this, arguments);
  };
})(jQuery);
"""


def vendor_files(cache=DEFAULT_CACHE, sdist=None):
    """The directory holding VENDOR_FILES (and asv-LICENSE.rst): ``cache`` when it is
    complete, else filled from ``sdist`` (asv-0.5.1.tar.gz) or from a fresh
    `pip download` of it; RuntimeError when that fails."""
    cache = Path(cache)
    if sdist is None and all((cache / name).is_file() for name in VENDOR_FILES):
        return cache
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--no-binary", ":all:", ASV_VENDOR_RELEASE, "-d", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = sorted(Path(tmp).glob("asv-*.tar.gz"))
            if done.returncode != 0 or not found:
                raise RuntimeError(f"`{' '.join(cmd[2:])}` failed (no network?):\n"
                                   f"{done.stderr.strip()[-2000:]}\nfetch the file "
                                   "elsewhere and pass --asv-sdist FILE")
            sdist = found[0]
        cache.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist, "r:gz") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers()
                       if m.isfile() and "/asv/www/vendor/" in m.name}
            licence = [m for m in archive.getmembers()
                       if m.isfile() and m.name.count("/") == 1
                       and Path(m.name).name == "LICENSE.rst"]
            missing = [n for n in VENDOR_FILES if n not in members]
            if missing or not licence:
                raise RuntimeError(f"{sdist} lacks {', '.join(missing) or 'LICENSE.rst'}"
                                   f" (is it {ASV_VENDOR_RELEASE}'s sdist?)")
            for name in VENDOR_FILES:
                (cache / name).write_bytes(archive.extractfile(members[name]).read())
            (cache / "asv-LICENSE.rst").write_bytes(archive.extractfile(licence[0]).read())
    return cache


def rewrite_page(text):
    """index.html with every CDN tag pointing at vendor/ and the data shim loaded right
    after jQuery; ValueError naming a CDN address it does not know."""
    def tag(match):
        whole = match.group(0)
        url = _URL.search(whole)
        if url is None:
            return whole
        address = "//" + url.group(4)
        for pattern, name in CDN_FILES:
            if re.search(pattern, address):
                local = _URL.sub(lambda m: f'{m.group(1)}="vendor/{name}"', whole, count=1)
                local = _SRI.sub("", local)
                if name.startswith("jquery-"):
                    # the script element closes right after this tag
                    return local + '</script>\n    <script src="offline-data.js">'
                return local
        raise ValueError(f"an external resource this script does not know: {address} "
                         "(a newer asv? extend CDN_FILES)")
    return _TAG.sub(tag, text)


def embed_data(html_dir):
    """html/offline-data.js: every JSON file under html_dir, then the ajax shim."""
    html_dir = Path(html_dir)
    data = {}
    for path in sorted(html_dir.rglob("*.json")):
        key = path.relative_to(html_dir).as_posix()
        data[key] = path.read_text(encoding="utf-8")
    script = ("window.ASV_OFFLINE_DATA = " + json.dumps(data, separators=(",", ":"))
              + ";\n" + _SHIM)
    (html_dir / "offline-data.js").write_text(script, encoding="utf-8")
    return len(data)


def make_offline(html_dir, cache=DEFAULT_CACHE, sdist=None):
    """Rewrites the published dashboard in html_dir (module docstring); returns the
    number of JSON files embedded."""
    html_dir = Path(html_dir)
    index = html_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"{index} does not exist: run `asv publish` first")
    text = index.read_text(encoding="utf-8")
    if "offline-data.js" in text:           # already rewritten: only refresh the data
        return embed_data(html_dir)
    page = rewrite_page(text)
    source = vendor_files(cache, sdist)
    vendor = html_dir / "vendor"
    vendor.mkdir(exist_ok=True)
    for name in VENDOR_FILES + ["asv-LICENSE.rst"]:
        shutil.copyfile(source / name, vendor / name)
    count = embed_data(html_dir)
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Make asv's published dashboard work offline and from file:// "
                    "(run after `asv publish`).")
    parser.add_argument("html", nargs="?", default=str(Path(__file__).parent / "html"),
                        help="the directory asv publish wrote (default: benchmarks/html)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), metavar="DIR",
                        help="where the libraries are kept between runs (default: "
                             "%(default)s)")
    parser.add_argument("--asv-sdist", metavar="FILE",
                        help=f"{ASV_VENDOR_RELEASE}'s sdist (asv-0.5.1.tar.gz) already "
                             "downloaded, instead of fetching it")
    args = parser.parse_args(argv)
    try:
        count = make_offline(args.html, args.cache, args.asv_sdist)
    except FileNotFoundError as exc:
        print(f"offline_dashboard: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"offline_dashboard: {exc}", file=sys.stderr)
        return 1
    print(f"offline_dashboard: {args.html}/index.html loads vendor/ and "
          f"offline-data.js ({count} JSON files embedded); open it from file://")
    return 0


if __name__ == "__main__":
    sys.exit(main())
