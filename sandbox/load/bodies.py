"""Deterministic request bodies: person records like json-generator output, four target sizes.

The original stair-stepper sent json-generator files of about 30 kB, 300 kB, 600 kB and 2 MB.
We regenerate equivalents from a fixed seed so the committed `plans/*.json` are reproducible:
`python -m sandbox.load.bodies [DIR]` rewrites them (default `plans/`).
"""

from __future__ import annotations

import json
import random
import sys
import uuid
from pathlib import Path
from typing import Any

PLAN_TARGET_BYTES = {"tiny": 31_700, "small": 307_000, "medium": 605_000, "large": 1_970_000}
"""Serialised body size each plan aims at; `make_body` lands within TOLERANCE of it."""

TOLERANCE = 0.03

EVENT_TYPE = "mem-test"

_INDENT = 2  # json-generator pretty-prints with two spaces
_RECORD_DEPTH = 3  # records sit in {"payload": {"body": [ ... ]}}

_FIRST_NAMES = (
    "Alice", "Bernard", "Carmen", "Dolores", "Edgar", "Fiona", "Gustavo", "Helena", "Ivan",
    "Juliet", "Kurt", "Lena", "Marcus", "Nadia", "Oscar", "Petra", "Quentin", "Rosa", "Stefan",
    "Tamara", "Ulrich", "Vera", "Walter", "Ximena", "Yusuf", "Zelda",
)  # fmt: skip
_LAST_NAMES = (
    "Abbott", "Barker", "Castro", "Dunlap", "Ellison", "Fuller", "Gates", "Holloway", "Ingram",
    "Jarvis", "Knox", "Lambert", "Mercer", "Nolan", "Osborn", "Pruitt", "Quinn", "Rivers",
    "Sampson", "Thornton", "Underwood", "Vance", "Whitaker", "Yates", "Zamora",
)  # fmt: skip
_COMPANY_WORDS = (
    "Zentix", "Quarex", "Isologia", "Geekko", "Comtrail", "Orbaxter", "Netplode", "Xumonk",
    "Exoswitch", "Uberlux", "Plasmos", "Kinetica", "Zillacon", "Digigen", "Terragen", "Vortexaco",
)  # fmt: skip
_STREETS = (
    "Dooley Street", "Sutton Street", "Amber Street", "Hampton Place", "Kent Avenue",
    "Bridge Street", "Lincoln Road", "Seigel Court", "Verona Place", "Ocean Parkway",
)  # fmt: skip
_CITIES = (
    "Lindcove", "Bowmansville", "Hatteras", "Greenock", "Elfrida", "Sunnyside", "Brambleton",
    "Wedgewood", "Crumpler", "Riegelwood", "Harborton", "Gardiner",
)  # fmt: skip
_STATES = (
    "Alabama", "Oregon", "Nevada", "Ohio", "Kansas", "Maine", "Utah", "Iowa", "Texas", "Vermont",
)  # fmt: skip
_LOREM_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris "
    "nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse "
    "cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui "
    "officia deserunt mollit anim id est laborum"
)
_LOREM = tuple(_LOREM_TEXT.split())
_EYE_COLORS = ("blue", "brown", "green")
_FRUITS = ("apple", "banana", "strawberry")


def _lorem(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    length = -1
    while length < chars:
        word = rng.choice(_LOREM)
        words.append(word)
        length += len(word) + 1
    return " ".join(words).capitalize() + "."


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"


def make_record(rng: random.Random, index: int) -> dict[str, Any]:
    """One json-generator style person record, drawn from `rng`."""
    first, last = _name(rng).split()
    company = rng.choice(_COMPANY_WORDS)
    cents = rng.randrange(100_000, 400_000)
    tz_hours = rng.randrange(-12, 13)
    return {
        "_id": f"{rng.getrandbits(96):024x}",
        "index": index,
        "guid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "isActive": rng.random() < 0.5,
        "balance": f"${cents // 100:,}.{cents % 100:02d}",
        "picture": "http://placehold.it/32x32",
        "age": rng.randrange(20, 41),
        "eyeColor": rng.choice(_EYE_COLORS),
        "name": f"{first} {last}",
        "gender": rng.choice(("female", "male")),
        "company": company.upper(),
        "email": f"{first.lower()}{last.lower()}@{company.lower()}.com",
        "phone": f"+1 ({rng.randrange(800, 1000)}) {rng.randrange(400, 600)}-"
        f"{rng.randrange(1000, 10000)}",
        "address": f"{rng.randrange(100, 1000)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}, "
        f"{rng.choice(_STATES)}, {rng.randrange(1000, 10000)}",
        "about": _lorem(rng, 300),
        "registered": f"{rng.randrange(2014, 2024)}-{rng.randrange(1, 13):02d}-"
        f"{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:"
        f"{rng.randrange(60):02d} {'-' if tz_hours < 0 else '+'}{abs(tz_hours):02d}:00",
        "latitude": round(rng.uniform(-90, 90), 6),
        "longitude": round(rng.uniform(-180, 180), 6),
        "tags": [rng.choice(_LOREM) for _ in range(7)],
        "friends": [{"id": i, "name": _name(rng)} for i in range(3)],
        "greeting": f"Hello, {first} {last}! You have {rng.randrange(1, 11)} unread messages.",
        "favoriteFruit": rng.choice(_FRUITS),
    }


def _serialise(records: list[dict[str, Any]]) -> bytes:
    document = {"eventType": EVENT_TYPE, "payload": {"body": records}}
    return json.dumps(document, indent=_INDENT).encode() + b"\n"


def _embedded_size(record: dict[str, Any]) -> int:
    """Bytes the record adds to the body: its lines are indented to its depth, plus ',\\n'."""
    text = json.dumps(record, indent=_INDENT)
    return len(text) + (text.count("\n") + 1) * _INDENT * _RECORD_DEPTH + 2


def make_body(tag: str) -> bytes:
    """The request body for plan `tag`: as many records as bring it closest to its target size."""
    try:
        target = PLAN_TARGET_BYTES[tag]
    except KeyError:
        raise ValueError(
            f"unknown plan {tag!r}; expected one of: {', '.join(PLAN_TARGET_BYTES)}"
        ) from None
    rng = random.Random(f"stair-stepper:{tag}")
    records: list[dict[str, Any]] = []
    estimate = len(_serialise([]))
    while estimate < target:
        record = make_record(rng, len(records))
        records.append(record)
        estimate += _embedded_size(record)
    body = _serialise(records)
    shorter = _serialise(records[:-1])
    if abs(len(shorter) - target) < abs(len(body) - target):
        body = shorter
    return body


def write_plans(directory: Path) -> list[Path]:
    """Write `<tag>.json` for every plan into `directory`; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for tag in PLAN_TARGET_BYTES:
        path = directory / f"{tag}.json"
        path.write_bytes(make_body(tag))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print("usage: python -m sandbox.load.bodies [DIR]", file=sys.stderr)
        return 2
    directory = Path(args[0] if args else "plans")
    for path in write_plans(directory):
        print(f"{path}  {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
