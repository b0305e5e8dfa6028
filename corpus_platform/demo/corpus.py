"""The demo corpus: landing files for `public` and `conversations`, generated here, deterministically.

`make demo` runs on a fresh clone with no network and no data, so the project writes its own input:
templates x small embedded tables give instruction/response pairs whose answers are correct (a small
model can learn from them), and a few planted problems give every parser and curation rule work:
duplicates (exact, across days and sources, and whitespace/unicode variants), empty, too short, too
long, letter-free and structurally malformed records. Content depends only on (seed, source, day).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import unicodedata
from datetime import date
from pathlib import Path

PLANTED_KINDS = ("exact_dup", "whitespace_dup", "empty", "too_short", "too_long", "no_letters", "malformed")
PUBLIC_FILES = ("alpaca.json", "dolly.jsonl", "sharegpt.json", "openai_messages.jsonl", "hh.jsonl.gz")

NAMES = [tuple(n.split(":")) for n in
         "Maria:she Ken:he Aisha:she Tom:he Lena:she Omar:he Priya:she Diego:he Sofia:she Ben:he".split()]
THINGS = "apples marbles books pencils stickers cookies stamps oranges cards shells".split()
USERS = "u-1042 u-1187 u-2210 u-2381 u-3307 u-4410 u-5126 u-6093".split()
COUNTRIES = [r.split(":") for r in (
    "France:Paris:Europe;Germany:Berlin:Europe;Italy:Rome:Europe;Spain:Madrid:Europe;Portugal:Lisbon:Europe;"
    "Poland:Warsaw:Europe;Norway:Oslo:Europe;Sweden:Stockholm:Europe;Finland:Helsinki:Europe;"
    "Greece:Athens:Europe;Austria:Vienna:Europe;Ireland:Dublin:Europe;Japan:Tokyo:Asia;China:Beijing:Asia;"
    "India:New Delhi:Asia;Thailand:Bangkok:Asia;Vietnam:Hanoi:Asia;Indonesia:Jakarta:Asia;"
    "South Korea:Seoul:Asia;Egypt:Cairo:Africa;Kenya:Nairobi:Africa;Nigeria:Abuja:Africa;Ghana:Accra:Africa;"
    "Morocco:Rabat:Africa;Ethiopia:Addis Ababa:Africa;Canada:Ottawa:North America;"
    "Mexico:Mexico City:North America;Cuba:Havana:North America;Brazil:Brasilia:South America;"
    "Argentina:Buenos Aires:South America;Peru:Lima:South America;Chile:Santiago:South America;"
    "Colombia:Bogota:South America;Australia:Canberra:Oceania;New Zealand:Wellington:Oceania").split(";")]
# term | article ("" for none) | definition | example
DEFS = [r.split("|") for r in """\
variable|a|a name that refers to a value stored in memory, so the program can read or change it later|After count = 3, the name count refers to the number 3.
function|a|a named block of code that takes inputs, does one job and can return a result|Writing a function once lets you reuse the same logic in many places.
loop|a|a piece of code that repeats a set of instructions until a condition is met|A for loop can, for instance, print every item in a list.
recursion||a technique where a function solves a problem by calling itself on a smaller version of it|Computing a factorial as n times the factorial of n - 1 is a classic example.
API|an|a set of rules that lets one program ask another program for data or services|A weather app uses an API to fetch the forecast from a server.
compiler|a|a program that translates source code into machine code before it runs|C and Rust programs are turned into executables by a compiler.
array|an|an ordered collection of values stored under one name and accessed by position|In most languages the first element of an array has index 0.
dictionary|a|a collection that maps keys to values, so you can look a value up by its key|A phone book that maps names to numbers works like a dictionary.
class|a|a blueprint that describes the data and behavior shared by a group of objects|A Car class might define a color attribute and a drive method.
exception|an|an error signal raised while a program runs, which the code can catch and handle|Dividing by zero raises an exception in Python.
unit test|a|a small automated check that one piece of code behaves as expected|Running the unit tests after every change catches bugs early.
cache|a|a fast storage layer that keeps recent results so they need not be computed or fetched again|Web browsers cache images so that pages load faster on a second visit.
boolean|a|a value that is either true or false|Conditions in if statements evaluate to a boolean.
string|a|a sequence of characters, such as a word or a sentence|In Python, "hello" is a string.
algorithm|an|a precise, step-by-step procedure for solving a problem|Binary search is an algorithm for finding an item in a sorted list.
database index|a|a data structure that lets a database find rows quickly without scanning the whole table|An index on an email column speeds up lookups by email.
thread|a|a path of execution inside a program that can run alongside other threads|A web server may handle each request on its own thread.
version control||a system that records changes to files over time so you can review or undo them|Git is the most widely used version control system.
JSON||a text format for structured data built from objects, arrays, strings, numbers and booleans|Many web APIs send and receive data as JSON.
bug|a|a mistake in a program that makes it behave in an unexpected way|A typo in a condition can cause a bug that is hard to spot.""".splitlines()]
HOWTO = [r.split("|") for r in """\
boil an egg|place the egg in a pot and cover it with cold water|bring the water to a boil and cook the egg for about nine minutes|cool it in cold water before peeling it
make a cup of tea|boil fresh water|pour it over a tea bag and let it steep for three to five minutes|remove the bag and add milk or sugar if you like
plant a seed|fill a small pot with moist soil|press the seed about one centimeter deep and cover it|keep the pot somewhere warm and bright and water it when the soil feels dry
back up your files|choose an external drive or a cloud service|copy your important folders to it|repeat the backup regularly and check that the copies open
write a good commit message|summarize the change in a short first line|leave a blank line after it|explain in the body why the change was made
clean a laptop keyboard|turn the laptop off and unplug it|turn it upside down and gently shake out the crumbs|wipe the keys with a slightly damp cloth
create a strong password|use at least twelve characters|mix words, numbers and symbols|never reuse it on other sites and keep it in a password manager
fix a flat bicycle tire|take the wheel off and pull the tube out of the tire|find the hole and cover it with a patch|put the tube back and pump the tire to the right pressure
wash a wool sweater|fill a basin with cool water and a little wool detergent|let the sweater soak for ten minutes without rubbing it|rinse it, press out the water and dry it flat on a towel
prepare for a job interview|read about the company and the role|practice answers to common questions out loud|prepare a few questions of your own for the interviewer
set up a Python virtual environment|open a terminal in your project folder|run python -m venv .venv|activate it with source .venv/bin/activate
save money on groceries|plan your meals for the week|write a shopping list and stick to it|compare unit prices and choose store brands""".splitlines()]
VERBS = [r.split(",") for r in (
    "walks,walk,walked,to the park after lunch;cooks,cook,cooked,dinner for the family;plays,play,played,"
    "football on Saturdays;writes,write,wrote,a letter to an old friend;drives,drive,drove,to the office;"
    "buys,buy,bought,fresh bread at the market;sings,sing,sang,in the school choir;teaches,teach,taught,"
    "history at the local school;catches,catch,caught,the early train;builds,build,built,model airplanes;"
    "takes,take,took,the bus into town;finds,find,found,shells on the beach;eats,eat,ate,breakfast at seven;"
    "goes,go,went,to the library on Mondays;swims,swim,swam,in the lake every summer;sends,send,sent,"
    "a message to the team;brings,bring,brought,snacks to the meeting").split(";")]
SUBJECTS = [("She", 0), ("He", 0), ("My sister", 0), ("The teacher", 0), ("Our neighbor", 0),
            ("They", 1), ("We", 1), ("The children", 1), ("My parents", 1)]
ARITH = [  # (operation, question, answer); every answer states "x op y = z" so it can be checked
    ("+", "{N} has {a} {t} and buys {b} more. How many {t} does {p} have now?",
     "{N} starts with {a} {t} and buys {b} more, so {a} + {b} = {c}. {P} now has {c} {t}."),
    ("+", "There are {a} {t} in a basket and {N} adds {b} more. How many {t} are in the basket?",
     "Add the two amounts: {a} + {b} = {c}. There are {c} {t} in the basket now."),
    ("-", "{N} had {a} {t} and gave {b} of them to a friend. How many {t} are left?",
     "{N} started with {a} {t} and gave away {b}, so {a} - {b} = {c}. {P} has {c} {t} left."),
    ("-", "A box held {a} {t}. After {b} were taken out, how many {t} remained?",
     "Subtract the {t} that were taken out: {a} - {b} = {c}. So {c} {t} remained in the box."),
    ("×", "A shop packs {a} {t} in each box. How many {t} are in {b} boxes?",
     "Each box holds {a} {t}, so {b} boxes hold {a} × {b} = {c} {t} in total."),
    ("×", "{N} buys {a} packs of {t} with {b} in each pack. How many {t} does {p} get?",
     "Multiply the number of packs by the {t} in each pack: {a} × {b} = {c}. {N} gets {c} {t}."),
    ("÷", "{N} shares {a} {t} equally among {b} friends. How many {t} does each friend get?",
     "Divide the {t} equally: {a} ÷ {b} = {c}. Each friend gets {c} {t}."),
    ("÷", "{a} {t} are split into {b} equal groups. How many {t} are in each group?",
     "Each group gets {a} ÷ {b} = {c} {t}, because {b} × {c} = {a}."),
]
CONV = [  # (from, to, factor, offset, how); result = value * factor + offset
    ("kilometers", "miles", 0.621371, 0, "One kilometer is about 0.621 miles."),
    ("miles", "kilometers", 1.609344, 0, "One mile is about 1.609 kilometers."),
    ("kilograms", "pounds", 2.20462, 0, "One kilogram is about 2.205 pounds."),
    ("pounds", "kilograms", 0.453592, 0, "One pound is about 0.454 kilograms."),
    ("meters", "feet", 3.28084, 0, "One meter is about 3.281 feet."),
    ("inches", "centimeters", 2.54, 0, "One inch is exactly 2.54 centimeters."),
    ("liters", "US gallons", 0.264172, 0, "One liter is about 0.264 US gallons."),
    ("degrees Celsius", "degrees Fahrenheit", 1.8, 32, "To convert, multiply by 9/5 and then add 32."),
    ("degrees Fahrenheit", "degrees Celsius", 5 / 9, -160 / 9, "To convert, subtract 32 and then multiply by 5/9."),
]
UNHELPFUL = ["I don't know.", "You should look that up yourself.", "Not sure, maybe ask someone else.",
             "That question is too hard for me.", "Why do you want to know?"]


def _num(x: float) -> str:
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _fill(rng: random.Random, questions: str, answers: str, **f) -> tuple[str, str]:
    """One of the '|'-separated phrasings of the question and of the answer, filled in."""
    return rng.choice(questions.split("|")).format(**f), rng.choice(answers.split("|")).format(**f)


# Each generator returns (question, answer, split, dolly category); split = (instruction, input) or None.
def _arith(rng):
    op, q, a = rng.choice(ARITH)
    name, pron = rng.choice(NAMES)
    if op == "+":
        x, y = rng.randint(3, 80), rng.randint(2, 40); z = x + y  # noqa: E702
    elif op == "-":
        x = rng.randint(20, 99); y = rng.randint(2, x - 2); z = x - y  # noqa: E702
    elif op == "×":
        x, y = rng.randint(2, 12), rng.randint(2, 12); z = x * y  # noqa: E702
    else:
        y, z = rng.randint(2, 9), rng.randint(2, 12); x = y * z  # noqa: E702
    f = dict(N=name, p=pron, P=_cap(pron), t=rng.choice(THINGS), a=x, b=y, c=z)
    return q.format(**f), a.format(**f), None, "general_qa"


def _percent(rng):
    p, n = rng.choice([5, 10, 15, 20, 25, 30, 40, 50, 60, 75]), rng.randrange(20, 401, 20)
    return *_fill(rng, "What is {p}% of {n}?|Calculate {p} percent of {n}.|How much is {p}% of {n}?",
                  "{p}% of {n} is {r}. You get it by multiplying {n} by {p} and dividing by 100.|"
                  "To find a percentage, multiply by the percent and divide by 100: {p}% of {n} is {r}.",
                  p=p, n=n, r=_num(p * n / 100)), None, "general_qa"


def _convert(rng):
    src, dst, factor, offset, how = rng.choice(CONV)
    v = rng.randint(-10, 40) if "Cel" in src else rng.randint(40, 110) if "Fahr" in src else rng.randint(2, 250)
    return *_fill(rng, "Convert {v} {a} to {b}.|How many {b} are in {v} {a}?|What is {v} {a} in {b}?|"
                  "I have {v} {a}. How much is that in {b}?",
                  "{v} {a} is about {r} {b}. {how}|{how} So {v} {a} is about {r} {b}.|"
                  "Rounded to two decimals, {v} {a} is about {r} {b}. {how}",
                  v=v, a=src, b=dst, r=_num(v * factor + offset), how=how), None, "general_qa"


def _capital(rng):
    c, cap, cont = rng.choice(COUNTRIES)
    return *_fill(rng, "What is the capital of {c}?|Which city is the capital of {c}?|Name the capital city of {c}.|"
                  "Tell me the capital of {c}, please.",
                  "The capital of {c} is {cap}. {c} is a country in {cont}.|{cap} is the capital city of {c}, which "
                  "is located in {cont}.|{c}'s capital is {cap}. It is the seat of the national government, and the "
                  "country lies in {cont}.", c=c, cap=cap, cont=cont), None, "open_qa"


def _define(rng):
    term, art, d, ex = rng.choice(DEFS)
    at = f"{art} {term}".strip()
    return *_fill(rng, 'What is {at} in programming?|Define the term "{t}".|Can you explain what {at} is in simple '
                  "words?|In computing, what does {t} mean?",
                  "{At} is {d}. {ex}|In programming, {at} is {d}. {ex}|Put simply, {at} is {d}. {ex}|{At} is {d}.",
                  at=at, At=_cap(at), t=term, d=d, ex=ex), None, "open_qa"


def _howto(rng):
    t, s1, s2, s3 = rng.choice(HOWTO)
    return *_fill(rng, "How do I {t}?|What are the steps to {t}?|Give me short instructions to {t}.|"
                  "Can you tell me how to {t}?",
                  "To {t}, first {s1}. Then {s2}. Finally, {s3}.|Here is a simple way to {t}: {s1}, then {s2}, and "
                  "finally {s3}.|First, {s1}. Next, {s2}. Last, {s3}.", t=t, s1=s1, s2=s2, s3=s3), None, "brainstorming"


def _past(rng):
    (subj, plural), (v3, vp, past, obj) = rng.choice(SUBJECTS), rng.choice(VERBS)
    s = f"{subj} {vp if plural else v3} {obj}."
    q, a = _fill(rng, 'Rewrite this sentence in the past tense: "{s}"|Change "{s}" to the past tense.|'
                 "Put this sentence into the past tense: {s}",
                 'In the past tense, the sentence becomes: "{p}" The verb "{v}" changes to "{pa}".|Here it is in the '
                 'past tense: "{p}" Only the verb changes, from "{v}" to "{pa}".|"{p}" The word "{pa}" is the past '
                 'form of "{v}".', s=s, p=f"{subj} {past} {obj}.", v=vp if plural else v3, pa=past)
    return q, a, ("Rewrite the following sentence in the past tense.", s), "closed_qa"


GENS = [_arith] * 3 + [_percent] + [_convert] * 2 + [_capital] * 2 + [_define] * 2 + [_howto] + [_past] * 2
Q_OPEN = ["", "", "Quick question: ", "Hi! ", "Hello! ", "I need some help. ", "Question for you: "]
A_OPEN = ["", "", "Sure! ", "Of course. ", "Happy to help. ", "Good question! "]
FOLLOW_UP = ["", "Thanks! ", "Great, thank you. ", "One more question: "]
LONG_ASK = " Also explain every programming term you know, in as much detail as you can."


def _fresh(rng: random.Random, seen: set) -> tuple:
    """A good item new to this (source, day); openers multiply the phrasings so days rarely collide by chance."""
    while True:
        q, a, split, cat = rng.choice(GENS)(rng)
        q, a = rng.choice(Q_OPEN) + q, rng.choice(A_OPEN) + a
        if (q, a) not in seen:
            seen.add((q, a))
            return q, a, split, cat


def _ws_variant(text: str) -> str:
    """Same text after NFKC and whitespace folding: full-width first word, a no-break space, a double space."""
    words = text.split(" ")
    first = "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in words[0])
    return first + "\u00a0" + words[1] + "  " + " ".join(words[2:]) + " "


def _long_text(rng: random.Random) -> str:
    parts = [f"{_cap(f'{art} {t}'.strip())} is {d}. {ex}" for t, art, d, ex in DEFS]
    k = rng.randrange(len(parts))
    text = " ".join(parts[k:] + parts[:k])
    return " ".join([text] * (20_500 // len(text) + 1))


def _um(q, a) -> tuple:
    return (("user", q), ("assistant", a))


def _instr(rng: random.Random, it: tuple, p_split: float, dolly: bool = False) -> tuple:
    """An Alpaca or Dolly record; items with a natural (instruction, input) split use it some of the time."""
    instr, extra = it[2] if it[2] and rng.random() < p_split else (it[0], "")
    key = _um(instr + ("\n\n" + extra if extra else ""), it[1])
    if not dolly:
        return {"instruction": instr, "input": extra, "output": it[1]}, key, None
    cat = it[3] if extra or it[3] != "closed_qa" else "creative_writing"
    return {"instruction": instr, "context": extra, "response": it[1], "category": cat}, key, None


def _sg(turns: tuple) -> dict:
    return {"conversations": [{"from": "human" if r == "user" else "gpt", "value": c} for r, c in turns]}


def _oa(turns: tuple) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


def _hh(q: str, a: str, worse: str) -> dict:
    return {"chosen": f"\n\nHuman: {q}\n\nAssistant: {a}", "rejected": f"\n\nHuman: {q}\n\nAssistant: {worse}"}


def _public(rng: random.Random, day: date, shared: list) -> dict[str, list]:
    """Records per file as (json value or raw line, messages key or None, planted tag or None)."""
    seen: set = set()
    fresh = lambda: _fresh(rng, seen)  # noqa: E731
    ask = lambda: fresh()[0]  # noqa: E731  (a unique prompt for a planted bad answer)
    twin, wsrc = fresh(), fresh()  # twin: duplicated within the day; wsrc: duplicated with other whitespace
    alpaca = [_instr(rng, fresh(), 0.7) for _ in range(16)] + [_instr(rng, it, 0) for it in (twin, wsrc, shared[0])]
    alpaca += [({"instruction": ask(), "input": "", "output": ""}, None, "empty"),
               ({"instruction": ask(), "input": ""}, None, "malformed")]
    dolly = [_instr(rng, fresh(), 0.6, True) for _ in range(14)] + [_instr(rng, twin, 0, True)]
    line = json.dumps(_instr(rng, fresh(), 0, True)[0])
    dolly += [({"instruction": ask(), "context": "", "response": " \n\t ", "category": "open_qa"}, None, "empty"),
              (line[: len(line) // 2], None, "malformed")]
    sg = []
    for _ in range(8):
        turns: tuple = ()
        for j in range(rng.choice([2, 2, 3])):
            q, a = fresh()[:2]
            turns += _um((rng.choice(FOLLOW_UP) if j else "") + q, a)
        sg.append((_sg(turns), turns, None))
    ws = _um(wsrc[0], _ws_variant(wsrc[1]))
    sg += [(_sg(ws), ws, None), (_sg(_um(ask() + LONG_ASK, _long_text(rng))), None, "too_long")]
    oa = []
    for _ in range(15):
        system = rng.choice([None, "You are a helpful assistant.", "You are a concise, friendly tutor."])
        msgs = ((("system", system),) if system else ()) + _um(*fresh()[:2])
        oa.append((_oa(msgs), msgs, None))
    oa += [(_oa(_um(*shared[1][:2])), _um(*shared[1][:2]), None), (_oa(_um(ask(), "ok")), None, "too_short"),
           (_oa(_um(ask(), 42)), None, "malformed")]
    hh = [(_hh(q, a, rng.choice(UNHELPFUL)), _um(q, a), None) for q, a, *_ in (fresh() for _ in range(15))]
    hh.append((_hh(ask(), "!!! ??? 123", rng.choice(UNHELPFUL)), None, "no_letters"))
    for recs in (alpaca, dolly, sg, oa, hh):
        rng.shuffle(recs)
    sg = [({"id": f"sg-{day:%Y%m%d}-{i:03d}", **rec}, key, tag) for i, (rec, key, tag) in enumerate(sg, 1)]
    return dict(zip(PUBLIC_FILES, (alpaca, dolly, sg, oa, hh)))


def _feedback(rng: random.Random, answer: str, tag: str | None) -> dict | None:
    """Feedback on good records only: an edit or correction replaces the response and a thumbs-down or
    report rejects it, so feedback on a planted record or a planted copy would blur what each class
    asserts."""
    r = rng.random()
    if tag:
        return None
    edit = answer.split(". ")[0].rstrip(".") + "."
    correction = answer.rstrip() + " Ask me if you would like the steps shown one by one."
    for cut, fb in ((0.04, {"kind": "thumbs_down"}), (0.2, {"kind": "thumbs_up"}), (0.24, {"kind": "edit", "text": edit}),
                    (0.26, {"kind": "correction", "text": correction}),
                    (0.27, {"kind": "report", "comment": "This is not what I asked."})):
        if r < cut:
            return fb
    return None


def _conversations(rng: random.Random, day: date, shared: list) -> dict[str, list]:
    """Multi-turn sessions of logged interactions; every planted record is a session of its own."""
    seen: set = set()
    twin, wsrc = _fresh(rng, seen), _fresh(rng, seen)
    good, sessions = [_fresh(rng, seen)[:2] for _ in range(68)], []
    while good:
        n = rng.choice([1, 1, 2, 2, 3, 4])
        sessions.append([(q, a, None) for q, a in good[:n]])
        good = good[n:]
    copies = [twin[:2], twin[:2], wsrc[:2], (wsrc[0], _ws_variant(wsrc[1])), shared[0][:2], shared[1][:2]]
    sessions += [[(q, a, "copy")] for q, a in copies]  # "copy": a planted duplicate, no feedback
    bad = [("", "empty"), (" \n ", "empty"), ("ok", "too_short"), (_long_text(rng), "too_long"),
           ("!!! ??? 123", "no_letters"), ("", "invalid_json"), ("", "missing_field"), ("", "wrong_type")]
    sessions += [[(_fresh(rng, seen)[0], a, tag)] for a, tag in bad]
    rows = []
    for k, sess in enumerate(sessions):
        user, model, t = rng.choice(USERS), rng.choice(["assistant-2025.11", "assistant-2025.12"]), rng.randrange(82_800)
        for q, a, mark in sess:
            tag = None if mark == "copy" else mark
            rec = {"session_id": f"sess-{day:%Y%m%d}-{k:03d}", "user_id": user, "timestamp": t,
                   "user_message": q, "bot_response": a, "model_version": model}
            if fb := _feedback(rng, a, mark):
                rec["feedback"] = fb
            rows.append((rec, tag))
            t += rng.randint(15, 240)
    rows.sort(key=lambda row: row[0]["timestamp"])  # stable: a session's turns keep their order
    out = []
    for n, (rec, tag) in enumerate(rows, 1):
        s = rec["timestamp"]
        rec = {"interaction_id": f"int-{day:%Y%m%d}-{n:04d}", **rec,
               "timestamp": f"{day.isoformat()}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z"}
        key = None if tag else _um(rec["user_message"], rec["bot_response"])
        if tag == "missing_field":
            del rec["bot_response"]
        elif tag == "wrong_type":
            rec["user_message"] = 4815162342
        elif tag == "invalid_json":
            line = json.dumps(rec, ensure_ascii=False)
            rec = line[: len(line) // 2]
        out.append((rec, key, "malformed" if tag in ("missing_field", "wrong_type", "invalid_json") else tag))
    return {f"chat-{day.isoformat()}.jsonl": out}


def _encode(name: str, records: list) -> bytes:
    if name.endswith(".json"):
        return (json.dumps([r for r, _, _ in records], ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r, _, _ in records]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return gzip.compress(data, compresslevel=9, mtime=0) if name.endswith(".gz") else data


def _write_atomic(path: Path, data: bytes) -> None:
    """A sensor never sees half a file: write `name.tmp` (ignored by readers), then rename over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _normalized(key: tuple) -> tuple:
    """What exact dedup compares: NFKC, horizontal whitespace folded, stripped (as curation.normalize)."""
    fold = lambda s: re.sub(r" ?\n ?", "\n", re.sub(r"[^\S\n]+", " ", unicodedata.normalize("NFKC", s))).strip()  # noqa: E731
    return tuple((r, fold(c)) for r, c in key)


