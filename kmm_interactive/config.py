"""Configuration: typed, frozen, validated sections read from TOML (see ``kmm.toml``).

Every value is checked where it enters, whether from a file or from Python
(``dataclasses.replace(profile, gamma=0.05)`` validates too). A bad value raises
:class:`ConfigError` naming the key, the value and what is allowed; an unknown key is an
error too, because a typo that silently keeps a default is worse than a refusal.

Units: money in dollars (``Decimal``), durations in seconds (a number, or a string such as
``"90s"``, ``"5m"``, ``"1h30m"``), γ per dollar, A in fills per second at zero distance, k
per cent of distance, σ in dollars per √second.

Sport profiles follow the seed: niche or insider-prone sports (esports, college lacrosse
and baseball, EuroLeague) are more risk-averse (higher γ, smaller cap) than the major
leagues, and boxing is treated as risky (weigh-ins, disqualifications, voided fights).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType, NoneType, UnionType
from typing import Any, Final, NewType, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from kmm_interactive.pricing.consensus import ConsensusParams
from kmm_interactive.pricing.devig import DevigMethod
from kmm_interactive.pricing.intensity import IntensityPrior
from kmm_interactive.pricing.quote_table import MAX_K, MAX_Q, QuoteModel

#: A duration in seconds; in TOML a number or a string like "90s", "5m", "1h30m", "250ms".
Seconds = NewType("Seconds", float)


class ConfigError(ValueError):
    """A configuration value that is missing, unknown, malformed or out of range.

    The refused value is quoted back, except where it may be a secret in the wrong place
    (an unknown key or section, a variable's name, a table expected): there the value is
    neither shown nor kept, since a key pasted into kmm.toml would otherwise be printed by
    ``kmm check-config`` and ``kmm run``. A value refused in a file (``file``) ends by
    naming the file."""

    def __init__(
        self, key: str, value: object, problem: str, allowed: str = "", *, file: str = ""
    ) -> None:
        self.key, self.value, self.problem, self.allowed = key, value, problem, allowed
        self.file = file
        if value is _MISSING:
            text = f"{key}: {problem}"
        elif value is _HIDDEN:
            text = f"{key}: {problem} (its value is not shown: it may be a secret)"
        else:
            text = f"{key} = {_shown(value)}: {problem}"
        text += f" (allowed: {allowed})" if allowed else ""
        super().__init__(text + (f"; in {file}" if file and file != key else ""))

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key placed under a section."""
        return ConfigError(
            f"{prefix}.{self.key}", self.value, self.problem, self.allowed, file=self.file
        )

    def in_file(self, file: str) -> ConfigError:
        """The same error, saying which file the value was read from."""
        return ConfigError(self.key, self.value, self.problem, self.allowed, file=file)


_MISSING: Final = object()
#: In place of a refused value that is not to be shown (class doc).
_HIDDEN: Final = object()
#: The longest refused value quoted back in full.
_SHOWN_CHARS: Final = 80


def _shown(value: object) -> str:
    """A refused value as quoted back: its repr, cut short (a pasted blob, a huge number)."""
    try:
        text = repr(value)
    except ValueError:  # an integer with more digits than Python will print
        return "<an integer too large to print>"
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


# A duration is number-unit parts, units largest first and each at most once ("1h30m").
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?) *(ms|d|h|m|s)(?![A-Za-z]) *", re.ASCII)
_UNIT_SECONDS: Final = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_duration(value: object, key: str = "duration") -> float:
    """Seconds from a number or a string such as "90s", "5m", "1h30m", "250ms"."""
    if isinstance(value, bool):
        raise ConfigError(key, value, "not a duration", "seconds, or e.g. '90s', '5m', '1h30m'")
    parts = _duration_parts(value) if isinstance(value, str) else None
    if isinstance(value, int | float):
        seconds = float(value) if abs(value) < 1e300 else math.inf  # an int beyond any float
    elif parts:
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    else:
        raise ConfigError(key, value, "not a duration", "seconds, or e.g. '90s', '5m', '1h30m'")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(key, value, "must be a finite, non-negative duration")
    return seconds


