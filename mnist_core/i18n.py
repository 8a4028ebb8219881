"""Korean and English: gettext catalogs read with Babel, and errors that carry their message untranslated.

English is the source language: every text a student sees is written in English in the code, wrapped
in `_()` (or marked with `N_()` where it is only stored, e.g. in a table or an error), and its Korean
lives in `mnist_core/locales/ko/LC_MESSAGES/messages.po`. Nothing is translated by a machine at run
time, and no sentence is glued together from fragments: placeholders are named (`{lr}`), so a
translation may move them.

The .po file is read with Babel and compiled in memory when first used, so there is no build step and
no binary .mo file in git. After changing texts, `python -m mnist_core.i18n update` extracts them from
the code and merges them into the catalog (new ones appear untranslated; tests/test_i18n.py fails until
each has its Korean, and fails on a Korean entry that the code no longer uses).

The core never imports Streamlit: errors keep their template and parameters (`LabError`), and the
page that shows one translates it with `translate(error, lang)`.
"""
from __future__ import annotations

import gettext as _gettext
import io
import re
import string
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

LANGUAGES = {"en": "English", "ko": "한국어"}
DEFAULT_LANGUAGE = "en"
LOCALES = Path(__file__).with_name("locales")
DOMAIN = "messages"
SOURCES = ("app.py", "app_pages", "mnist_core")  # where texts live, from the project root
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def N_(message: str) -> str:
    """Marks a text for translation where it is defined; it is translated where it is shown."""
    return message


class Text(str):
    """A translatable text passed as a placeholder's value (e.g. a setting's name inside an error):
    `translate` shows it in the student's language too, where a plain str (what the student typed) stays."""


class Duration(float):
    """Seconds passed as a placeholder's value: shown as a duration in the student's language ("2 min 5 sec",
    "2분 5초") wherever the text is shown, so a message made in the core reads right in either language."""


@lru_cache(maxsize=None)
def catalog(lang: str) -> _gettext.NullTranslations:
    """The language's translations (English: the texts as written)."""
    path = LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == DEFAULT_LANGUAGE or not path.is_file():
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        po = read_po(f, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, po, use_fuzzy=False)
    compiled.seek(0)
    return _gettext.GNUTranslations(compiled)


def gettext(message: str, lang: str, **params: Any) -> str:
    """`message` in `lang`, with its named placeholders filled in (Text values translated too)."""
    text = catalog(normalize(lang)).gettext(message)
    return fill(text, lang, params) if params else text


def fill(text: str, lang: str, params: dict[str, Any]) -> str:
    """`text` with its placeholders filled in, Text values translated, Duration values written out and Message
    values (a part of a sentence made where the error is raised) filled in, all in `lang`."""
    def shown(value: Any) -> Any:
        if isinstance(value, Message):
            return gettext(value.template, lang, **value.params)
        if isinstance(value, Text):
            return catalog(normalize(lang)).gettext(value)
        if isinstance(value, Duration):
            return format_duration(value, lang)
        return value
    return text.format(**{k: shown(v) for k, v in params.items()})


def ngettext(singular: str, plural: str, n: int, lang: str, **params: Any) -> str:
    text = catalog(normalize(lang)).ngettext(singular, plural, n)
    return text.format(n=n, **params)


class Translator:
    """`_ = Translator("ko")`, then `_("Epochs")` or `_("{n} runs", n=3)`."""

    def __init__(self, lang: str):
        self.lang = normalize(lang)

    def __call__(self, message: str, **params: Any) -> str:
        if isinstance(message, Message):  # a sentence made in the core with its values (a job's message)
            return translate(message, self.lang)
        return gettext(message, self.lang, **params)

    def ngettext(self, singular: str, plural: str, n: int, **params: Any) -> str:
        return ngettext(singular, plural, n, self.lang, **params)

    def error(self, error: BaseException) -> str:
        """The error in the student's language, for a Markdown box (st.error): outside values shown literally."""
        return translate(error, self.lang, markdown_literal)

    def number(self, value: float, digits: int = 0) -> str:
        return format_number(value, self.lang, digits)

    def percent(self, value: float | None, digits: int = 1) -> str:
        return format_percent(value, self.lang, digits)

    def duration(self, seconds: float | None) -> str:
        return format_duration(seconds, self.lang)


