"""normalize: NFKC, line endings, invisible characters and whitespace, on every turn's content only."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from corpus_platform.curation.normalize import conversation_text, normalize_messages, normalize_text, role_texts
from corpus_platform.schema import examples_frame, make_example

DAY = date(2026, 1, 1)
AT = datetime(2026, 1, 1, 12, 0, 0)


def norm(text: str) -> str:
    return pl.DataFrame({"t": [text]}).select(normalize_text(pl.col("t")))["t"][0]


def frame(*conversations: list[tuple[str, str]]) -> pl.DataFrame:
    return examples_frame(
        make_example(source="conversations", source_id=str(i), day=DAY, collected_at=AT,
                     messages=[{"role": r, "content": c} for r, c in turns], metadata={"i": i})
        for i, turns in enumerate(conversations)
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ｈｅｌｌｏ，ｗｏｒｌｄ！", "Hello,world!"),  # full-width letters and punctuation
        ("ＡＢＣ　１２３", "ABC 123"),  # ideographic space folds to a plain space
        ("ﬁne ﬂow ﬀ", "fine flow ff"),  # ligatures
        ("a\u00a0b", "a b"),  # non-breaking space
        ("x\u00a0\u00a0 y", "x y"),  # NBSP runs collapse like spaces
        ("H₂O and ²", "H2O and 2"),  # sub/superscripts are compatibility forms
    ],
)
def test_nfkc_folds_compatibility_forms(raw, expected):
    assert norm(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a\r\nb", "a\nb"), ("a\rb", "a\nb"), ("a\r\n\r\nb", "a\n\nb"), ("a\r\rb\r\n", "a\n\nb")],
)
def test_line_endings_become_newlines(raw, expected):
    assert norm(raw) == expected


def test_zero_width_space_and_bom_removed():
    assert norm("zero\u200bwidth") == "zerowidth"
    assert norm("\ufeffhello") == "hello"
    assert norm("a \u200b b") == "a b"  # removing it does not leave a double space


@pytest.mark.parametrize(
    "emoji",
    [
        "\U0001F468\u200d\U0001F469\u200d\U0001F467",  # family: man ZWJ woman ZWJ girl
        "\U0001F3F3\ufe0f\u200d\U0001F308",  # rainbow flag
        "\U0001F9D1\u200d\U0001F4BB",  # technologist
    ],
)
def test_zero_width_joiner_kept_in_emoji_sequences(emoji):
    out = norm(f"look {emoji} here")
    assert out == f"look {emoji} here"
    assert "\u200d" in out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a  b", "a b"),
        ("a\t\tb", "a b"),
        ("a \t \u2003 b", "a b"),  # em space is whitespace too
        ("line1\nline2", "line1\nline2"),  # single newline kept
        ("line1  \n  line2", "line1\nline2"),  # spaces around a newline dropped
        ("para1\n\npara2", "para1\n\npara2"),  # one blank line kept
        ("a\n\n\n\n\nb", "a\n\nb"),  # runs of blank lines capped at one
        ("a\n \n\t\n  \nb", "a\n\nb"),  # blank lines holding only spaces count as blank
        ("- one\n- two\n- three", "- one\n- two\n- three"),  # list structure survives
    ],
)
def test_whitespace_collapse_keeps_line_structure(raw, expected):
    assert norm(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [("  hi  ", "hi"), ("\n\n hi \n\t", "hi"), (" \u00a0\u200b ", ""), ("", "")])
def test_strip(raw, expected):
    assert norm(raw) == expected


def test_normalize_is_idempotent():
    raw = " Ｈｉ\u00a0there\r\n\r\n\r\n\u200bﬁne  \U0001F468\u200d\U0001F469 "
    once = norm(raw)
    assert once == "Hi there\n\nfine \U0001F468\u200d\U0001F469"
    assert norm(once) == once


def test_normalize_messages_changes_contents_only():
    df = frame(
        [("system", "  Be　brief.  "), ("user", "Ｗｈａｔ\u00a0is\r\nit?"), ("assistant", "It  is\n\n\n\nthis.")],
        [("user", "plain"), ("assistant", "already clean")],
    )
    out = normalize_messages(df)
    assert out.columns == df.columns and out.schema == df.schema
    assert out.drop("messages").equals(df.drop("messages"))
    assert out["messages"].to_list() == [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is\nit?"},
            {"role": "assistant", "content": "It is\n\nthis."},
        ],
        [{"role": "user", "content": "plain"}, {"role": "assistant", "content": "already clean"}],
    ]


def test_normalize_messages_keeps_roles_order_and_empty_turns():
    df = frame([("assistant", "first"), ("user", "   "), ("user", "third"), ("system", "last")])
    out = normalize_messages(df)["messages"].to_list()[0]
    assert [m["role"] for m in out] == ["assistant", "user", "user", "system"]
    assert [m["content"] for m in out] == ["first", "", "third", "last"]


def test_role_texts_selects_one_role_in_order():
    df = frame(
        [("system", "S"), ("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a2")],
        [("user", "only a prompt")],
    )
    out = df.select(
        role_texts("user").alias("u"), role_texts("assistant").alias("a"), role_texts("system").alias("s")
    )
    assert out["u"].to_list() == [["u1", "u2"], ["only a prompt"]]
    assert out["a"].to_list() == [["a1", "a2"], []]
    assert out["s"].to_list() == [["S"], []]


def test_role_texts_reads_another_column():
    df = frame([("user", "q"), ("assistant", "a")]).rename({"messages": "turns"})
    assert df.select(role_texts("assistant", col="turns"))["turns"].to_list() == [["a"]]


def test_conversation_text_includes_roles_in_order():
    df = frame(
        [("system", "Be kind."), ("user", "Hi"), ("assistant", "Hello!")],
        [("assistant", "Hello!"), ("user", "Hi")],
    )
    texts = df.select(conversation_text().alias("t"))["t"].to_list()
    assert texts == ["system\x1fBe kind.\x1euser\x1fHi\x1eassistant\x1fHello!", "assistant\x1fHello!\x1euser\x1fHi"]


# Social steps (elongation, hashtags): per source, outside backticks, vectorized.
from corpus_platform.curation.normalize import SOCIAL_SOURCES, SocialSteps, social_steps, social_text  # noqa: E402

SOCIAL = SocialSteps(elongation=True, hashtags=True)


def social(text: str, steps: SocialSteps = SOCIAL) -> str:
    return pl.DataFrame({"t": [text]}).select(social_text(normalize_text(pl.col("t")), steps))["t"][0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sooo good", "so good"),
        ("yesss!!! hmmm", "yes!!! hm"),
        ("noooooooo way", "no way"),
        ("cool bookkeeper committee", "cool bookkeeper committee"),  # pairs survive
        ("World War III, WWW, AAA battery", "World War III, WWW, AAA battery"),  # uppercase runs survive
        ("see www.aaa.com and https://x.org/zzz", "see www.aaa.com and https://x.org/zzz"),  # URLs untouched
        ("`aaa` stays, aaa goes", "`aaa` stays, a goes"),  # inline code untouched
        ("```py\n#### aaa\nx = 'sooo'\n``` sooo", "```py\n#### aaa\nx = 'sooo'\n``` so"),  # fences untouched
    ],
)
def test_elongation_collapses_runs_of_three_lowercase_letters(raw, expected):
    assert social(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("#MachineLearning rocks", "Machine Learning rocks"),
        ("#AI", "AI"),
        ("love #NASAMission", "love NASA Mission"),
        ("#COVID19Vaccine", "COVID19 Vaccine"),
        ("#machine_learning", "machine learning"),
        ("#ThisIsFine!", "This Is Fine!"),
        ("C# and page#Anchor &#39; # Heading #123", "C# and page#Anchor &#39; # Heading #123"),  # not hashtags
        ("`#NotATag` #RealTag", "`#NotATag` Real Tag"),
    ],
)
def test_hashtags_are_split_into_words(raw, expected):
    assert social(raw) == expected


def test_emoji_survive_the_social_steps():
    text = "sooo happy 🎉🎉🎉 #BestDay 👨\u200d👩\u200d👧"
    assert social(text) == "so happy 🎉🎉🎉 Best Day 👨\u200d👩\u200d👧"


def test_each_step_can_be_switched_alone():
    assert social("#BigDay sooo", SocialSteps(elongation=True)) == "#BigDay so"
    assert social("#BigDay sooo", SocialSteps(hashtags=True)) == "Big Day sooo"
    assert social("#BigDay sooo", SocialSteps()) == "#BigDay sooo"


def test_social_steps_are_on_for_chat_sources_and_off_for_instruction_data():
    assert set(SOCIAL_SOURCES) == {"twitter", "reddit", "youtube", "conversations"}
    for source in SOCIAL_SOURCES:
        assert social_steps(source) == SOCIAL
    for source in ("public", "synthetic"):
        assert social_steps(source) == SocialSteps()
    assert social_steps("public", sources=("public",)) == SOCIAL  # configurable


def test_normalize_messages_applies_the_source_steps_to_every_turn():
    df = frame([("user", "#GoodMorning sooo"), ("assistant", "Morning! #CoffeeTime")])
    assert normalize_messages(df)["messages"].to_list()[0][0]["content"] == "#GoodMorning sooo"  # default: off
    out = normalize_messages(df, SOCIAL)["messages"].to_list()[0]
    assert [m["content"] for m in out] == ["Good Morning so", "Morning! Coffee Time"]


def test_social_steps_are_idempotent():
    once = social("#MachineLearning is sooo cool")
    assert social(once) == once


ATOMS = ["Ｆｕｌｌ", "\u200b", "\ufeff", "\r\n", "\r", "\n\n\n\n", "  ", "\t", "\x07", "\xa0", "ﬁ", "#MachineLearning", "#AI",
         "#machine_learning", "C#", "&#39;", "#123", "sooo", "yesss", "AAA", "cool", "https://sooo.com/#Tag", "`#code sooo`",
         "word", "é", "e\u0301", "日本", "😀", " ", ".", "ＡＢＣ", "①", "Ⅸ"]


@pytest.mark.parametrize("steps", [SocialSteps(), SOCIAL, SocialSteps(elongation=True), SocialSteps(hashtags=True)])
def test_normalize_messages_equals_the_expressions_on_every_turn(steps):
    """normalize_messages runs NFKC and the social steps only on the turns they can change (non-ASCII;
    '#' or a tripled letter) and regroups the turns: the same frame as the plain expressions per turn,
    null and empty conversations and null turns included."""
    import random

    rng = random.Random(5)

    def text():
        return None if rng.random() < 0.05 else "".join(rng.choice(ATOMS) + rng.choice(["", " ", "\n"]) for _ in range(rng.randint(0, 8)))

    messages = [None, [], [None, {"role": "user", "content": "sooo"}]] + [
        [{"role": rng.choice(["user", "assistant"]), "content": text()} for _ in range(rng.randint(1, 4))] for _ in range(600)]
    df = pl.DataFrame({"id": range(len(messages)), "messages": messages},
                      schema={"id": pl.Int64, "messages": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))})
    expected = df.with_columns(pl.col("messages").list.eval(pl.struct(
        pl.element().struct.field("role").alias("role"),
        social_text(normalize_text(pl.element().struct.field("content")), steps).alias("content"))))
    out = normalize_messages(df, steps)
    assert out.equals(expected)
    changed = sum(a != b for a, b in zip(df["messages"].to_list(), out["messages"].to_list()))
    assert changed > 300  # the sample exercises the steps
