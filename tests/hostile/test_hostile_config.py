"""Hostile configuration, generated from the sections' own fields.

What this adds over tests/test_config.py (a hand-written table of about thirty bad values,
one exact message each): the cases here are derived from ``dataclasses.fields`` of every
section class and of a sport profile (an override of a built-in under ``[sports.nba]`` and
a new profile starting from one), from each field's type hint and the ``lo``/``hi``/
``choices``/``about`` that :func:`kmm_interactive.config.setting` stores, so a field added
later is covered without a line here. For each field: every wrong type (text for a number,
a number for text, arrays, tables, booleans, dates), values just past ``lo`` and ``hi``,
NaN and infinities (as TOML floats and as strings), huge integers, negative and malformed
durations, empty and Unicode strings. Each must be refused with a :class:`ConfigError`
whose text names the full dotted key and says what is allowed, quoting the value back
except where it may be a secret (an unknown key or section, a non-table where a table
belongs, anything where an environment variable's name belongs). Also: any nested
TOML-like mapping ends in a Config or a ConfigError (hypothesis), and the same cases, whole
documents cut short, invalid TOML and binary files read through :func:`load_config` give a
ConfigError naming the file.
"""

from __future__ import annotations

import dataclasses
import math
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm_interactive.config import (
    DEFAULT_SPORTS,
    Config,
    ConfigError,
    Seconds,
    config_from_mapping,
    load_config,
)

#: A value that stands for a secret pasted in the wrong place.
SECRET = "sk-live-Zq9-hostile-4242"
#: A sport profile overridden, and a new one starting from a built-in.
BUILT_IN = next(iter(DEFAULT_SPORTS))
NEW_SPORT = "hostile_new_sport"


# ----------------------------------------------------------------------------- the fields


def outcome(load: Callable[[Any], Config], source: Any) -> Config | ConfigError:
    """A Config, or the ConfigError refusing ``source`` (any other exception propagates)."""
    try:
        config = load(source)
    except ConfigError as exc:
        return exc
    assert isinstance(config, Config)
    return config


@dataclass(frozen=True)
class Field:
    """One setting: where it lives (``risk``, ``sports.nba``), its name, type and metadata."""

    section: str
    name: str
    hint: Any
    meta: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def base(self) -> Any:
        """The hint without ``| None``."""
        args = [a for a in get_args(self.hint) if a is not type(None)]
        return args[0] if type(None) in get_args(self.hint) else self.hint

    @property
    def secretive(self) -> bool:
        """Where an environment variable's name belongs: a refused value is never shown."""
        return self.name.endswith("_env")

    def mapping(self, value: Any) -> dict[str, Any]:
        """A configuration that sets only this field to ``value``."""
        return nest(self.section, {self.name: value})


def nest(section: str, table: dict[str, Any]) -> dict[str, Any]:
    if section == f"sports.{NEW_SPORT}":
        return {"sports": {NEW_SPORT: {"base": BUILT_IN, **table}}}
    if section.startswith("sports."):
        return {"sports": {section.split(".", 1)[1]: table}}
    return {section: table}


def sections() -> dict[str, type]:
    """Every section class by where it lives, found from Config's own fields."""
    found: dict[str, type] = {}
    for f in dataclasses.fields(Config):
        hint = get_type_hints(Config)[f.name]
        if get_origin(hint) is Mapping:  # the sport profiles: one overridden, one new
            profile = get_args(hint)[1]
            found[f"{f.name}.{BUILT_IN}"] = profile
            found[f"{f.name}.{NEW_SPORT}"] = profile
        else:
            found[f.name] = hint
    return found


SECTIONS = sections()
FIELDS = [
    Field(section, f.name, get_type_hints(cls)[f.name], f.metadata)
    for section, cls in SECTIONS.items()
    for f in dataclasses.fields(cls)
]


# ----------------------------------------------------------------------------- wrong values

NAN, INF = math.nan, math.inf
#: Wrong for every field but a list of strings: an array, a table, a TOML date-time.
NOT_SCALARS: list[Any] = [[1], [], {"a": 1}, {}, datetime(2026, 1, 1, tzinfo=UTC), date(2026, 1, 1)]
NAN_TEXT = ["nan", "NaN", "inf", "-inf", "+inf", "Infinity"]
BAD_DURATIONS = ["5 parsecs", "1h1h", "5m1h", "-5s", "", "   ", "s", "1e3s", "٣s", "5s 5s", "∞"]