def _duration_parts(text: str) -> list[tuple[str, str]] | None:
    """The (number, unit) parts of a duration string, or None if it is not one."""
    text = text.strip()
    parts: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            return None
        parts.append((match[1], match[2]))
        position = match.end()
    order = list(_UNIT_SECONDS)
    ranks = [order.index(unit) for _, unit in parts]
    return parts if parts and ranks == sorted(set(ranks)) else None


def setting(
    default: Any = dataclasses.MISSING,
    *,
    lo: float | Decimal | None = None,
    hi: float | Decimal | None = None,
    lo_open: bool = False,
    choices: tuple[str, ...] | None = None,
    about: str = "",
) -> Any:
    """A validated field: range ``lo``…``hi`` (``lo_open`` excludes lo), or ``choices``."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "about": about}
    if isinstance(default, tuple | list | dict):
        value = default
        return field(default_factory=lambda: value, metadata=meta)
    return field(default=default, metadata=meta)


def _allowed(name: str, meta: Mapping[str, Any]) -> str:
    if meta.get("choices"):
        text = ", ".join(meta["choices"])
    elif meta.get("lo") is not None or meta.get("hi") is not None:
        left = "" if meta["lo"] is None else f"{meta['lo']} {'<' if meta['lo_open'] else '<='} "
        right = "" if meta["hi"] is None else f" <= {meta['hi']}"
        text = f"{left}{name}{right}"
    else:
        text = ""
    about = meta.get("about", "")
    return f"{text}, {about}" if text and about else text or about


def _coerce(name: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    allowed = _allowed(name, meta)
    if get_origin(hint) is UnionType and NoneType in get_args(hint):
        if value is None:
            return None
        (hint,) = [a for a in get_args(hint) if a is not NoneType]
    if hint is Seconds:
        try:
            return Seconds(parse_duration(value, name))
        except ConfigError as exc:  # a negative or infinite one: say the field's range
            raise ConfigError(name, value, exc.problem, exc.allowed or allowed) from None
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(name, value, "must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, value, "must be a whole number", allowed)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(name, value, "must be a finite number", allowed)
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(name, value, "must be a finite number", allowed)
        return number
    if hint is Decimal:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float | str | Decimal)
            or (isinstance(value, str) and not value.isascii())  # "١٠" would read as 10
        ):
            raise ConfigError(name, value, "must be an amount in dollars", allowed)
        try:
            # An int as is: str() of one with thousands of digits raises ValueError.
            amount = Decimal(value) if isinstance(value, int) else Decimal(str(value).strip())
        except InvalidOperation:
            raise ConfigError(name, value, "must be an amount in dollars", allowed) from None
        if not amount.is_finite():
            raise ConfigError(name, value, "must be a finite amount", allowed)
        return amount
    if hint is str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(name, value, "must be a non-empty string", allowed)
        return value.strip()
    if get_origin(hint) is tuple:
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, str) and v.strip() for v in value
        ):
            raise ConfigError(name, value, "must be a list of non-empty strings", allowed)
        return tuple(v.strip() for v in value)
    raise TypeError(f"{name}: no coercion for type {hint!r}")  # a programming error


def _check_range(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    allowed = _allowed(name, meta)
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(name, value, "is not one of the choices", allowed)
    lo, hi = meta.get("lo"), meta.get("hi")
    if value is None or not isinstance(value, int | float | Decimal):
        return
    if lo is not None and (value < lo or (meta["lo_open"] and value == lo)):
        raise ConfigError(name, value, f"must be {'>' if meta['lo_open'] else '>='} {lo}", allowed)
    if hi is not None and value > hi:
        raise ConfigError(name, value, f"must be <= {hi}", allowed)


class _Section:
    """Coerces and validates every field of a frozen dataclass section on construction."""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            try:
                value = _coerce(f.name, getattr(self, f.name), hints[f.name], f.metadata)
            except ConfigError as exc:
                if not f.name.endswith("_env"):
                    raise
                # Where a variable's name belongs, a key may have been pasted: not shown.
                raise ConfigError(f.name, _HIDDEN, exc.problem, exc.allowed) from None
            _check_range(f.name, value, f.metadata)
            object.__setattr__(self, f.name, value)


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Endpoints:
    rest: str
    ws: str


#: Kalshi's recommended hosts (reference/apis.md §1.1). "embedded" is started on loopback.
KALSHI_ENDPOINTS: Final = MappingProxyType(
    {
        "demo": Endpoints(
            "https://external-api.demo.kalshi.co/trade-api/v2",
            "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
        ),
        "prod": Endpoints(
            "https://external-api.kalshi.com/trade-api/v2",
            "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
        ),
    }
)
ENVIRONMENTS: Final = ("embedded", "demo", "prod")


@dataclass(frozen=True)
class ExchangeConfig(_Section):
    """Where to trade and where the credentials are (names of environment variables)."""

    env: str = setting("embedded", choices=ENVIRONMENTS)
    #: Overrides of the env's hosts (for example the older api.elections.kalshi.com).
    rest_url: str | None = setting(None, about="https URL ending in /trade-api/v2")
    ws_url: str | None = setting(None, about="wss URL ending in /trade-api/ws/v2")
    key_id_env: str = setting("KALSHI_API_KEY_ID", about="name of the variable holding the key id")
    private_key_path_env: str = setting(
        "KALSHI_PRIVATE_KEY_PATH", about="name of the variable holding the PEM path"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_env_name("key_id_env", self.key_id_env)
        _check_env_name("private_key_path_env", self.private_key_path_env)
        for name, scheme, suffix in (
            ("rest_url", "https", "/trade-api/v2"),
            ("ws_url", "wss", "/trade-api/ws/v2"),
        ):
            url = getattr(self, name)
            if url is None:
                continue
            _check_url(name, url, scheme, suffix)
            if self.env not in KALSHI_ENDPOINTS:
                raise ConfigError(
                    name,
                    url,
                    f"overrides a host, but env is {self.env!r}",
                    "only with env = demo or prod",
                )
        if (self.rest_url is None) != (self.ws_url is None):
            given = "rest_url" if self.ws_url is None else "ws_url"
            raise ConfigError(
                given,
                getattr(self, given),
                "overrides one host only",
                "rest_url and ws_url together, for the same environment",
            )

    def endpoints(self) -> Endpoints | None:
        """The REST and WS URLs, or None for the embedded exchange (started on loopback)."""
        base = KALSHI_ENDPOINTS.get(self.env)
        if base is None:
            return None
        return Endpoints(self.rest_url or base.rest, self.ws_url or base.ws)


@dataclass(frozen=True)
class OddsConfig(_Section):
    """The Odds API v4 feed."""

    base_url: str = setting("https://api.the-odds-api.com")
    api_key_env: str = setting("ODDS_API_KEY", about="name of the variable holding the key")
    #: Ten books or fewer cost one region per market per pull.
    bookmakers: tuple[str, ...] = setting(
        (
            "pinnacle",
            "draftkings",
            "fanduel",
            "betmgm",
            "williamhill_us",
            "betrivers",
            "betonlineag",
            "bovada",
            "lowvig",
            "betus",
        )
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_url("base_url", self.base_url, "https", "")
        _check_env_name("api_key_env", self.api_key_env)
        if not self.bookmakers:
            raise ConfigError("bookmakers", [], "is empty", "at least one bookmaker key")
        seen = [b for i, b in enumerate(self.bookmakers) if b in self.bookmakers[:i]]
        if seen:
            raise ConfigError("bookmakers", list(self.bookmakers), f"lists {seen[0]} twice")


@dataclass(frozen=True)
class TheoConfig(_Section):
    """How the consensus theo is built and when it is too old to quote on."""

    anchor: str = setting("pinnacle", about="bookmaker key the consensus is anchored on")
    anchor_weight: float = setting(0.6, lo=0.0, hi=1.0)
    devig_method: str = setting("shin", choices=tuple(m.value for m in DevigMethod))
    max_book_age: Seconds = setting(Seconds(900.0), lo=1.0, hi=86400.0, lo_open=False)
    outlier_tolerance: float = setting(
        0.05, lo=0.0, hi=0.5, lo_open=True, about="probability points"
    )
    min_books: int = setting(2, lo=1, hi=50)
    max_age: Seconds = setting(
        Seconds(2700.0), lo=60.0, hi=86400.0, about="older theo stops quoting the game"
    )
    #: The adverse-selection check: one game's odds are pulled at once when |q| reaches this
    #: fraction of its cap, or when ``recheck_fills`` fills arrive within ``recheck_window``;
    #: until the pull returns only the sides that reduce exposure quote.
    recheck_skew: float = setting(0.5, lo=0.0, hi=1.0, lo_open=True, about="fraction of the cap")
    recheck_fills: int = setting(4, lo=1, hi=1000)
    recheck_window: Seconds = setting(Seconds(60.0), lo=1.0, hi=3600.0)
    recheck_min_interval: Seconds = setting(
        Seconds(120.0), lo=0.0, hi=86400.0, about="at most one recheck per game this often"
    )

    def consensus_params(self) -> ConsensusParams:
        from datetime import timedelta

        return ConsensusParams(
            anchor=self.anchor,
            anchor_weight=self.anchor_weight,
            devig_method=self.devig_method,
            max_book_age=timedelta(seconds=self.max_book_age),
            outlier_tolerance=self.outlier_tolerance,
            min_books=self.min_books,
        )


@dataclass(frozen=True)
class RiskConfig(_Section):
    """Limits the risk layer enforces; each breach has its own named halt."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_session_loss < self.max_game_loss:
            raise ConfigError(
                "max_session_loss",
                self.max_session_loss,
                f"is below max_game_loss ({self.max_game_loss})",
                "max_session_loss >= max_game_loss",
            )

    start_buffer: Seconds = setting(
        Seconds(300.0), lo=0.0, hi=86400.0, about="cancel a game's orders this long before start"
    )
    max_game_loss: Decimal = setting(Decimal("250"), lo=0, hi=10_000_000, lo_open=True)
    max_session_loss: Decimal = setting(Decimal("1000"), lo=0, hi=10_000_000, lo_open=True)
    stale_book_after: Seconds = setting(Seconds(10.0), lo=0.5, hi=600.0)
    ws_down_after: Seconds = setting(Seconds(5.0), lo=0.5, hi=600.0)
    max_rest_error_rate: float = setting(0.25, lo=0.0, hi=1.0, lo_open=True)
    rest_error_window: Seconds = setting(Seconds(60.0), lo=1.0, hi=3600.0)
    loop_stall_after: Seconds = setting(
        Seconds(5.0), lo=0.1, hi=60.0, about="the watchdog cancels everything after this stall"
    )
    kill_verify_timeout: Seconds = setting(Seconds(60.0), lo=1.0, hi=600.0)
    kill_clean_checks: int = setting(3, lo=1, hi=20)
    order_group_contracts: int = setting(
        200, lo=1, hi=1_000_000, about="contracts per rolling 15 s per game"
    )
    #: Beyond this fraction of its cap a game is over-exposed: its reducing sides may pay up
    #: to the break-even price of the position (fees included), even through theo.
    over_exposed: float = setting(0.5, lo=0.0, hi=1.0, lo_open=True, about="fraction of the cap")
    #: Reconciliation mismatches (within ``mismatch_window``) that halt a game.
    mismatch_halt_after: int = setting(3, lo=1, hi=100)
    mismatch_window: Seconds = setting(Seconds(300.0), lo=1.0, hi=86400.0)


