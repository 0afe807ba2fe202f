"""tfmcourse report RESULTS_DIR [--out DIR]

Draws a chapter's class from the per-student result files of tfmcourse grade: one HTML page with PNG
figures beside it (no network needed to open it), readable in a minute:

  the score histogram      percent of full marks, graded and rejected submissions stacked;
  each test's pass rate    in suite order, tests most students fail in a warm colour;
  the common mistakes      the known mistakes the diagnosis named most often (each student's most
                           likely one), with counts;
  who needs a look         students whose submission was rejected or hit a grader error, and why.
"""
from __future__ import annotations

import argparse
import html
import os
import statistics
import sys
import textwrap
from collections import Counter
from pathlib import Path

from . import interfaces
from .export import load_class
from .gradebook import display_name, write_text_atomic

__all__ = ["class_summary", "draw_figures", "report_html", "write_report", "main"]

FIGURES = {"histogram": "score_histogram.png", "pass_rates": "test_pass_rates.png", "mistakes": "common_mistakes.png"}
WARM, COOL, GREY = "#d55e00", "#0072b2", "#999999"  # colour-blind safe (Okabe-Ito)


def _percent(r: dict) -> float:
    return 100.0 * float(r["score"]) / float(r["max_score"]) if r.get("max_score") else 0.0


def class_summary(results: list[dict]) -> dict:
    """Counts, percents, each test's pass rate (among graded submissions) and the mistakes named most."""
    graded = [r for r in results if r["status"] == "graded"]
    rejected = [r for r in results if r["status"] == "rejected"]
    errors = [r for r in results if r["status"] not in ("graded", "rejected")]
    order: dict[str, str] = {}  # test id -> title, in suite order
    for r in graded:
        for t in r["tests"]:
            order.setdefault(t["id"], t.get("title", ""))
    passed = Counter(t["id"] for r in graded for t in r["tests"] if t["outcome"] in ("passed", "skipped"))
    rates = {tid: passed[tid] / len(graded) for tid in order}
    mistakes: Counter = Counter()
    for r in graded:
        if r.get("diagnosis"):
            d = r["diagnosis"][0]
            mistakes[(", ".join(d.get("names", [])), d.get("mistake", ""))] += 1
    scores = [_percent(r) for r in graded + rejected]  # a rejection is a real 0 in the gradebook
    return {"n": len(results), "graded": graded, "rejected": rejected, "errors": errors, "titles": order,
            "pass_rates": rates, "mistakes": mistakes.most_common(),
            "max_score": max((float(r["max_score"]) for r in results), default=0.0),
            "median": statistics.median(scores) if scores else None,
            "mean": statistics.fmean(scores) if scores else None}


def _histogram(s: dict):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    bins = list(range(0, 101, 10))
    data = [[_percent(r) for r in s["graded"]], [_percent(r) for r in s["rejected"]]]
    ax.hist(data, bins=bins, stacked=True, color=[COOL, WARM], edgecolor="white",
            label=[f"graded ({len(data[0])})", f"rejected ({len(data[1])})"])
    if s["median"] is not None:
        ax.axvline(s["median"], color="black", linestyle="--", linewidth=1.2, label=f"median {s['median']:.0f} %")
    ax.set(xlim=(0, 100), xlabel="score (% of full marks)", ylabel="students")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)  # above: bars can be anywhere
    return fig


def _pass_rates(s: dict):
    from matplotlib.figure import Figure

    ids = list(s["pass_rates"])
    fig = Figure(figsize=(7.2, 0.3 * len(ids) + 1.1))
    ax = fig.add_subplot()
    rates = [100 * s["pass_rates"][t] for t in ids]
    y = range(len(ids))
    ax.barh(y, rates, color=[WARM if r < 50 else COOL for r in rates], height=0.7)
    for yi, r in zip(y, rates):  # the rate at the bar's end: inside it when the bar is long
        inside = r > 85
        ax.text(r - 1 if inside else r + 1, yi, f"{r:.0f} %", va="center", ha="right" if inside else "left",
                color="white" if inside else "black", fontsize=10)
    ax.set_yticks(list(y), [t.removeprefix("test_") for t in ids])
    ax.invert_yaxis()  # suite order, top to bottom
    ax.set(xlim=(0, 100), xlabel=f"passed (% of {len(s['graded'])} graded submissions)", title="Pass rate of each test")
    return fig


def _mistakes(s: dict, most: int = 10):
    from matplotlib.figure import Figure

    top = s["mistakes"][:most]
    fig = Figure(figsize=(7.2, 0.55 * len(top) + 1.1))
    ax = fig.add_subplot()
    labels = ["\n".join(textwrap.wrap(f"{names}: {text}" if names else text, 48)) for (names, text), _ in top]
    counts = [c for _, c in top]
    ax.barh(range(len(top)), counts, color=WARM, height=0.6)
    for yi, c in enumerate(counts):
        ax.text(c, yi, f" {c}", va="center", fontsize=10)
    ax.set_xlim(0, max(counts) * 1.12)
    ax.set_yticks(list(range(len(top))), labels)
    ax.invert_yaxis()
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="students whose most likely mistake it is", title="Most common known mistakes")
    return fig


