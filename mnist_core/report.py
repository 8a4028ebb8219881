"""The study as a file: self-contained HTML (charts as SVG data URIs), Markdown with PNG charts beside
it, or JSON. Charts are the comparison pages' Altair builders, rendered offline by vl-convert: the
files open with no network.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Sequence

import altair as alt
import pandas as pd

from .i18n import N_, Translator
from .charts import final_accuracy_chart, grid_heatmap, metric_chart, series_order, timing_chart
from .compare import PARAM_TITLES
from .grid import HEATMAP_TITLES, grid_frame, heatmap_frame, lr_batch_note
from .seed_claims import AUTHOR, TITLE
from .study import Section, legend_title, missing_text, seed_setting
from . import study_grid
from .study_grid import GridSection

CHART_WIDTH = 340
TEXT = {
    "title": N_("The seed's study, regenerated"), "question": N_("Question"), "seed": N_("The seed post"),
    "where": N_("“{title}” by {author}, section “{section}” (lines {a}–{b})"), "setting": N_("Its setting"),
    "ours": N_("Our runs"), "observations": N_("What the runs show"),
    "nothing": N_("No run of this section is cached yet."),
    "intro": N_("Six experiments of the blog post, rerun with this lab's engine. Each section quotes the post "
                "(Korean, with our paraphrase), shows our runs and states what they show, computed from the runs."),
    "table": N_("Final results"),
    "line": N_("(line {line})"),
    "grid_intro": N_("A seventh section runs what the post did not: its learning rates crossed with its batch sizes."),
    "heatmaps": N_("Each cell is one run: its final test accuracy (darker is better) and its seconds per epoch (darker "
                   "is slower). ✝: the run diverged. Grey: not trained yet."),
    "concept": N_("Concept: {title}"),
}
TABLE_COLUMNS = {"status": N_("status"), "epochs_run": N_("epochs run"), "test_acc": N_("test accuracy"),
                 "test_loss": N_("test loss"), "train_loss": N_("train loss"), "s_per_epoch": N_("s/epoch"),
                 "steps_per_epoch": N_("steps/epoch")}
KOREAN_FONTS = Path("/usr/share/fonts/truetype/nanum")  # Debian's fonts-nanum; absent: Korean labels need a font
KOREAN_FONT = "NanumGothic"


def text(lang: str) -> Translator:
    """The report's translator (a function of one text, as the chart builders take it)."""
    return Translator(lang)


# -- charts ----------------------------------------------------------------------------------------

def section_charts(section: Section, width: int | None = CHART_WIDTH,
                   lang: str | None = None) -> list[tuple[str, alt.Chart]]:
    """(name, chart) for a section: the comparison pages' charts, plus the chaotic value's seeds.
    `width`: fixed for a file; None for the app, whose columns set it. `lang`: the labels' language
    (the section's unless given: a file written where no Korean font exists gets English labels)."""
    metrics, finals, timing = section.metrics(), section.finals(), section.timing()
    if metrics.empty:
        return []
    _ = text(lang or section.lang)
    title = _(legend_title(section.param))
    series = series_order(finals)
    log = section.preset.base.model == "mlp"  # the seed's normal(0, 1) init starts the MLP's loss in the hundreds
    charts = [("train_loss", metric_chart(metrics, "train_loss", log_scale=log, legend_title=title, series=series,
                                          text=_)),
              ("test_loss", metric_chart(metrics, "test_loss", log_scale=log, legend_title=title, series=series,
                                         text=_)),
              ("test_acc", metric_chart(metrics, "test_acc", legend_title=title, series=series, text=_)),
              ("final_acc", final_accuracy_chart(finals, legend_title=title, text=_))]
    if section.param == "batch_size" or section.preset.base.model == "cnn":
        charts.append(("time", timing_chart(timing, legend_title=title, text=_)))
    repeats = section.repeat_metrics()
    if section.repeats and len(repeats):
        charts.append(("seeds", metric_chart(repeats, "test_acc", legend_title=_("random seed"), text=_)
                       .properties(title=_("Test accuracy at learning rate 0.1, one line per seed"))))
    return [(name, chart.properties(width=width) if width else chart) for name, chart in charts]


def grid_charts(section: GridSection, width: int = CHART_WIDTH, lang: str | None = None) -> list[tuple[str, alt.Chart]]:
    """(name, chart) for the grid section: its two heatmaps, as the Study page draws them, at a fixed width."""
    _ = text(lang or section.lang)
    frame = grid_frame(section.cells, section.results, _.lang)
    rows, columns = _(PARAM_TITLES["lr"]), _(PARAM_TITLES["batch_size"])
    return [(f"heatmap_{metric}", grid_heatmap(heatmap_frame(frame, metric, _.lang), _(HEATMAP_TITLES[metric]), rows,
                                               columns, percent=metric == "test_acc", text=_).properties(width=width))
            for metric in ("test_acc", "s_per_epoch")]


