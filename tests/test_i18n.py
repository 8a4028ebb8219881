"""Korean and English: the catalog covers every text in the code, translations keep their placeholders,
and errors raised by the core read in the student's language."""
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from mnist_core.config import ConfigError, RunConfig
from mnist_core.i18n import (LANGUAGES, LOCALES, Translator, extract, format_duration, format_percent, pick_language, placeholders,
                             translate)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def code_texts():
    return extract(ROOT)


@pytest.fixture(scope="module", params=[lang for lang in LANGUAGES if lang != "en"])
def po(request):
    with open(LOCALES / request.param / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=request.param)


def test_every_text_in_the_code_has_a_translation(code_texts, po):
    translated = {m.id: m.string for m in po if m.id}
    missing = sorted(t for t in code_texts if not translated.get(t))
    assert not missing, (f"{len(missing)} text(s) have no {po.locale} translation; run `python -m mnist_core.i18n "
                         f"update` and translate them in the .po file. First: {missing[:5]}")


def test_every_translation_is_used_by_the_code(code_texts, po):
    stale = sorted(m.id for m in po if m.id and m.id not in code_texts)
    assert not stale, f"translations the code no longer uses (run `python -m mnist_core.i18n update`): {stale[:5]}"


def test_translations_keep_their_placeholders(po):
    wrong = [(m.id, m.string) for m in po if m.id and m.string and placeholders(m.id) != placeholders(m.string)]
    assert not wrong, f"a translation must use exactly the placeholders of its English text: {wrong[:3]}"


def test_extraction_finds_marked_texts_and_their_places(code_texts):
    assert "learning rate" in code_texts  # a setting's name, marked with N_ in config.py
    assert any(path.endswith("config.py") for path, _ in code_texts["learning rate"])


def test_a_config_error_reads_in_korean_with_the_setting_named_as_on_the_page():
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict({"lr": "abc"})
    assert str(caught.value) == "The learning rate must be a number, got 'abc'."
    korean = translate(caught.value, "ko")
    assert "학습률" in korean and "'abc'" in korean and "learning" not in korean


def test_numbers_in_a_translated_error_keep_their_values():
    with pytest.raises(ConfigError) as caught:
        RunConfig(batch_size=70_000)
    assert "60,000" in translate(caught.value, "ko") and "70000" in translate(caught.value, "ko")


def test_language_choice_link_first_then_browser_then_english():
    assert pick_language("ko", "en-US") == "ko"
    assert pick_language(None, "ko-KR") == "ko"
    assert pick_language("fr", "ko_KR") == "ko"  # a language we do not have falls through
    assert pick_language(None, None) == "en"
    assert pick_language("xx", "de-DE") == "en"


def test_translator_formats_texts_and_numbers():
    _ = Translator("ko")
    assert _("learning rate") == "학습률"
    assert _("no such text {n}", n=3) == "no such text 3"  # untranslated texts show in English, never crash
    assert format_percent(0.9573, "ko") == "95.7%" and format_percent(None, "en") == "–"


def test_a_refusal_of_the_shared_server_reads_in_korean():
    from mnist_core.hosting import HostingLimits
    from mnist_core.jobs import RequestRefused
    # 200 epochs of 60,000 images: far over a minute on any machine (50 were not, on a fast Xeon)
    refusal = RequestRefused(HostingLimits(hosted=True, max_request_seconds=60).check([RunConfig(epochs=200)]))
    assert str(refusal).startswith("This comparison would train for about") and "allows 1 min" in str(refusal)
    korean = translate(refusal, "ko")
    assert "서버" in korean and "1분" in korean and "comparison" not in korean
    assert not re.search(r"\d (min|s|sec)\b", korean), korean  # no English units in a Korean sentence


@pytest.mark.parametrize("seconds, en, ko", [(0.3, "1 sec", "1초"), (45, "45 sec", "45초"), (125, "2 min 5 sec", "2분 5초"),
                                             (1800, "30 min", "30분"), (3725, "1 hr 2 min", "1시간 2분"),
                                             (None, "unknown", "알 수 없음")])
def test_durations_read_in_the_students_language(seconds, en, ko):
    assert format_duration(seconds, "en") == en and Translator("ko").duration(seconds) == ko


def test_a_failed_jobs_fixed_reasons_read_in_korean():
    from mnist_core.jobs import WORKER_LOST, student_message
    assert Translator("ko")(WORKER_LOST) != WORKER_LOST
    out_of_memory = student_message(MemoryError())
    assert Translator("ko")(out_of_memory) != out_of_memory
    # An error nobody foresaw: a sentence a student can act on, never the exception's text or type.
    surprise = student_message(KeyError("weights/fc1.bias"))
    assert "KeyError" not in surprise and "fc1" not in surprise and "teacher" in surprise
    assert Translator("ko")(surprise) != surprise
