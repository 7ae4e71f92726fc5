import dataclasses
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from kmm_interactive.config import (
    DEFAULT_SPORTS,
    KALSHI_ENDPOINTS,
    Config,
    ConfigError,
    config_from_mapping,
    load_config,
    parse_duration,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "kmm.toml"

BAD = [
    (
        '[exchange]\nenv = "staging"',
        "exchange.env = 'staging': is not one of the choices (allowed: embedded, demo, prod)",
    ),
    (
        '[exchange]\nenv = "prod"\nrest_url = "http://localhost/api"',
        "exchange.rest_url = 'http://localhost/api': is not a usable URL (allowed: https://<host>/trade-api/v2)",
    ),
    (
        '[exchange]\nrest_url = "https://api.elections.kalshi.com/trade-api/v2"',
        "exchange.rest_url = 'https://api.elections.kalshi.com/trade-api/v2': overrides a host, but env is 'embedded' (allowed: only with env = demo or prod)",
    ),
    (
        "[exchange]\ncolour = 1",
        "exchange.colour: unknown key (its value is not shown: it may be a secret) (allowed: one of env, rest_url, ws_url, key_id_env, private_key_path_env)",
    ),
    (
        "[theo]\nanchor_weight = 1.5",
        "theo.anchor_weight = 1.5: must be <= 1.0 (allowed: 0.0 <= anchor_weight <= 1.0)",
    ),
    (
        '[theo]\ndevig_method = "vibes"',
        "theo.devig_method = 'vibes': is not one of the choices (allowed: multiplicative, additive, power, shin, odds_ratio)",
    ),
    (
        '[theo]\nmax_age = "soon"',
        "theo.max_age = 'soon': not a duration (allowed: seconds, or e.g. '90s', '5m', '1h30m')",
    ),
    (
        '[theo]\nmax_age = "10s"',
        "theo.max_age = 10.0: must be >= 60.0 (allowed: 60.0 <= max_age <= 86400.0, older theo stops quoting the game)",
    ),
    (
        "[theo]\nmin_books = 2.5",
        "theo.min_books = 2.5: must be a whole number (allowed: 1 <= min_books <= 50)",
    ),
    (
        '[risk]\nmax_game_loss = "lots"',
        "risk.max_game_loss = 'lots': must be an amount in dollars (allowed: 0 < max_game_loss <= 10000000)",
    ),
    (
        "[risk]\nmax_session_loss = 0",
        "risk.max_session_loss = Decimal('0'): must be > 0 (allowed: 0 < max_session_loss <= 10000000)",
    ),
    (
        "[risk]\nkill_clean_checks = true",
        "risk.kill_clean_checks = True: must be a whole number (allowed: 1 <= kill_clean_checks <= 20)",
    ),
    (
        '[quoting]\nmodel = "magic"',
        "quoting.model = 'magic': is not one of the choices (allowed: hjb, glft, avellaneda_stoikov, linear_skew)",
    ),
    (
        "[refresh]\nrender_hz = 0",
        "refresh.render_hz = 0.0: must be > 0.0 (allowed: 0.0 < render_hz <= 10.0)",
    ),
    (
        "[sports.nba]\ngamma = -1",
        "sports.nba.gamma = -1.0: must be > 0.0 (allowed: 0.0 < gamma <= 1.0, per dollar)",
    ),
    (
        "[sports.nba]\ngama = 0.1",
        "sports.nba.gama: unknown key (its value is not shown: it may be a secret) (allowed: one of odds_sport, series, gamma, cap, liquidity_factor, min_edge, prior_A, prior_k, sigma, quote_size)",
    ),
    (
        "[sports.nba]\ncap = 0",
        "sports.nba.cap = 0: must be >= 1 (allowed: 1 <= cap <= 2000, contracts of one game's inventory)",
    ),
    (
        "[sports.nba]\nprior_k = 9",
        "sports.nba.prior_k = 9.0: must be <= 5.0 (allowed: 0.0 < prior_k <= 5.0, per cent of distance)",
    ),
    (
        '[sports.nba]\nmin_edge = "0.75"',
        "sports.nba.min_edge = Decimal('0.75'): must be <= 0.5 (allowed: 0 <= min_edge <= 0.5, dollars)",
    ),
    (
        '[sports.nba]\nseries = "KXNBAGAME"',
        "sports.nba.series = 'KXNBAGAME': must be a list of non-empty strings (allowed: Kalshi series tickers of the sport's games)",
    ),
    (
        "[sports.curling]\ngamma = 0.1",
        "sports.curling: a new profile must set odds_sport, series, cap, liquidity_factor, min_edge, prior_A, prior_k, sigma, quote_size (allowed: or start from a built-in with base = one of",
    ),
    (
        '[sports.curling]\nbase = "chess"',
        "sports.curling.base = 'chess': is not a built-in profile (allowed: nba, nfl",
    ),
    (
        '[sports.nhl]\nseries = ["KXNBAGAME"]',
        "sports.nhl.series = ['KXNBAGAME']: KXNBAGAME is also in sports.nba (allowed: each series in one profile)",
    ),
    (
        "[trading]\nsize = 1",
        "trading: unknown section (its value is not shown: it may be a secret) (allowed: exchange, odds, theo, risk, quoting, refresh, sports)",
    ),
    (
        "sports = 5",
        "sports: must be a table of sport profiles (its value is not shown: it may be a secret)",
    ),
    (
        'theo = "x"',
        "theo: must be a table of settings (its value is not shown: it may be a secret)",
    ),
    (
        '[exchange]\nenv = "prod"\nrest_url = "https:///trade-api/v2"\nws_url = "wss://h/trade-api/ws/v2"',
        "exchange.rest_url = 'https:///trade-api/v2': is not a usable URL (allowed: https://<host>/trade-api/v2)",
    ),
    (
        '[exchange]\nenv = "prod"\nws_url = "wss://api.elections.kalshi.com/trade-api/ws/v2"',
        "exchange.ws_url = 'wss://api.elections.kalshi.com/trade-api/ws/v2': overrides one host only (allowed: rest_url and ws_url together, for the same environment)",
    ),
    (
        '[exchange]\nkey_id_env = "MY KEY"',
        "exchange.key_id_env: is not an environment variable name (its value is not shown: it may be a secret) (allowed: letters, digits and _, not starting with a digit)",
    ),
    (
        "[odds]\nbookmakers = []",
        "odds.bookmakers = []: is empty (allowed: at least one bookmaker key)",
    ),
    (
        '[odds]\nbookmakers = ["pinnacle", "fanduel", "pinnacle"]',
        "odds.bookmakers = ['pinnacle', 'fanduel', 'pinnacle']: lists pinnacle twice",
    ),
    (
        '[odds]\nbase_url = "http://api.the-odds-api.com"',
        "odds.base_url = 'http://api.the-odds-api.com': is not a usable URL (allowed: https://<host>)",
    ),
    (
        '[odds]\nbookmakers = ["draftkings", "fanduel"]',
        "theo.anchor = 'pinnacle': is not among odds.bookmakers (allowed: draftkings, fanduel)",
    ),
    (
        "[theo]\nmin_books = 12",
        "theo.min_books = 12: exceeds the 10 bookmakers pulled (allowed: at most len(odds.bookmakers) = 10)",
    ),
    (
        '[theo]\nmax_age = "20m"',
        "theo.max_age = 1200.0: is shorter than refresh.odds (1800.0 s): every theo would expire between pulls (allowed: theo.max_age >= refresh.odds)",
    ),
    (
        '[risk]\nmax_session_loss = "100"',
        "risk.max_session_loss = Decimal('100'): is below max_game_loss (250) (allowed: max_session_loss >= max_game_loss)",
    ),
    (
        '[risk]\nstart_buffer = "7h"',
        "risk.start_buffer = 25200.0: is not below quoting.horizon (21600.0 s) (allowed: start_buffer < horizon)",
    ),
    (
        "[sports.boxing]\nquote_size = 50",
        "sports.boxing.quote_size = 50: exceeds the cap (15) (allowed: quote_size <= cap)",
    ),
    (
        '[theo]\nmax_age = "5m5m"',
        "theo.max_age = '5m5m': not a duration (allowed: seconds, or e.g. '90s', '5m', '1h30m')",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_each_bad_value_has_its_own_clear_message(text, message):
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(tomllib.loads(text))
    assert str(caught.value).startswith(message)


def test_messages_are_distinct():
    assert len({m for _, m in BAD}) == len(BAD)


def test_the_example_file_is_valid_and_documents_every_key():
    config = load_config(EXAMPLE)
    assert config.exchange.env == "embedded"
    assert config.theo.max_book_age == 900.0
    assert config.risk.start_buffer == 300.0
    assert config.risk.max_game_loss == Decimal(250)
    assert config.sports["euroleague"].gamma == 0.06
    text = EXAMPLE.read_text()
    for name, section in vars(Config()).items():
        keys = dataclasses.fields(section) if name != "sports" else []
        assert f"[{name}]" in text or name == "sports"
        for key in keys:  # set, or shown commented out
            assert f"\n{key.name} = " in text or f"\n# {key.name} = " in text, key.name


def test_defaults_follow_the_seed():
    majors = [DEFAULT_SPORTS[s] for s in ("nba", "nfl", "nhl", "mlb")]
    niche = [
        DEFAULT_SPORTS[s]
        for s in ("euroleague", "ncaa_lacrosse", "ncaa_baseball", "cs2", "lol", "valorant", "dota2")
    ]
    assert min(p.gamma for p in niche) > max(p.gamma for p in majors)
    assert max(p.cap for p in niche) < min(p.cap for p in majors)
    boxing = DEFAULT_SPORTS["boxing"]
    assert boxing.gamma >= max(p.gamma for p in niche)
    assert boxing.cap <= min(p.cap for p in niche)
    assert boxing.min_edge > DEFAULT_SPORTS["nba"].min_edge
    assert DEFAULT_SPORTS["cs2"].odds_sport is None  # no esports on The Odds API


def test_overrides_keep_the_other_keys_and_new_profiles_can_start_from_a_base():
    config = config_from_mapping(
        tomllib.loads(
            '[sports.nba]\ngamma = 0.05\n[sports.kbl]\nbase = "nba"\nseries = ["KXKBLGAME"]\n'
            'odds_sport = "basketball_kbl"\ncap = 20\nquote_size = 10'
        )
    )
    assert config.sports["nba"].gamma == 0.05
    assert config.sports["nba"].cap == DEFAULT_SPORTS["nba"].cap
    assert config.profile_for_series("KXKBLGAME") == ("kbl", config.sports["kbl"])
    assert config.sports["kbl"].prior_k == DEFAULT_SPORTS["nba"].prior_k
    assert config.profile_for_series("KXNOPE") is None
    with pytest.raises(KeyError, match="no sport profile 'chess'"):
        config.profile("chess")


def test_python_changes_are_validated_too():
    profile = DEFAULT_SPORTS["nba"]
    assert dataclasses.replace(profile, gamma=0.04).gamma == 0.04
    with pytest.raises(ConfigError, match=r"gamma = -0.1: must be > 0.0"):
        dataclasses.replace(profile, gamma=-0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.gamma = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        (" 1h 15m ", 4500.0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "5 minutes",
        "-1m",
        "1h-5m",
        "5m5m",
        "30m1h",
        "ms",
        "1hh",
        "٣s",
        "5s\n5s",
        True,
        None,
        -3,
    ],
)
def test_bad_durations(text):
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_endpoints():
    assert config_from_mapping({}).exchange.endpoints() is None  # embedded: chosen at start
    demo = config_from_mapping({"exchange": {"env": "demo"}}).exchange.endpoints()
    assert demo == KALSHI_ENDPOINTS["demo"]
    assert demo.rest == "https://external-api.demo.kalshi.co/trade-api/v2"
    prod = config_from_mapping(
        {
            "exchange": {
                "env": "prod",
                "rest_url": "https://api.elections.kalshi.com/trade-api/v2",
                "ws_url": "wss://api.elections.kalshi.com/trade-api/ws/v2",
            }
        }
    )
    assert prod.exchange.endpoints().rest.startswith("https://api.elections")
    assert prod.exchange.endpoints().ws.startswith("wss://api.elections")


def test_files_that_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[theo\nanchor = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(broken)
    assert load_config() == Config()