@dataclass(frozen=True)
class QuotingConfig(_Section):
    """The quote table and requote hysteresis."""

    model: str = setting("hjb", choices=tuple(m.value for m in QuoteModel))
    horizon: Seconds = setting(Seconds(6 * 3600.0), lo=60.0, hi=30 * 86400.0)
    tau_points: int = setting(64, lo=4, hi=4096)
    min_rest: Seconds = setting(
        Seconds(2.0), lo=0.0, hi=600.0, about="an order rests at least this long before a requote"
    )
    back_off_hold: Seconds = setting(
        Seconds(30.0),
        lo=0.0,
        hi=3600.0,
        about="after backing off from a competitor, do not outbid it again for this long",
    )
    #: A partly filled quote is topped up (losing its queue place) only once what rests
    #: falls below this fraction of the wanted size.
    refill_below: float = setting(0.5, lo=0.0, hi=1.0, about="fraction of the quote size")


@dataclass(frozen=True)
class RefreshConfig(_Section):
    odds: Seconds = setting(Seconds(1800.0), lo=10.0, hi=86400.0)
    positions: Seconds = setting(Seconds(10.0), lo=1.0, hi=3600.0)
    render_hz: float = setting(4.0, lo=0.0, hi=10.0, lo_open=True)


@dataclass(frozen=True)
class SportProfile(_Section):
    """Per-sport risk and flow parameters (γ, σ and the cap act on a game's one inventory)."""

    odds_sport: str | None = setting(None, about="The Odds API sport key; none = override only")
    series: tuple[str, ...] = setting((), about="Kalshi series tickers of the sport's games")
    gamma: float = setting(0.02, lo=0.0, hi=1.0, lo_open=True, about="per dollar")
    cap: int = setting(100, lo=1, hi=MAX_Q, about="contracts of one game's inventory")
    liquidity_factor: float = setting(
        0.5, lo=0.0, hi=100.0, lo_open=True, about="cap <= factor × observed depth"
    )
    min_edge: Decimal = setting(Decimal("0.01"), lo=0, hi=Decimal("0.5"), about="dollars")
    prior_A: float = setting(0.05, lo=0.0, hi=100.0, lo_open=True, about="fills per second at theo")
    prior_k: float = setting(0.5, lo=0.0, hi=MAX_K, lo_open=True, about="per cent of distance")
    sigma: float = setting(0.0, lo=0.0, hi=0.01, about="theo volatility, dollars per √second")
    quote_size: int = setting(25, lo=1, hi=100_000, about="contracts per side")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quote_size > self.cap:
            raise ConfigError(
                "quote_size", self.quote_size, f"exceeds the cap ({self.cap})", "quote_size <= cap"
            )

    @property
    def intensity_prior(self) -> IntensityPrior:
        return IntensityPrior(self.prior_A, self.prior_k)