def write_demo_corpus(landing: Path, days: list[date], seed: int = 7) -> dict:
    """Write the demo landing files for every day and return what was written and planted.

    Duplicates are counted in write order (days as given, public before conversations, files in order):
    a record is an exact_dup when its messages already appeared, a whitespace_dup when only their
    normalized form did, so the counts equal what exact dedup over this call's output removes.
    """
    landing = Path(landing)
    srng = random.Random(f"{seed}|shared")
    sseen: set = set()
    shared = [_fresh(srng, sseen), _fresh(srng, sseen)]  # repeated in every source and day
    exact, norm = set(), set()
    summary: dict = {"seed": seed, "days": [], "sources": {"public": {}, "conversations": {}},
                     "totals": {"records": 0, "planted": dict.fromkeys(PLANTED_KINDS, 0)}}
    for day in [d if isinstance(d, date) else date.fromisoformat(d) for d in days]:
        summary["days"].append(day.isoformat())
        for source, build in (("public", _public), ("conversations", _conversations)):
            files = build(random.Random(f"{seed}|{source}|{day.isoformat()}"), day, shared)
            planted = dict.fromkeys(PLANTED_KINDS, 0)
            for name, records in files.items():
                _write_atomic(landing / source / day.isoformat() / name, _encode(name, records))
                for _, key, tag in records:
                    if tag:
                        planted[tag] += 1
                    elif key in exact:
                        planted["exact_dup"] += 1
                    elif _normalized(key) in norm:
                        planted["whitespace_dup"] += 1
                    if key:
                        exact.add(key)
                        norm.add(_normalized(key))
            counts = {name: len(records) for name, records in files.items()}
            summary["sources"][source][day.isoformat()] = {
                "files": counts, "records": sum(counts.values()), "planted": planted}
            summary["totals"]["records"] += sum(counts.values())
            for k, v in planted.items():
                summary["totals"]["planted"][k] += v
    return summary