def _past_bounds(f: Field, whole: bool) -> Iterator[tuple[str, Any]]:
    """Numbers just past ``lo`` and ``hi`` (lo itself when it is excluded), and far past."""
    lo, hi = f.meta.get("lo"), f.meta.get("hi")
    if lo is not None:
        if f.meta.get("lo_open"):
            yield "at open lo", lo
        elif whole:
            yield "lo - 1", int(lo) - 1
        elif isinstance(lo, Decimal):
            yield "lo - 1e-20", lo - Decimal("1e-20")
        else:
            yield "just below lo", math.nextafter(float(lo), -INF)
        yield "lo - 10**6", lo - 10**6
    if hi is not None:
        if whole:
            yield "hi + 1", int(hi) + 1
        elif isinstance(hi, Decimal):
            yield "hi + 1e-20", hi + Decimal("1e-20")
        else:
            yield "just above hi", math.nextafter(float(hi), INF)
        yield "10**30", 10**30


def wrong_values(f: Field) -> Iterator[tuple[str, Any]]:
    """(label, value) pairs the field must refuse, from its type and metadata only."""
    base = f.base
    for value in NOT_SCALARS:
        if get_origin(base) is tuple and value == []:
            continue  # an empty list of strings is a list of strings (series = [])
        yield f"{type(value).__name__} {value!r}", value
    if base is bool:
        yield from (("text", "true"), ("int", 1), ("zero", 0), ("float", 1.0), ("nan", NAN))
    elif base is int:
        yield from (("text", "3"), ("fraction", 2.5), ("bool", True), ("bool", False))
        yield from (("nan", NAN), ("inf", INF), ("-inf", -INF), ("empty", ""), ("unicode", "３"))
        yield from ((f"text {t}", t) for t in NAN_TEXT)
        yield from _past_bounds(f, whole=True)
    elif base is float:
        yield from (("text", "0.5"), ("bool", True), ("bool", False), ("empty", ""))
        yield from (("nan", NAN), ("inf", INF), ("-inf", -INF), ("10**400", 10**400))
        yield from ((f"text {t}", t) for t in NAN_TEXT)
        yield from _past_bounds(f, whole=False)
    elif base is Decimal:
        yield from (("word", "lots"), ("empty", ""), ("blank", "  "), ("bool", True))
        yield from (("nan", NAN), ("inf", INF), ("-inf", -INF), ("sNaN", "sNaN"))
        yield from (("arabic digits", "١٠"), ("fullwidth digits", "１０"), ("hex", "0x10"))
        yield from (("10**5000", 10**5000), ("1e999999999", "1e999999999"))
        yield from ((f"text {t}", t) for t in NAN_TEXT)
        for label, value in _past_bounds(f, whole=False):
            yield label, value
            yield f"{label} as text", str(value)
    elif base is Seconds:
        yield from ((f"duration {d!r}", d) for d in BAD_DURATIONS)
        yield from ((f"text {t}", t) for t in NAN_TEXT)
        yield from (("bool", True), ("nan", NAN), ("inf", INF), ("-inf", -INF), ("-5", -5))
        yield from (("-0.001", -0.001), ("10**400", 10**400))
        for label, value in _past_bounds(f, whole=False):
            yield label, value
            text = str(value) if isinstance(value, int) else repr(float(value))
            if value >= 0 and "e" not in text:  # "1e30s" is no duration at all
                yield f"{label} as text", f"{text}s"
    elif base is str:
        yield from (("int", 5), ("float", 1.5), ("bool", True), ("nan", NAN), ("inf", INF))
        yield from (("empty", ""), ("blank", " \t "))
        choices = f.meta.get("choices")
        if choices:
            first = choices[0]
            yield from (("not a choice", "not-a-choice"), ("upper case", first.upper()))
            yield from (("accent", first + "\u0301"), ("zero width", first + "\u200b"))
            yield from (("text nan", "nan"), ("text inf", "inf"), ("emoji", "🏀"))
    elif get_origin(base) is tuple:
        yield from (("bare text", "pinnacle"), ("int", 5), ("bool", True), ("nan", NAN))
        yield from (("[int]", [1]), ("[empty]", [""]), ("[blank]", ["  "]), ("[[]]", [[]]))
        yield from (("[nan]", [NAN]), ("[bool]", [True]), ("[table]", [{}]))
    else:
        pytest.fail(f"no wrong values for a field of type {f.hint!r}: add them here")


