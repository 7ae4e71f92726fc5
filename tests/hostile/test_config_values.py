"""Hostile configuration: every field of every section, fed every kind of wrong value.

tests/test_config.py holds a hand-written table of about thirty bad values, one message
each. This file generates its cases from the sections' own fields (type hints and the
``lo``/``hi``/``choices`` of :func:`config.setting`), so a field added later is covered
without a line here: wrong types, NaN and infinities, values just past a bound, malformed
durations, empty and unicode strings. Each must be a :class:`ConfigError` that names the
dotted key and says what is allowed, quoting the value back except where it may be a
secret. Arbitrary nested tables, truncated copies of the shipped kmm.toml and files that
are not text end in a Config or a ConfigError, never in another exception.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm_interactive.config import (
    DEFAULT_SPORTS,
    Config,
    ConfigError,
    Seconds,
    SportProfile,
    config_from_mapping,
    load_config,
)

SHIPPED = Path(__file__).resolve().parents[2] / "kmm.toml"
#: Every section's class, by its name in kmm.toml (the sport profiles under one of them).
SECTIONS: dict[str, type] = {
    f.name: get_type_hints(Config)[f.name] for f in dataclasses.fields(Config) if f.name != "sports"
}
SECTIONS["sports.nba"] = SportProfile

NOT_A_DURATION = ["5 parsecs", "1h1h", "5m1h", "-5s", "", "s", "m5", "5 s s", "1e3s", "∞s"]
NOT_TEXT = [5, 1.5, True, [], {}, ["a"]]
#: Values no number field takes (a bool is not a number, NaN/inf are not finite).
NOT_A_NUMBER: list[Any] = ["0.5", "", True, False, [], {}, [1], math.nan, math.inf, -math.inf]


def _base(hint: Any) -> tuple[Any, bool]:
    """The hint without ``| None``, and whether None is allowed."""
    if get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint):
        (inner,) = [a for a in get_args(hint) if a is not type(None)]
        return inner, True
    return hint, False


def _past_bounds(meta: dict[str, Any], whole: bool) -> Iterator[Any]:
    lo, hi = meta.get("lo"), meta.get("hi")
    step: Any = 1 if whole else Decimal("0.001") if isinstance(lo or hi, Decimal) else 1e-6
    if lo is not None:
        yield lo if meta.get("lo_open") else lo - step
        yield lo - 10**6
    if hi is not None:
        yield hi + step
        yield 10**30


def bad_values(hint: Any, meta: dict[str, Any]) -> Iterator[Any]:
    """Values the field must refuse, from its type and bounds."""
    base, _ = _base(hint)
    if base is Seconds:
        yield from NOT_A_DURATION
        yield from (True, [], {}, -1, math.nan, math.inf, -math.inf)
        yield from (v for v in _past_bounds(meta, whole=False) if v < 0 or meta.get("hi"))
    elif base is bool:
        yield from ("yes", "true", 1, 0, 1.0, [], {})
    elif base is int:
        yield from (1.5, "3", True, [], {}, math.nan, math.inf)
        yield from _past_bounds(meta, whole=True)
    elif base is float:
        yield from NOT_A_NUMBER
        yield from _past_bounds(meta, whole=False)
    elif base is Decimal:
        yield from ("abc", "NaN", "Infinity", "-Infinity", "1e999999999999", True, [], {})
        yield from _past_bounds(meta, whole=False)
    elif base is str:
        yield from ("", "   ", *NOT_TEXT)
        if meta.get("choices"):
            yield from ("not-a-choice", meta["choices"][0].upper() + "X")
    elif get_origin(base) is tuple:
        yield from ("pinnacle", [1], [""], ["  "], [None], {}, 5)
    else:
        pytest.fail(f"no bad values for a field of type {hint!r}: add them here")


def cases() -> Iterator[tuple[str, str, Any]]:
    for section, cls in SECTIONS.items():
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            for value in bad_values(hints[f.name], dict(f.metadata)):
                yield section, f.name, value


CASES = list(cases())


def mapping(section: str, key: str, value: Any) -> dict[str, Any]:
    if section.startswith("sports."):
        return {"sports": {section.split(".", 1)[1]: {key: value}}}
    return {section: {key: value}}


def test_every_field_gets_cases() -> None:
    covered = {(s, k) for s, k, _ in CASES}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert (section, f.name) in covered, f"{section}.{f.name} has no bad value"
    assert len(CASES) > 300


@pytest.mark.parametrize(
    ("section", "key", "value"), CASES, ids=[f"{s}.{k}={v!r:.20}" for s, k, v in CASES]
)
def test_a_wrong_value_is_refused_naming_the_key_and_what_is_allowed(
    section: str, key: str, value: Any
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(mapping(section, key, value))
    message = str(caught.value)
    assert message.startswith(f"{section}.{key}"), message
    assert caught.value.problem
    if key.endswith("_env") and isinstance(value, str) and value.strip():
        # Text where a variable's name belongs may be the secret itself.
        assert "not shown" in message
        assert value.strip() not in message
    elif not key.endswith("_env"):
        assert message.startswith(f"{section}.{key} = "), "the value is quoted back"


def test_an_unknown_key_or_section_is_refused_without_its_value() -> None:
    secret = "sk-live-0123456789abcdef"
    for data, key in (
        ({"risk": {"api_key": secret}}, "risk.api_key"),
        ({"kalshi": {"private_key": secret}}, "kalshi"),
        ({"sports": {"nba": {"token": secret}}}, "sports.nba.token"),
        ({"odds": secret}, "odds"),
    ):
        with pytest.raises(ConfigError) as caught:
            config_from_mapping(data)
        assert str(caught.value).startswith(key)
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
        assert caught.value.value is not secret


TOML_SCALARS = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=12)
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
KEYS = st.sampled_from(
    [
        *SECTIONS,
        "sports",
        "trading",
        *(f.name for c in SECTIONS.values() for f in dataclasses.fields(c)),
    ]
)


@settings(max_examples=400)
@given(
    st.dictionaries(
        KEYS,
        st.dictionaries(KEYS | st.text(max_size=6), TOML_VALUES, max_size=4) | TOML_VALUES,
        max_size=4,
    )
)
def test_any_nested_table_is_a_config_or_a_config_error(data: dict[str, Any]) -> None:
    try:
        config = config_from_mapping(data)
    except ConfigError as exc:
        problem = str(exc)
    else:
        assert isinstance(config, Config)
        return
    assert problem.strip()


def toml_value(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def test_the_same_values_in_a_file_are_refused_the_same_way(tmp_path: Path) -> None:
    checked = 0
    for i, (section, key, value) in enumerate(CASES):
        if (
            isinstance(value, dict | list)
            or value is None
            or (isinstance(value, int) and abs(value) >= 2**63)
        ):
            continue  # not a TOML scalar
        path = tmp_path / f"case{i}.toml"
        path.write_text(f"[{section}]\n{key} = {toml_value(value)}\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert str(caught.value).startswith(f"{section}.{key}")
        checked += 1
    assert checked > 200


@settings(max_examples=100)
@given(st.data())
def test_a_truncated_shipped_file_is_a_config_or_an_error_naming_the_file(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    path = tmp_path_factory.mktemp("cut") / "kmm.toml"
    path.write_text(text[:cut], encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        problem = str(exc)
    else:
        return
    assert problem.startswith(str(path)) or problem.split(" ")[0].count(".") >= 1, problem


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b"\x00\x01\xff\xfe binary",
        "\ufeff[theo]\n".encode("utf-16"),
    ],
    ids=["png", "binary", "utf-16"],
)
def test_a_file_that_is_not_utf8_text_is_a_config_error_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "kmm.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))
    assert "UTF-8" in str(caught.value)


def test_a_sport_profile_of_every_built_in_takes_the_same_checks() -> None:
    for name in DEFAULT_SPORTS:
        with pytest.raises(ConfigError, match=rf"^sports\.{name}\.gamma"):
            config_from_mapping({"sports": {name: {"gamma": math.nan}}})