def _profile(odds_sport: str | None, series: tuple[str, ...], **values: Any) -> SportProfile:
    return SportProfile(odds_sport=odds_sport, series=series, **values)


_MAJOR: Final = {"gamma": 0.02, "cap": 100, "sigma": 5e-5}
_MID: Final = {"gamma": 0.03, "cap": 60, "sigma": 5e-5, "prior_A": 0.03, "prior_k": 0.4}
_NICHE: Final = {
    "gamma": 0.06,
    "cap": 25,
    "sigma": 1e-4,
    "prior_A": 0.015,
    "prior_k": 0.3,
    "min_edge": Decimal("0.015"),
    "quote_size": 10,
}
_RISKY: Final = {
    "gamma": 0.1,
    "cap": 15,
    "sigma": 2e-4,
    "prior_A": 0.01,
    "prior_k": 0.3,
    "min_edge": Decimal("0.02"),
    "quote_size": 5,
}

#: Built-in profiles; ``[sports.<name>]`` in TOML overrides keys of one of them, or defines
#: a new one (``base = "<name>"`` to start from a built-in).
DEFAULT_SPORTS: Final = MappingProxyType(
    {
        "nba": _profile("basketball_nba", ("KXNBAGAME",), **_MAJOR, prior_A=0.05),
        "nfl": _profile(
            "americanfootball_nfl",
            ("KXNFLGAME",),
            **_MAJOR | {"cap": 150},
            prior_A=0.08,
            prior_k=0.6,
            quote_size=30,
        ),
        "nhl": _profile("icehockey_nhl", ("KXNHLGAME",), **_MAJOR | {"cap": 80}, prior_A=0.03),
        "mlb": _profile("baseball_mlb", ("KXMLBGAME",), **_MAJOR | {"cap": 80}, prior_A=0.03),
        "wnba": _profile("basketball_wnba", ("KXWNBAGAME",), **_MID),
        "ncaaf": _profile("americanfootball_ncaaf", ("KXNCAAFGAME",), **_MID),
        "ncaab": _profile("basketball_ncaab", ("KXNCAAMBGAME",), **_MID),
        "epl": _profile("soccer_epl", ("KXEPLGAME",), **_MID),
        "mma": _profile(
            "mma_mixed_martial_arts", ("KXUFCFIGHT",), **_MID | {"gamma": 0.04, "cap": 40}
        ),
        "euroleague": _profile("basketball_euroleague", ("KXEUROLEAGUEGAME",), **_NICHE),
        "ncaa_lacrosse": _profile("lacrosse_ncaa", ("KXNCAAMLAXGAME",), **_NICHE),
        "ncaa_baseball": _profile("baseball_ncaa", (), **_NICHE | {"gamma": 0.08, "cap": 20}),
        "boxing": _profile("boxing_boxing", ("KXBOXING",), **_RISKY),
        # The Odds API lists no esports: these trade only on a manual theo override.
        "cs2": _profile(None, ("KXCS2GAME",), **_RISKY),
        "lol": _profile(None, ("KXLOLGAME",), **_RISKY),
        "valorant": _profile(None, ("KXVALORANTGAME",), **_RISKY),
        "dota2": _profile(None, ("KXDOTA2GAME",), **_RISKY),
    }
)