@dataclass(frozen=True)
class Case:
    field: Field
    label: str
    value: Any

    @property
    def id(self) -> str:
        return f"{self.field.key}={self.label}"


CASES = [Case(f, label, value) for f in FIELDS for label, value in wrong_values(f)]


def check_refusal(case: Case, err: ConfigError) -> None:
    """The refusal names the dotted key, says what is allowed, and quotes the value back
    unless it may be a secret."""
    f, message = case.field, str(err)
    assert err.key == f.key, message
    assert message.startswith(f.key), message
    assert err.problem, message
    # What is allowed: the allowed text, or a problem that states the rule ("must be ...").
    assert "(allowed: " in message or err.problem.startswith("must be"), message
    choices = f.meta.get("choices")
    if choices and isinstance(case.value, str):
        assert all(c in message for c in choices), message
    lo, hi = f.meta.get("lo"), f.meta.get("hi")
    if case.label.startswith(("lo", "at open lo", "just below lo")) and lo is not None:
        assert f"{lo} " in message, message  # "0.0 < gamma <= 1.0"
    if case.label.startswith(("hi", "just above hi", "10**30")) and hi is not None:
        assert f"<= {hi}" in message, message
    if f.secretive:
        assert "not shown" in message, message
        assert err.value is not case.value
        if isinstance(case.value, str) and len(case.value.strip()) > 2:
            assert case.value.strip() not in message
    else:
        assert message.startswith(f"{f.key} = "), f"the value is quoted back: {message}"
    assert len(message) < 1000, "a refused value is cut short when quoted"


def test_every_field_of_every_section_gets_cases() -> None:
    covered = {c.field.key for c in CASES}
    assert covered == {f.key for f in FIELDS}
    assert {s.split(".")[0] for s in SECTIONS} == {f.name for f in dataclasses.fields(Config)}
    per_field = min(sum(c.field == f for c in CASES) for f in FIELDS)
    assert per_field >= 12, "every field gets every kind of wrong value"
    assert len(CASES) > 1000


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_wrong_value_is_refused_naming_the_dotted_key_and_what_is_allowed(case: Case) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(case.field.mapping(case.value))
    check_refusal(case, caught.value)


def test_each_bound_itself_is_accepted_so_the_cases_past_it_are_the_bound() -> None:
    """The cases just past lo and hi are wrong only because the bound is where the metadata
    says: the bound itself (unless excluded) is taken."""
    for f in FIELDS:
        for bound in ("lo", "hi"):
            value = f.meta.get(bound)
            if value is None or (bound == "lo" and f.meta.get("lo_open")):
                continue
            if f.base is Decimal:
                value = str(value)
            result = outcome(config_from_mapping, f.mapping(value))
            # Only a rule across fields may object (a cap below the quote size, more books
            # than are pulled): never this field's own range.
            if isinstance(result, ConfigError):
                assert not result.problem.startswith("must be"), str(result)


# ----------------------------------------------------------------------------- secrets


def test_an_unknown_key_in_any_section_is_refused_without_its_value() -> None:
    for section, cls in SECTIONS.items():
        names = [f.name for f in dataclasses.fields(cls)]
        typos = ["api_key", "token", *(n + "s" for n in names), *(n.upper() for n in names)]
        for typo in (t for t in typos if t not in names):
            with pytest.raises(ConfigError) as caught:
                config_from_mapping(nest(section, {typo: SECRET}))
            message = str(caught.value)
            assert message.startswith(f"{section}.{typo}: unknown key"), message
            assert "not shown" in message
            assert all(n in message for n in names), "the allowed keys are listed"
            assert SECRET not in message
            assert SECRET not in repr(caught.value)
            assert caught.value.value is not SECRET