def korean_font() -> bool:
    """Registers a Korean font with vl-convert, once; False where none is installed (then files get English
    chart labels: vl-convert would draw Hangul as empty boxes)."""
    global _font_ready
    if _font_ready is None:
        _font_ready = False
        if (KOREAN_FONTS / f"{KOREAN_FONT}.ttf").is_file():
            try:
                import vl_convert as vlc
                vlc.register_font_directory(str(KOREAN_FONTS))
                _font_ready = True
            except Exception:  # an old vl-convert or an unreadable folder: English labels it is
                _font_ready = False
    return _font_ready


_font_ready: bool | None = None


def chart_language(lang: str) -> str:
    """The language a file's charts can be drawn in on this machine."""
    return lang if lang == "en" or korean_font() else "en"


def render(chart: alt.Chart, fmt: str) -> bytes:
    import vl_convert as vlc
    if korean_font():  # Hangul needs it; Latin text looks the same in it
        chart = chart.configure(font=KOREAN_FONT)
    spec = chart.to_dict()
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec).encode()
    return vlc.vegalite_to_png(spec, scale=1.5)


def results_table(section: Section, lang: str | None = None) -> pd.DataFrame:
    finals, timing = section.finals(), section.timing()
    if finals.empty:
        return finals
    _ = text(lang or section.lang)
    table = finals.merge(timing[["value", "s_per_epoch", "steps_per_epoch"]], on="value", how="left")
    table = table[["value", "status", "epochs", "test_acc", "test_loss", "train_loss", "s_per_epoch", "steps_per_epoch"]]
    # "epochs" is also the epoch experiment's compared value: the run's length gets a name of its own
    table = table.rename(columns={"epochs": "epochs_run"})
    return table.rename(columns={"value": _(legend_title(section.param)),
                                 **{column: _(title) for column, title in TABLE_COLUMNS.items()}})


# -- HTML ------------------------------------------------------------------------------------------

