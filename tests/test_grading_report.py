"""``tfmcourse report``: the class page (score histogram, test pass rates, common mistakes, who needs a look),
its escaping of student-controlled names, and (marked ``book``) the page opened in headless Chromium,
offline, with every figure loaded."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_grading_export import MASK, NO_SCALE, class_records, record, write_class

from tfmcourse.cli import main as tfm_main
from tfmcourse.grading import report
from tfmcourse.viz.style import read_figure_record

CHROMIUM = os.environ.get("TFMCOURSE_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("TFMCOURSE_REQUIRE_BROWSER", "") not in ("", "0")
IMG = "<img src=x onerror=alert(1)>"  # a student's name that would be markup


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("class")
    results = write_class(root / "results_ch03", [*class_records(), record(
        IMG, f"/srv/class/{IMG}/ch03_qkv.ipynb", status="rejected", rejected="the notebook is 25.0 MiB; notebooks "
        "above 20 MiB are refused (clear the outputs and resubmit); it scores 0")])
    assert tfm_main(["report", str(results), "--out", str(root / "report")]) == 0
    return root / "report" / "index.html"


def test_summary_counts_pass_rates_and_mistakes():
    s = report.class_summary(class_records())
    assert (s["n"], len(s["graded"]), len(s["rejected"]), len(s["errors"])) == (7, 5, 1, 1)
    rates = s["pass_rates"]
    assert list(rates) == ["test_causal_mask_square", "test_sdpa_matches_pytorch",
                           "test_sdpa_default_scale_is_one_over_sqrt_dk", "test_sdpa_boolean_mask"]  # suite order
    assert rates["test_causal_mask_square"] == 1.0
    assert rates["test_sdpa_default_scale_is_one_over_sqrt_dk"] == pytest.approx(3 / 5)
    assert rates["test_sdpa_boolean_mask"] == pytest.approx(3 / 5)
    # each student's most likely mistake: scale for two, mask for two (Zoë's first is the mask)
    assert sorted(s["mistakes"]) == sorted([(("scaled_dot_product_attention", NO_SCALE["mistake"]), 2),
                                            (("scaled_dot_product_attention", MASK["mistake"]), 2)])
    # graded and rejected are grades (the rejection a 0); the grader error is not
    assert s["median"] == pytest.approx(100 * (5 / 7 + 6 / 7) / 2)


def test_page_has_the_figures_and_escapes_names(page):
    text = page.read_text()
    folder = page.parent
    for name in report.FIGURES.values():
        data = (folder / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and f'src="{name}"' in text
        assert read_figure_record(data)["min_font_pt"] >= 10  # the book's figure style
    assert "<script" not in text and "<img src=x" not in text and "onerror=alert(1)&gt;" in text  # names stay text
    assert text.count("&lt;img src=x onerror=alert(1)&gt;") == 2  # the rejected student and their notebook path
    assert "+1-2" in text and "symbolic link" in text and "25.0 MiB" in text  # the rejections, with their reasons
    assert "@SUM(A1)\\u000aforged,row" in text and "no answer within 300 s" in text  # the grader error
    assert "http://" not in text and "https://" not in text  # nothing to fetch
    assert os.stat(page).st_mode & 0o077 == 0  # names and grades: private


def test_class_without_mistakes_or_grades(tmp_path):
    results = [r for r in class_records() if r["status"] != "graded"]
    page = report.write_report(write_class(tmp_path / "r", results), tmp_path / "out")
    text = page.read_text()
    assert "No graded submission yet" in text and "named no known mistake" in text
    assert (tmp_path / "out" / report.FIGURES["histogram"]).is_file()
    assert not (tmp_path / "out" / report.FIGURES["pass_rates"]).exists()


def test_usage_errors(tmp_path, capsys):
    assert report.main([str(tmp_path / "none")]) == 2 and "not a folder" in capsys.readouterr().err
    results = write_class(tmp_path / "r")
    (tmp_path / "file").write_text("")
    assert report.main([str(results), "--out", str(tmp_path / "file")]) == 2 and "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        tfm_main(["report", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--out" in out and "``" not in out and ":mod:" not in out


@pytest.mark.book
def test_report_opens_in_headless_chromium_with_every_figure(page):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        (pytest.fail if REQUIRE else pytest.skip)("the playwright package is missing: run tools/install_browser.sh")
    if not Path(CHROMIUM).exists():
        (pytest.fail if REQUIRE else pytest.skip)(f"no Chromium at {CHROMIUM}: run tools/install_browser.sh")
    blocked, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1024, "height": 900}, service_workers="block")
            view = context.new_page()

            def route(r):
                if r.request.url.startswith("file:"):
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort("blockedbyclient")
            view.route("**/*", route)
            view.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            view.on("pageerror", lambda e: errors.append(str(e)))
            view.goto(page.as_uri(), wait_until="load")
            images = view.evaluate("""() => Array.from(document.images).map(i => (
                {src: i.getAttribute('src'), complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                 shown: i.getBoundingClientRect().width, alt: i.alt}))""")
            overflow = view.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            heading = view.inner_text("h1")
            cells = view.eval_on_selector_all("td", "els => els.map(e => e.textContent)")
        finally:
            browser.close()
    assert sorted(i["src"] for i in images) == sorted(report.FIGURES.values())
    for i in images:
        assert i["complete"] and i["w"] > 0 and i["h"] > 0 and i["shown"] > 100 and i["alt"], i
    assert blocked == [] and errors == [] and overflow <= 0
    assert heading == "ch03 Queries, keys, values: class report"
    assert "+1-2" in cells and "@SUM(A1)\\u000aforged,row" in cells and IMG in cells  # names shown as text
