#!/usr/bin/env bash
# Re-create book/_vendor/vendor/: the JavaScript and fonts the built book needs to render math and
# widgets with no network (by default Jupyter Book loads them from CDNs).
#
# For maintainers only. The vendor tree is committed; building the book needs neither npm nor the
# network. Run this after changing a version below, then rebuild with `jupyter-book build . --all`
# (Sphinx does not notice changed extra files) and run the browser test (tests/test_book_browser.py).
#
#   tools/vendor_book_assets.sh           re-create book/_vendor/vendor from the npm registry
#   tools/vendor_book_assets.sh --check   re-create it in a scratch folder and compare with the tree
#
# What is kept (everything else in the packages is dropped to keep the tree small):
#   require.js                   requirejs (the AMD loader html-manager's embed-amd.js needs)
#   html-manager/embed-amd.js    @jupyter-widgets/html-manager: renders saved widget state; the
#                                built-in @jupyter-widgets/controls and /output are bundled in it
#   html-manager/*.woff2,*.woff  the Font Awesome fonts its bundled CSS references; browsers take the
#                                first format they support, woff2 (woff as fallback), so the IE-era
#                                .eot/.ttf/.svg variants are never requested and are left out
#   mathjax/tex-mml-chtml.js     MathJax 3 combined component (TeX + MathML input, CommonHTML output,
#                                menu, assistive MathML); the one Sphinx uses by default
#   mathjax/input/tex/extensions TeX packages that the autoload extension loads on first use
#                                (\boldsymbol, \color, \cancel, mhchem, ...)
#   mathjax/output/chtml/fonts/woff-v2   the CommonHTML fonts
#   Not kept: MathJax's a11y explorer and speech-rule engine (a11y/, sre/: about 4 MB), which are only
#   fetched when a reader switches on the explorer in MathJax's context menu.
#   LICENSE / VERSIONS.txt / SHA256SUMS  provenance; the checksums make the tree reproducible.
#   widgets-setup.js             ours, not from npm (kept as it is): points require.js at the vendored
#                                html-manager (so its fonts load) and gives MathJax 3 the MathJax 2
#                                Hub.Queue call that html-manager uses to typeset widget labels.
#
# The packed tarballs of a published npm version never change, so the tree is deterministic.
set -euo pipefail

HTML_MANAGER_VERSION=1.0.6   # the version myst-nb 1.x loads from its CDN by default
REQUIREJS_VERSION=2.3.4      # idem
MATHJAX_VERSION=3.2.2        # latest MathJax 3 (Sphinx 7 targets MathJax 3)

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/book/_vendor/vendor"
CHECK=0
if [ "${1:-}" = "--check" ]; then CHECK=1; fi

command -v npm >/dev/null || { echo "npm is needed (apt-get install -y npm)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

npm pack --silent \
    "@jupyter-widgets/html-manager@$HTML_MANAGER_VERSION" \
    "requirejs@$REQUIREJS_VERSION" \
    "mathjax@$MATHJAX_VERSION" >/dev/null
for pkg in "jupyter-widgets-html-manager-$HTML_MANAGER_VERSION" "requirejs-$REQUIREJS_VERSION" \
           "mathjax-$MATHJAX_VERSION"; do
    mkdir "$pkg"
    tar -xzf "$pkg.tgz" -C "$pkg"
done
HM="jupyter-widgets-html-manager-$HTML_MANAGER_VERSION/package"
RJ="requirejs-$REQUIREJS_VERSION/package"
MJ="mathjax-$MATHJAX_VERSION/package"

OUT="$WORK/vendor"
mkdir -p "$OUT/html-manager" "$OUT/mathjax/input/tex" "$OUT/mathjax/output/chtml/fonts"

# requirejs (MIT; its licence is in the file header)
cp "$RJ/require.js" "$OUT/require.js"

# html-manager: the AMD bundle, the font files its CSS references (woff2/woff), licences
cp "$HM/dist/embed-amd.js" "$OUT/html-manager/"
cp "$HM/LICENSE" "$OUT/html-manager/LICENSE"
cp "$HM/dist/embed.js.LICENSE.txt" "$OUT/html-manager/THIRD-PARTY-LICENSES.txt"
fonts=$(grep -oE '[0-9a-f]{20}\.(woff2|woff)' "$HM/dist/embed-amd.js" | sort -u)
[ -n "$fonts" ] || { echo "no font files referenced by embed-amd.js?" >&2; exit 1; }
for f in $fonts; do cp "$HM/dist/$f" "$OUT/html-manager/"; done

# MathJax: the combined component, the TeX extensions it autoloads, the CHTML woff fonts, licence
cp "$MJ/es5/tex-mml-chtml.js" "$OUT/mathjax/"
cp -r "$MJ/es5/input/tex/extensions" "$OUT/mathjax/input/tex/"
rm -f "$OUT/mathjax/input/tex/extensions/all-packages.js"   # never autoloaded; 212 kB
cp -r "$MJ/es5/output/chtml/fonts/woff-v2" "$OUT/mathjax/output/chtml/fonts/"
cp "$MJ/LICENSE" "$OUT/mathjax/LICENSE"

cat > "$OUT/VERSIONS.txt" <<EOF
Vendored for offline rendering of the built book; re-create with tools/vendor_book_assets.sh.
@jupyter-widgets/html-manager $HTML_MANAGER_VERSION  (BSD-3-Clause; bundled third-party licences in html-manager/THIRD-PARTY-LICENSES.txt)
requirejs $REQUIREJS_VERSION  (MIT)
mathjax $MATHJAX_VERSION  (Apache-2.0)
EOF

# Our own glue file is not from npm: carry it over unchanged.
SETUP="$ROOT/book/_vendor/vendor/widgets-setup.js"
[ -f "$SETUP" ] || { echo "missing $SETUP (it is committed; restore it with git)" >&2; exit 1; }
cp "$SETUP" "$OUT/widgets-setup.js"

# Normalise modes and record checksums (sorted, so the listing is deterministic).
find "$OUT" -type d -exec chmod 755 {} +
find "$OUT" -type f -exec chmod 644 {} +
(cd "$OUT" && LC_ALL=C find . -type f ! -name SHA256SUMS ! -name widgets-setup.js | LC_ALL=C sort | sed 's|^\./||' \
    | xargs sha256sum > SHA256SUMS)

if [ "$CHECK" = 1 ]; then
    if diff -r "$OUT" "$DEST" >/dev/null; then
        echo "book/_vendor/vendor is up to date"
    else
        diff -rq "$OUT" "$DEST" || true
        echo "book/_vendor/vendor differs from what npm gives; re-run tools/vendor_book_assets.sh" >&2
        exit 1
    fi
else
    rm -rf "$DEST"
    mkdir -p "$(dirname "$DEST")"
    cp -r "$OUT" "$DEST"
    echo "wrote $DEST ($(du -sh "$DEST" | cut -f1), $(find "$DEST" -type f | wc -l) files)"
fi