@dataclass(frozen=True)
class Config:
    """The whole configuration; :func:`load_config` reads it from TOML."""

    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    odds: OddsConfig = field(default_factory=OddsConfig)
    theo: TheoConfig = field(default_factory=TheoConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    quoting: QuotingConfig = field(default_factory=QuotingConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    sports: Mapping[str, SportProfile] = field(default_factory=lambda: DEFAULT_SPORTS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sports", MappingProxyType(dict(self.sports)))
        self._check()

    def __reduce__(self) -> tuple[type[Config], tuple[object, ...]]:
        # A mappingproxy does not pickle; a Config travels to the lab's worker processes
        # as its fields, and is checked again on arrival.
        fields = (self.exchange, self.odds, self.theo, self.risk, self.quoting, self.refresh)
        return type(self), (*fields, dict(self.sports))

    def _check(self) -> None:
        books = self.odds.bookmakers
        if self.theo.anchor not in books:
            raise ConfigError(
                "theo.anchor", self.theo.anchor, "is not among odds.bookmakers", ", ".join(books)
            )
        if self.theo.min_books > len(books):
            raise ConfigError(
                "theo.min_books",
                self.theo.min_books,
                f"exceeds the {len(books)} bookmakers pulled",
                f"at most len(odds.bookmakers) = {len(books)}",
            )
        if self.theo.max_age < self.refresh.odds:
            raise ConfigError(
                "theo.max_age",
                self.theo.max_age,
                f"is shorter than refresh.odds ({self.refresh.odds} s): every theo "
                "would expire between pulls",
                "theo.max_age >= refresh.odds",
            )
        if self.risk.start_buffer >= self.quoting.horizon:
            raise ConfigError(
                "risk.start_buffer",
                self.risk.start_buffer,
                f"is not below quoting.horizon ({self.quoting.horizon} s)",
                "start_buffer < horizon",
            )
        owner: dict[str, str] = {}
        for name, profile in self.sports.items():
            for series in profile.series:
                if series in owner:
                    raise ConfigError(
                        f"sports.{name}.series",
                        list(profile.series),
                        f"{series} is also in sports.{owner[series]}",
                        "each series in one profile",
                    )
                owner[series] = name

    def profile(self, name: str) -> SportProfile:
        try:
            return self.sports[name]
        except KeyError:
            raise KeyError(f"no sport profile {name!r} (have: {', '.join(self.sports)})") from None

    def profile_for_series(self, series_ticker: str) -> tuple[str, SportProfile] | None:
        for name, profile in self.sports.items():
            if series_ticker in profile.series:
                return name, profile
        return None


# ----------------------------------------------------------------------------- loading

_SECTIONS: Final[Mapping[str, type[_Section]]] = MappingProxyType(
    {
        "exchange": ExchangeConfig,
        "odds": OddsConfig,
        "theo": TheoConfig,
        "risk": RiskConfig,
        "quoting": QuotingConfig,
        "refresh": RefreshConfig,
    }
)


def _check_url(name: str, url: str, scheme: str, suffix: str) -> None:
    try:
        parsed = urlsplit(url)
        usable = (
            parsed.scheme == scheme
            and bool(parsed.hostname)
            and parsed.path.rstrip("/").endswith(suffix)
        )
        parsed.port  # noqa: B018  (raises ValueError for a port that is not 0-65535)
    except ValueError:  # "https://[::1", a port of "99999999", "ｅx＃ample" under NFKC
        usable = False
    if not usable:
        raise ConfigError(name, url, "is not a usable URL", f"{scheme}://<host>{suffix}")


def _check_env_name(name: str, value: str) -> None:
    if not _ENV_NAME.match(value):
        raise ConfigError(
            name,
            _HIDDEN,
            "is not an environment variable name",
            "letters, digits and _, not starting with a digit",
        )


def _build(cls: type[Any], table: Any, prefix: str, base: Any = None) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(prefix, _HIDDEN, "must be a table of settings")
    known = [f.name for f in fields(cls)]
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{prefix}.{key}", _HIDDEN, "unknown key", "one of " + ", ".join(known)
            )
    try:
        return dataclasses.replace(base, **table) if base is not None else cls(**table)
    except ConfigError as exc:
        raise exc.under(prefix) from None


def _build_sports(table: Any) -> dict[str, SportProfile]:
    if not isinstance(table, Mapping):
        raise ConfigError("sports", _HIDDEN, "must be a table of sport profiles")
    sports = dict(DEFAULT_SPORTS)
    for name, entry in table.items():
        prefix = f"sports.{name}"
        if not isinstance(entry, Mapping):
            raise ConfigError(prefix, _HIDDEN, "must be a table of settings")
        entry = dict(entry)
        base_name = entry.pop("base", name if name in DEFAULT_SPORTS else None)
        if base_name is not None and (
            not isinstance(base_name, str) or base_name not in DEFAULT_SPORTS
        ):
            raise ConfigError(
                f"{prefix}.base", base_name, "is not a built-in profile", ", ".join(DEFAULT_SPORTS)
            )
        if base_name is None:
            missing = [f.name for f in fields(SportProfile) if f.name not in entry]
            if missing:
                raise ConfigError(
                    prefix,
                    _MISSING,
                    f"a new profile must set {', '.join(missing)}",
                    f"or start from a built-in with base = one of {', '.join(DEFAULT_SPORTS)}",
                )
        sports[name] = _build(
            SportProfile, entry, prefix, DEFAULT_SPORTS[base_name] if base_name else None
        )
    return sports


def config_from_mapping(data: Mapping[str, Any]) -> Config:
    """Build a :class:`Config` from parsed TOML (or any nested mapping)."""
    allowed = [*_SECTIONS, "sports"]
    for key in data:
        if key not in allowed:
            raise ConfigError(key, _HIDDEN, "unknown section", ", ".join(allowed))
    sections = {name: _build(cls, data.get(name, {}), name) for name, cls in _SECTIONS.items()}
    return Config(**sections, sports=_build_sports(data.get("sports", {})))


def load_config(path: str | Path | None = None) -> Config:
    """Read a TOML file; without a path, the built-in defaults."""
    if path is None:
        return Config()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), _MISSING, f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        problem = f"is not UTF-8 text (byte {exc.start}); a TOML file is"
        raise ConfigError(str(file), _MISSING, problem) from None
    try:
        data = tomllib.loads(text)
    except ValueError as exc:  # a TOMLDecodeError, or an integer of over 4300 digits
        raise ConfigError(str(file), _MISSING, f"is not valid TOML: {exc}") from None
    try:
        return config_from_mapping(data)
    except ConfigError as exc:
        raise exc.in_file(str(file)) from None