@pytest.mark.parametrize("value", [SECRET, 5, 1.5, True, [SECRET], [{"a": SECRET}]])
def test_a_non_table_where_a_table_belongs_is_refused_without_its_value(value: Any) -> None:
    places: list[tuple[dict[str, Any], str]] = [({s: value}, s) for s in SECTIONS if "." not in s]
    places += [({"sports": value}, "sports"), ({"sports": {BUILT_IN: value}}, f"sports.{BUILT_IN}")]
    for data, key in places:
        with pytest.raises(ConfigError) as caught:
            config_from_mapping(data)
        message = str(caught.value)
        assert message.startswith(f"{key}: must be a table"), message
        assert "not shown" in message, message
        assert repr(value) not in message
        assert SECRET not in message
        assert caught.value.value is not value


@pytest.mark.parametrize("value", [SECRET, {"key": SECRET}, [SECRET]])
def test_an_unknown_section_is_refused_without_its_value(value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"kalshi": value})
    message = str(caught.value)
    assert message.startswith("kalshi: unknown section"), message
    assert "not shown" in message
    assert all(s.split(".")[0] in message for s in SECTIONS), "the sections are listed"
    assert SECRET not in message
    assert SECRET not in repr(caught.value)


@pytest.mark.parametrize(
    "value", [SECRET, "MY KEY", "1ABC", "A-B", "ÄPI_KEY", "A\nB", [SECRET], 5, True, NAN]
)
def test_a_bad_variable_name_is_refused_without_its_value(value: Any) -> None:
    env_fields = [f for f in FIELDS if f.secretive]
    assert env_fields, "the configuration names its variables in *_env keys"
    for f in env_fields:
        with pytest.raises(ConfigError) as caught:
            config_from_mapping(f.mapping(value))
        err = caught.value
        assert str(err).startswith(f"{f.key}: "), str(err)
        assert "not shown" in str(err)
        assert SECRET not in str(err)
        assert SECRET not in repr(err)
        assert err.value is not value
        assert err.__cause__ is None, "no chained exception shows it"
        assert err.__suppress_context__, "no chained exception shows it"


def test_elsewhere_the_refused_value_is_quoted_back() -> None:
    """Text refused for what it is comes back as given (cut short); text that reads as a
    number out of range comes back as the number read."""
    quoted = [c for c in CASES if not c.field.secretive and isinstance(c.value, str) and c.value]
    assert len(quoted) > 100
    for case in quoted:
        with pytest.raises(ConfigError) as caught:
            config_from_mapping(case.field.mapping(case.value))
        err, message = caught.value, str(caught.value)
        if err.problem.startswith(("must be >", "must be <")):
            assert isinstance(err.value, float | Decimal), message
            assert message.startswith(f"{case.field.key} = {err.value!r}"[:70]), message
        else:
            assert err.value == case.value, message
            assert repr(case.value)[:60] in message, (case.id, message)


# ----------------------------------------------------------------------------- any mapping

FIELD_NAMES = sorted({f.name for f in FIELDS})
TOML_SCALARS = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["5m", "1h30m", "0.5", "250", "demo", "nba", "pinnacle", *BAD_DURATIONS])
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.dates()
    | st.times()
    | st.decimals(allow_nan=True, allow_infinity=True).map(str)
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
SPORT_NAMES = st.sampled_from([*list(DEFAULT_SPORTS)[:3], NEW_SPORT, "", "ü"])
SPORT_TABLE = st.dictionaries(
    st.sampled_from([*FIELD_NAMES, "base"]) | st.text(max_size=5),
    st.sampled_from([*DEFAULT_SPORTS, "chess"]) | TOML_VALUES,
    max_size=4,
)
SECTION_TABLE = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(max_size=5), TOML_VALUES, max_size=4
)
TOP = st.dictionaries(
    st.sampled_from([s for s in SECTIONS if "." not in s]) | st.text(max_size=6),
    SECTION_TABLE | TOML_VALUES,
    max_size=4,
)