def to_html(sections: Sequence[Section], lang: str = "en", grid: GridSection | None = None) -> str:
    """The study as one HTML file: `sections`, then the learning rate × batch size `grid` if given."""
    t = {k: text(lang)(v) for k, v in TEXT.items()}
    intro = t["intro"] + (f" {t['grid_intro']}" if grid is not None else "")
    body = [f"<h1>{_e(t['title'])}</h1>", f"<p>{_e(intro)}</p>"]
    for s in sections:
        body.append(f"<section id='{s.preset.name}'><h2>{_e(s.title)}</h2>")
        body.append(f"<p><b>{_e(t['question'])}:</b> {_e(s.question)}</p>")
        body.append(f"<p class='scaling'>{_e(s.scaling)}</p>")
        body.append(f"<h3>{_e(t['seed'])}</h3><p class='where'>{_e(_where(s, lang))}</p>")
        body.append(f"<p>{_e(t['setting'])}: {_e(seed_setting(s, lang))}</p><ul>")
        for q in s.seed.quotes:
            english = "" if lang == "ko" else f" — {_e(q.english)}"
            where = text(lang)(TEXT["line"], line=q.line)
            body.append(f"<li><q lang='ko'>{_e(q.korean)}</q> {_e(where)}{english}</li>")
        body.append(f"</ul><h3>{_e(t['ours'])}</h3>")
        if s.missing:
            body.append(f"<p class='missing'>{_e(missing_text(s, lang))}</p>")
        charts = section_charts(s, lang=chart_language(lang))
        if not charts:
            body.append(f"<p>{_e(t['nothing'])}</p>")
        body.append("<div class='charts'>")
        for name, chart in charts:
            svg = base64.b64encode(render(chart, "svg")).decode()
            body.append(f"<img class='chart' alt='{_e(name)}' src='data:image/svg+xml;base64,{svg}'>")
        body.append("</div>")
        table = results_table(s)
        if len(table):
            body.append(f"<h4>{_e(t['table'])}</h4>" + table.to_html(index=False, float_format=lambda x: f"{x:.4g}",
                                                                      border=0, classes="results"))
        body.append(f"<h3>{_e(t['observations'])}</h3><ul class='observations'>")
        body += [f"<li>{_e(o)}</li>" for o in s.observations]
        body.append("</ul></section>")
    if grid is not None:
        body.append(grid_html(grid, lang))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45;padding:0 1em}"
             ".charts{display:flex;flex-wrap:wrap;gap:12px}.chart{max-width:100%}.scaling{color:#555}"
             ".missing{background:#fff3cd;padding:.5em}.where{color:#555;font-size:.9em}"
             "table.results{border-collapse:collapse}table.results td,table.results th{padding:2px 8px;"
             "border-bottom:1px solid #ddd;text-align:right}section{border-top:2px solid #333;margin-top:2em}")
    return (f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'><title>{_e(t['title'])}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")


def grid_html(section: GridSection, lang: str) -> str:
    """The grid section: what the post ran instead, our heatmaps, the concept note ending with the grid's findings,
    and the observations."""
    t = {k: text(lang)(v) for k, v in TEXT.items()}
    body = [f"<section id='{study_grid.NAME}'><h2>{_e(section.title)}</h2>",
            f"<p><b>{_e(t['question'])}:</b> {_e(section.question)}</p>", f"<p class='scaling'>{_e(section.scaling)}</p>",
            f"<h3>{_e(t['seed'])}</h3><p>{_e(study_grid.seed_text(lang))}</p>", f"<h3>{_e(t['ours'])}</h3>"]
    if section.missing:
        body.append(f"<p class='missing'>{_e(study_grid.missing_text(section, lang))}</p>")
    body.append("<div class='charts'>")
    for name, chart in grid_charts(section, lang=chart_language(lang)):
        svg = base64.b64encode(render(chart, "svg")).decode()
        body.append(f"<img class='chart' alt='{_e(name)}' src='data:image/svg+xml;base64,{svg}'>")
    note_title, note = lr_batch_note(grid_frame(section.cells, section.results, lang), lang)
    body.append(f"</div><p class='scaling'>{_e(t['heatmaps'])}</p>")
    body.append(f"<h3>{_e(text(lang)(TEXT['concept'], title=note_title))}</h3><p class='note'>{_e(note)}</p>")
    body.append(f"<h3>{_e(t['observations'])}</h3><ul class='observations'>")
    body += [f"<li>{_e(o)}</li>" for o in section.observations]
    return "".join(body) + "</ul></section>"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _where(s: Section, lang: str) -> str:
    a, b = s.seed.lines
    return text(lang)(TEXT["where"], a=a, b=b, title=TITLE, author=AUTHOR, section=s.seed.section)


# -- Markdown --------------------------------------------------------------------------------------

def write_markdown(sections: Sequence[Section], path: Path, lang: str = "en",
                   grid: GridSection | None = None) -> list[Path]:
    """Writes `path` (`sections`, then the `grid` if given) and its PNG charts into `<stem>_files/` beside it;
    returns the PNGs written."""
    t = {k: text(lang)(v) for k, v in TEXT.items()}
    folder = path.with_name(f"{path.stem}_files")
    folder.mkdir(parents=True, exist_ok=True)
    intro = t["intro"] + (f" {t['grid_intro']}" if grid is not None else "")
    lines, pngs = [f"# {t['title']}", "", intro, ""], []
    for s in sections:
        lines += [f"## {s.title}", "", f"**{t['question']}:** {s.question}", "", f"_{s.scaling}_", "",
                  f"### {t['seed']}", "", _where(s, lang), "",
                  f"{t['setting']}: {seed_setting(s, lang)}", ""]
        lines += [f"- “{q.korean}” {text(lang)(TEXT['line'], line=q.line)}"
                  + ("" if lang == "ko" else f" — {q.english}") for q in s.seed.quotes]
        lines += ["", f"### {t['ours']}", ""]
        if s.missing:
            lines += [f"> {missing_text(s, lang)}", ""]
        for name, chart in section_charts(s, lang=chart_language(lang)):
            png = folder / f"{s.preset.name}-{name}.png"
            png.write_bytes(render(chart, "png"))
            pngs.append(png)
            lines.append(f"![{name}]({folder.name}/{png.name})")
        table = results_table(s)
        if len(table):
            lines += ["", f"#### {t['table']}", "", _markdown_table(table)]
        lines += ["", f"### {t['observations']}", ""] + [f"- {o}" for o in s.observations] + [""]
    if grid is not None:
        lines += grid_markdown(grid, folder, lang, pngs)
    path.write_text("\n".join(lines), encoding="utf-8")
    return pngs


def grid_markdown(section: GridSection, folder: Path, lang: str, pngs: list[Path]) -> list[str]:
    """The grid section's Markdown lines; its heatmaps go into `folder` as PNGs, appended to `pngs`."""
    t = {k: text(lang)(v) for k, v in TEXT.items()}
    lines = [f"## {section.title}", "", f"**{t['question']}:** {section.question}", "", f"_{section.scaling}_", "",
             f"### {t['seed']}", "", study_grid.seed_text(lang), "", f"### {t['ours']}", ""]
    if section.missing:
        lines += [f"> {study_grid.missing_text(section, lang)}", ""]
    for name, chart in grid_charts(section, lang=chart_language(lang)):
        png = folder / f"{study_grid.NAME}-{name}.png"
        png.write_bytes(render(chart, "png"))
        pngs.append(png)
        lines.append(f"![{name}]({folder.name}/{png.name})")
    note_title, note = lr_batch_note(grid_frame(section.cells, section.results, lang), lang)
    lines += ["", f"_{t['heatmaps']}_", "", f"### {text(lang)(TEXT['concept'], title=note_title)}", "", note, "",
              f"### {t['observations']}", ""]
    return lines + [f"- {o}" for o in section.observations] + [""]


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    rows = [" | ".join(map(str, frame.columns)), " | ".join("---" for _ in frame.columns)]
    rows += [" | ".join(cell(v) for v in row) for row in frame.itertuples(index=False)]
    return "\n".join(f"| {r} |" for r in rows)


def to_json(sections: Sequence[Section], grid: GridSection | None = None) -> list[dict[str, Any]]:
    """One object per section, then the grid's (GridSection.to_json says how its keys differ)."""
    return [s.to_json() for s in sections] + ([grid.to_json()] if grid is not None else [])