def language_code(tag: str | None) -> str:
    """'ko-KR', 'ko_kr', 'KO' -> 'ko': the primary subtag of a language tag."""
    return (tag or "").strip().lower().replace("_", "-").split("-")[0]


def normalize(lang: str | None) -> str:
    """A language we have, else English."""
    code = language_code(lang)
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def pick_language(asked: str | None = None, browser_locale: str | None = None) -> str:
    """The link's or the student's choice if it names a language we have, else the browser's, else English."""
    for candidate in (asked, browser_locale):
        if language_code(candidate) in LANGUAGES:
            return language_code(candidate)
    return DEFAULT_LANGUAGE


# -- numbers in the student's locale -------------------------------------------------------------

def format_number(value: float, lang: str, digits: int = 0) -> str:
    from babel.numbers import format_decimal
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=normalize(lang))


def format_percent(value: float | None, lang: str, digits: int = 1) -> str:
    if value is None or value != value:
        return "–"
    from babel.numbers import format_percent as babel_percent
    pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    return babel_percent(value, format=pattern, locale=normalize(lang))


def format_duration(seconds: float | None, lang: str) -> str:
    """A duration in the student's language, by Babel: its two largest units, rounded to whole seconds and at
    least 1 s ("45 sec", "2 min 5 sec", "1 hr 3 min"; "45초", "2분 5초", "1시간 3분"); "unknown" for None."""
    if seconds is None or seconds != seconds:
        return gettext(N_("unknown"), lang)
    from babel.dates import format_timedelta
    left = max(1, round(seconds))
    units = [(left // 3600, 3600, "hour"), (left % 3600 // 60, 60, "minute"), (left % 60, 1, "second")]
    shown = [(n, size, unit) for n, size, unit in units if n][:2]
    if len(shown) == 2 and shown[0][2] == "hour" and shown[1][2] == "second":
        shown = shown[:1]  # "1 hr 4 sec": the seconds say nothing next to the hours
    return " ".join(format_timedelta(n * size, granularity=unit, threshold=1, format="short", locale=normalize(lang))
                    for n, size, unit in shown)


def keep_words(text: str) -> str:
    """`text` with its Hangul words kept whole where a narrow column wraps it (a WORD JOINER between syllables,
    as CSS word-break: keep-all would): "예측" never splits into "예 / 측". Lines still break at spaces."""
    return _HANGUL_PAIR.sub("\u2060", text)


_HANGUL_PAIR = re.compile(r"(?<=[\uac00-\ud7a3])(?=[\uac00-\ud7a3])")


# -- errors that a page translates ---------------------------------------------------------------

class LabError(Exception):
    """An error for the student: an English template with named placeholders, and their values.

    `str(error)` is the English sentence (the CLI and logs); `translate(error, lang)` the student's.
    """

    def __init__(self, template: str, **params: Any):
        if isinstance(template, Message):  # a message made where the error is not raised (hosting.check)
            template, params = template.template, {**template.params, **params}
        super().__init__(fill(template, DEFAULT_LANGUAGE, params) if params else template)
        self.template, self.params = template, params


class Message(str):
    """An English sentence for the student that keeps its template and values, so that whoever shows it
    can show it in the student's language (`translate`); as a str it reads in English."""
    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, **params: Any) -> "Message":
        self = super().__new__(cls, fill(template, DEFAULT_LANGUAGE, params) if params else template)
        self.template, self.params = template, params
        return self


def translate(error: BaseException | Message, lang: str, literal: Callable[[str], str] | None = None) -> str:
    """The error in `lang`. `literal` quotes the values that came from outside (plain str placeholders, such
    as what a student typed or a link carried; catalog Texts and numbers are ours): `markdown_literal` where
    the sentence is shown as Markdown."""
    if isinstance(error, (LabError, Message)):
        params = error.params if literal is None else \
            {k: literal(v) if type(v) is str else v for k, v in error.params.items()}
        return gettext(error.template, lang, **params)
    return str(error) if literal is None else literal(str(error))


_PLAIN = re.compile(r"(?:[^\W_]|[ .,\-+/=%'\";?])*")  # letters, digits and marks that make no Markdown inline


def markdown_literal(text: str) -> str:
    """`text` shown as Markdown exactly as it is. Plain words, numbers and the like stay as they are; anything
    else becomes a code span. Backslash escapes are not enough: GitHub-flavoured Markdown turns "http://...",
    "www...." or an e-mail address left in the text into a live link after the escapes are read; a code span
    is no text to it, nor to emphasis, math, HTML or Streamlit's directives (:red[...], :material/...:).
    Control characters become spaces (no new block from a new line)."""
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    if _PLAIN.fullmatch(text) and "www." not in text.lower():
        return text
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""  # CommonMark strips one space on each side
    return f"{fence}{pad}{text}{pad}{fence}"


def placeholders(text: str) -> set[str]:
    """The named fields of a template: '{lr} at {epoch:d}' -> {'lr', 'epoch'}."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


# -- keeping the catalog in step with the code ---------------------------------------------------

def extract(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Every translatable text in the code under `root`, with where it is used."""
    from babel.messages.extract import extract_from_file

    found: dict[str, list[tuple[str, int]]] = {}
    for path in _sources(root):
        with open(path, "rb") as f:
            head = f.read()
        if not any(k.encode() + b"(" in head for k in KEYWORDS):
            continue
        for lineno, message, _comments, _context in extract_from_file("python", str(path), keywords=KEYWORDS):
            for text in (message if isinstance(message, tuple) else (message,)):
                if text:
                    found.setdefault(text, []).append((str(path.relative_to(root)), lineno))
    from .notes import NOTES_FILE, read_notes  # the concept notes are prose in a file of their own
    where = str(NOTES_FILE.relative_to(root)) if NOTES_FILE.is_relative_to(root) else NOTES_FILE.name
    for note in read_notes().values():
        for text in (note.title, note.body):
            found.setdefault(text, []).append((where, 0))
    return found


def _sources(root: Path) -> Iterable[Path]:
    for name in SOURCES:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def update(root: Path, lang: str = "ko") -> tuple[int, int]:
    """Merges the code's texts into the language's .po file; returns (new, obsolete) counts."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    template = Catalog(locale=None, project="mnist-lab")
    for message, where in extract(root).items():
        template.add(message, locations=where)
    path = LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if path.is_file():
        with open(path, "rb") as f:
            po = read_po(f, locale=lang)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        po = Catalog(locale=lang, project="mnist-lab")
    before, created = {m.id for m in po if m.id}, po.creation_date
    po.update(template, no_fuzzy_matching=True)
    po.creation_date = created  # unchanged, like the line numbers below: an update rewrites only what changed
    after = {m.id for m in po if m.id}
    new = len(after - before)
    obsolete = len(po.obsolete)
    po.obsolete.clear()  # texts the code no longer uses go; git keeps their history
    with open(path, "wb") as f:
        write_po(f, po, width=120, omit_header=False, sort_output=True, include_lineno=False)
    catalog.cache_clear()
    return new, obsolete


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["update"]:
        sys.exit("usage: python -m mnist_core.i18n update   (merges the code's texts into the Korean catalog)")
    added, removed = update(Path(__file__).resolve().parent.parent)
    print(f"{added} new text(s) to translate, {removed} no longer used (removed).")