@settings(max_examples=300)
@given(TOP, st.none() | st.dictionaries(SPORT_NAMES, SPORT_TABLE | TOML_VALUES, max_size=3))
def test_any_nested_mapping_is_a_config_or_a_config_error(
    data: dict[str, Any], sports: dict[str, Any] | None
) -> None:
    if sports is not None:
        data = {**data, "sports": sports}
    result = outcome(config_from_mapping, data)
    if isinstance(result, ConfigError):
        message = str(result)
        assert message.startswith(result.key), message
        head = result.key.split(".")[0]
        assert head in {*(s.split(".")[0] for s in SECTIONS), *map(str, data)}, message
        assert result.problem
        assert len(message) < 2000
    else:
        assert result == config_from_mapping(data), "the same mapping, the same Config"


# ----------------------------------------------------------------------------- files


def toml_value(value: Any) -> str | None:
    """``value`` as TOML, or None when TOML cannot hold it (a 10**30 integer)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Decimal):
        return toml_value(str(value))
    if isinstance(value, str):
        escaped = "".join(
            c if c not in '"\\' and (c.isprintable() or c == " ") else f"\\u{ord(c):04x}"
            for c in value
        )
        return f'"{escaped}"'
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        items = [toml_value(v) for v in value]
        return None if None in items else "[" + ", ".join(i for i in items if i) + "]"
    if isinstance(value, dict):
        items = [f"{k} = {toml_value(v)}" for k, v in value.items()]
        return None if any(i.endswith("None") for i in items) else "{" + ", ".join(items) + "}"
    return None


def toml_document(data: Mapping[str, Any]) -> str:
    """Tables of scalars (``[theo]``, ``[sports.nba]``) as TOML text."""
    lines: list[str] = []

    def table(header: str, values: Mapping[str, Any]) -> None:
        lines.append(f"[{header}]")
        for key, value in values.items():
            if isinstance(value, dict):
                table(f"{header}.{key}", value)
                continue
            text = toml_value(value)
            if text is not None:
                lines.append(f"{key} = {text}")

    for name, values in data.items():
        table(name, values)
    return "\n".join(lines) + "\n"


def default_document() -> str:
    """Every setting of the built-in defaults, written out as a kmm.toml would be."""
    config = Config()
    data: dict[str, Any] = {}
    for name, section in vars(config).items():
        items = section.items() if name == "sports" else [(None, section)]
        for sport, obj in items:
            values = {
                f.name: str(v) if isinstance(v, Decimal) else list(v) if isinstance(v, tuple) else v
                for f in dataclasses.fields(obj)
                if (v := getattr(obj, f.name)) is not None
            }
            if sport is None:
                data[name] = values
            else:
                data.setdefault(name, {})[sport] = values
    return toml_document(data)


def test_the_defaults_written_out_read_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "kmm.toml"
    path.write_text(default_document(), encoding="utf-8")
    assert load_config(path) == Config()


def test_the_wrong_values_in_a_file_are_refused_naming_the_file_and_the_key(
    tmp_path: Path,
) -> None:
    checked = 0
    for i, case in enumerate(CASES):
        text = toml_value(case.value)
        if text is None or i % 3:  # a third of them: a file each
            continue
        data = case.field.mapping(case.value)
        document = toml_document(data)
        path = tmp_path / f"case-{i}.toml"
        path.write_text(document, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        message = str(caught.value)
        assert str(path) in message, message
        if caught.value.key == str(path):  # TOML cannot hold the value (an "inf" string)
            assert "is not valid TOML" in message, message
        else:
            check_refusal(case, caught.value)
        checked += 1
    assert checked > 250


DOCUMENT = default_document()


@pytest.mark.parametrize("cut", range(0, len(DOCUMENT), max(1, len(DOCUMENT) // 97)))
def test_a_document_cut_short_is_a_config_or_an_error_naming_the_file(
    tmp_path: Path, cut: int
) -> None:
    path = tmp_path / "kmm.toml"
    path.write_text(DOCUMENT[:cut], encoding="utf-8")
    result = outcome(load_config, path)
    if isinstance(result, ConfigError):
        assert str(path) in str(result), str(result)
        assert result.problem


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not UTF-8 text"),
        (bytes(range(256)), "is not UTF-8 text"),
        ("[theo]\nanchor_weight = 0.5\n".encode("utf-16"), "is not UTF-8 text"),
        (b"\x00" * 32, "is not valid TOML"),
        (b"[theo\nanchor_weight = 0.5", "is not valid TOML"),
        (b"[theo]\nanchor_weight = ", "is not valid TOML"),
        (b"[theo]\nanchor_weight = 0.5\nanchor_weight = 0.6", "is not valid TOML"),
        (b'[exchange]\nenv = "demo', "is not valid TOML"),
        (b"= 1", "is not valid TOML"),
        (b"[theo]\nmax_age = 1979-05-27T07:32:00Z", "max_age"),
        (b"[[theo]]\nanchor = 'x'", "must be a table"),
        (b"[risk]\nmax_game_loss = " + b"9" * 5000, "is not valid TOML"),
        (b"[theo]\nanchor_weight = " + b"9" * 400, "theo.anchor_weight"),
    ],
    ids=[
        "png", "all bytes", "utf-16", "nul bytes", "unclosed header", "no value", "twice",
        "unclosed string", "no key", "a date for a duration", "array of tables",
        "5000-digit int", "400-digit int",
    ],
)  # fmt: skip
def test_a_file_that_is_not_a_configuration_is_refused_naming_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "kmm.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message, message
    assert problem in message, message
    assert len(message) < 2000


def test_a_path_that_is_not_a_readable_file_is_refused_naming_it(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing.toml", tmp_path / "missing" / "kmm.toml"):
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(caught.value).startswith(f"{path}: cannot be read"), str(caught.value)


def test_a_secret_in_a_file_stays_hidden_when_the_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "kmm.toml"
    for text in (
        f'[exchange]\nkey_id_env = "{SECRET}"\n',
        f'[odds]\napi_key = "{SECRET}"\n',
        f'odds = "{SECRET}"\n',
        f'[sports.{BUILT_IN}]\ntoken = "{SECRET}"\n',
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(path) in str(caught.value)
        assert SECRET not in str(caught.value)
        assert SECRET not in repr(caught.value)


# ----------------------------------------------------------------------------- URLs

URL_FIELDS = [f for f in FIELDS if f.name.endswith("url")]
SCHEME_AND_PATH = {"rest_url": ("https", "/trade-api/v2"), "ws_url": ("wss", "/trade-api/ws/v2")}


def url_table(f: Field, url: str) -> dict[str, Any]:
    """The section's table with ``url`` in ``f`` (and, for an exchange host, a good other
    host and an env that takes overrides)."""
    if f.section != "exchange":
        return {f.name: url}
    good = {name: f"{scheme}://h{path}" for name, (scheme, path) in SCHEME_AND_PATH.items()}
    return {"env": "demo", **good, f.name: url}


@pytest.mark.parametrize(
    "template",
    [
        "{scheme}://[::1{path}",
        "{scheme}://[not-ipv6]{path}",
        "{scheme}://exa\uff03mple.com{path}",
        "{scheme}://host:99999999{path}",
        "{scheme}://host:port{path}",
        "{scheme}://host:-1{path}",
        "{scheme}://{path}",
        "ftp://host{path}",
        "host{path}",
        "h" * 5000,
    ],
)
def test_a_url_that_cannot_be_used_is_refused_naming_its_key(template: str) -> None:
    assert {f.key for f in URL_FIELDS} >= {"exchange.rest_url", "exchange.ws_url", "odds.base_url"}
    for f in URL_FIELDS:
        scheme, path = SCHEME_AND_PATH.get(f.name, ("https", ""))
        url = template.format(scheme=scheme, path=path)
        with pytest.raises(ConfigError) as caught:
            config_from_mapping(nest(f.section, url_table(f, url)))
        message = str(caught.value)
        assert message.startswith(f"{f.key} = "), message
        assert "is not a usable URL" in message, message
        assert f"{scheme}://<host>{path}" in message, message


def test_any_character_in_a_host_is_a_config_or_a_config_error() -> None:
    for c in string.punctuation + "\t\x00\x7f\u3002\uff0f\u2100\ufe6b":
        for f in URL_FIELDS:
            scheme, path = SCHEME_AND_PATH.get(f.name, ("https", ""))
            table = url_table(f, f"{scheme}://h{c}x{path}")
            result = outcome(config_from_mapping, nest(f.section, table))
            if isinstance(result, ConfigError):
                assert str(result).startswith(f"{f.key} = "), str(result)