def draw_figures(s: dict, out_dir: Path) -> dict[str, tuple[str, float]]:
    """Write the PNGs into ``out_dir``; returns ``{figure: (file name, width in inches)}`` of those drawn."""
    from tfmcourse.viz.style import book_style, figure_png

    drawn = {}
    makers = {"histogram": _histogram, "pass_rates": _pass_rates if s["pass_rates"] else None,
              "mistakes": _mistakes if s["mistakes"] else None}
    with book_style():
        for key, make in makers.items():
            if make is None:
                continue
            fig = make(s)
            fig.tight_layout()
            fd = os.open(out_dir / FIGURES[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private, like the page
            with os.fdopen(fd, "wb") as f:
                f.write(figure_png(fig))
            drawn[key] = (FIGURES[key], float(fig.get_figwidth()))
    return drawn


def _esc(text: object) -> str:
    """Student-controlled text in HTML: one line (no hidden controls), escaped."""
    return html.escape(display_name(text))


def _img(drawn: dict, key: str, alt: str) -> str:
    name, width_in = drawn[key]
    return f'<img src="{name}" alt="{html.escape(alt)}" width="{round(width_in * 96)}">'


def report_html(chapter: str, results: list[dict], s: dict, drawn: dict, source: str) -> str:
    """The page: summary line, the three figures (or why one is missing) and the students to look at."""
    ch = interfaces.get_chapter(chapter)
    title = f"{ch.id} {ch.title}: class report"
    summary = (f"{s['n']} student(s): {len(s['graded'])} graded, {len(s['rejected'])} rejected, "
               f"{len(s['errors'])} grader error(s).")
    if s["median"] is not None:
        summary += f" Median {s['median']:.0f} %, mean {s['mean']:.0f} % of {s['max_score']:g} points."
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(summary)}</p>",
             "<h2>Scores</h2>", _img(drawn, "histogram", "Histogram of the students' scores in percent")]
    parts.append("<h2>Pass rate of each test</h2>")
    parts.append(_img(drawn, "pass_rates", "Bar chart: the share of graded submissions that passed each test")
                 if "pass_rates" in drawn else "<p>No graded submission yet.</p>")
    parts.append("<h2>Most common known mistakes</h2>")
    parts.append(_img(drawn, "mistakes", "Bar chart: how many students the diagnosis matched to each known mistake")
                 if "mistakes" in drawn else "<p>The diagnosis named no known mistake in this class.</p>")
    look = s["rejected"] + s["errors"]
    parts.append(f"<h2>Rejected or not graded ({len(look)})</h2>")
    if look:
        rows = []
        for r in look:
            why = r.get("rejected") or next((p for p in reversed(r.get("problems", [])) if "grader error" in p), "") \
                or "; ".join(r.get("problems", [])[-1:])
            status = "rejected" if r["status"] == "rejected" else "grader error (rerun tfmcourse grade)"
            rows.append(f"<tr><td>{_esc(r['student'])}</td><td>{status}</td><td>{_esc(why[:300])}</td>"
                        f"<td><code>{_esc(r.get('notebook', ''))}</code></td></tr>")
        parts.append("<table><thead><tr><th>student</th><th>status</th><th>why</th><th>notebook</th></tr></thead>"
                     f"<tbody>{''.join(rows)}</tbody></table>")
    else:
        parts.append("<p>None: every submission was graded.</p>")
    parts.append(f"<p class=\"source\">From {_esc(source)}.</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
             "img{max-width:100%;height:auto;display:block}table{border-collapse:collapse;width:100%}"
             "th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}"
             "code{word-break:break-all}.source{color:#666;font-size:.9em}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{style}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_report(results_dir: str | Path, out_dir: str | Path, chapter: str | None = None,
                 gradebook: str | Path | None = None) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir``; returns the page's path."""
    chapter, results = load_class(results_dir, chapter, gradebook)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = class_summary(results)
    drawn = draw_figures(s, out)
    page = out / "index.html"
    write_text_atomic(page, report_html(chapter, results, s, drawn, str(Path(results_dir).resolve())))
    return page


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfmcourse report", description=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", metavar="RESULTS_DIR", help="the per-student result folder of tfmcourse grade")
    p.add_argument("--out", "-o", metavar="DIR", help="folder for index.html and its figures (default ./report_chNN)")
    p.add_argument("--chapter", help="chNN (default: the chapter of the results in the folder)")
    p.add_argument("--gradebook", metavar="CSV", help="only the students listed in this gradebook of tfmcourse grade")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        chapter, _ = load_class(a.results, a.chapter, a.gradebook)
        out = Path(a.out or f"report_{chapter}")
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; give a folder")
        page = write_report(a.results, out, chapter, a.gradebook)
    except (ValueError, KeyError) as e:
        print(f"tfmcourse report: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"tfmcourse report: cannot write the report: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"report: {page.resolve()} (open it in a browser; the figures are beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
