"""The engine's durable record: decisions, orders and fills in SQLite, read back on restart.

A :class:`Journal` is one *run* of the engine (one start): it registers itself in the
``runs`` table under a short random ``run_id``, and every row it writes carries that id, so
a restarted engine (a second ``Journal`` on the same file) can tell its runs apart. Tables:

* ``events``: generic decision-relevant events (:meth:`Journal.record`): theo changes,
  overrides, parameter changes, halts, kills, reconciliations, errors, with a JSON payload;
* ``order_events``: every state an order of ours went through (:meth:`Journal.order`), and
  ``orders``: the latest of those per ``client_order_id`` (what :meth:`open_orders` reads);
* ``fills``: our fills, unique by the exchange's trade id across every run.

Values are exact: prices, counts and fees are stored as plain decimal TEXT ("0.5600") and
come back as the same ``Decimal``; timestamps are UTC ISO 8601 TEXT with microseconds
(fixed width, so they sort as text) and come back tz-aware. The notebook tables
(``*_frame``) hold ``Decimal`` objects in money columns, never floats.

Durability: WAL mode with ``synchronous=NORMAL`` and one commit per write, so every write
that returned survives a killed process (not necessarily a power cut). Writes come from the
event-loop thread only (single writer; SQLite refuses use from another thread).

Failure semantics: a bad argument (empty id, naive datetime, unknown side or state, an
off-range price, an event kind that is not a short identifier, a payload value JSON cannot
hold exactly) raises ``ValueError``/``TypeError`` before anything is written. A file that is
not a journal, a journal of a newer schema, SQLite refusing a write (the transaction is
rolled back, nothing of it is kept), a row that no longer parses, and any use after
:meth:`Journal.close` raise :class:`JournalError`; a refused write is also handed to
:attr:`Journal.on_write_error` first (the engine halts and cancels everything on it, wherever
the exception then goes). A file that is not a journal is never modified. The journal is
never given keys or signatures, and has no way to take them.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Final, Self, TypeVar

import pandas as pd

from kmm_interactive.domain import (
    Fill,
    Order,
    OrderState,
    Side,
    parse_count,
    parse_dollars,
    utc_now,
)

#: ``PRAGMA user_version`` of the files this module writes; a file with a higher one was
#: written by a newer package and is refused rather than misread.
SCHEMA_VERSION: Final = 1
#: ``PRAGMA application_id`` of a journal ("kmmj" in ASCII): tells our files from any other
#: SQLite database, which we refuse to touch.
APPLICATION_ID: Final = 0x6B6D6D6A
#: Waiting longer for a lock held by another process would stall the event loop.
_LOCK_TIMEOUT_SECONDS: Final = 1.0
_KIND: Final = re.compile(r"[a-z_]{1,32}")
_PAYLOAD_TYPES: Final = (
    "str, int, finite float, bool, None, Decimal, tz-aware datetime, enum, "
    "and lists, tuples or str-keyed dicts of these"
)

_SCHEMA: Final = f"""
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    started TEXT NOT NULL
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    game TEXT,
    ticker TEXT,
    data TEXT NOT NULL
);
CREATE INDEX events_by_ts ON events (ts);
CREATE INDEX events_by_kind ON events (kind, ts);
CREATE TABLE order_events (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    order_id TEXT,
    ticker TEXT NOT NULL,
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    count TEXT NOT NULL,
    filled TEXT NOT NULL,
    state TEXT NOT NULL,
    game TEXT,
    reason TEXT NOT NULL
);
CREATE INDEX order_events_by_order ON order_events (client_order_id);
CREATE TABLE orders (
    client_order_id TEXT PRIMARY KEY,
    order_id TEXT,
    ticker TEXT NOT NULL,
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    count TEXT NOT NULL,
    filled TEXT NOT NULL,
    state TEXT NOT NULL,
    game TEXT,
    updated TEXT NOT NULL,
    run_id TEXT NOT NULL
);
CREATE TABLE fills (
    seq INTEGER PRIMARY KEY,
    fill_id TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    client_order_id TEXT,
    ticker TEXT NOT NULL,
    side TEXT NOT NULL,
    price TEXT NOT NULL,
    count TEXT NOT NULL,
    fee TEXT NOT NULL,
    is_taker INTEGER NOT NULL,
    ts TEXT NOT NULL,
    game TEXT,
    run_id TEXT NOT NULL
);
CREATE INDEX fills_by_ts ON fills (ts);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""

_ORDER_SQL: Final = "client_order_id, order_id, ticker, side, price, count, filled, state, game"
_ORDER_UPSERT: Final = f"""
INSERT INTO orders ({_ORDER_SQL}, updated, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (client_order_id) DO UPDATE SET
    order_id = excluded.order_id, ticker = excluded.ticker, side = excluded.side,
    price = excluded.price, count = excluded.count, filled = excluded.filled,
    state = excluded.state, game = excluded.game, updated = excluded.updated,
    run_id = excluded.run_id
"""
_FILL_SQL: Final = (
    "fill_id, order_id, client_order_id, ticker, side, price, count, fee, is_taker, ts, game, "
    "run_id"
)

EVENT_COLUMNS: Final = ("ts", "run_id", "kind", "game", "ticker", "data")
ORDER_COLUMNS: Final = (
    "client_order_id", "order_id", "ticker", "side", "price", "count", "filled", "state",
    "game", "updated", "run_id",
)  # fmt: skip
ORDER_EVENT_COLUMNS: Final = (
    "ts", "run_id", "client_order_id", "order_id", "ticker", "side", "price", "count",
    "filled", "state", "game", "reason",
)  # fmt: skip
FILL_COLUMNS: Final = (
    "ts", "run_id", "fill_id", "order_id", "client_order_id", "ticker", "side", "price",
    "count", "fee", "is_taker", "game",
)  # fmt: skip


class JournalError(Exception):
    """The journal cannot be used: not a journal, a newer schema, a failed write, closed."""


@dataclass(frozen=True)
class JournaledOrder:
    """The latest journaled state of one of our orders (``updated`` by run ``run_id``)."""

    client_order_id: str
    order_id: str | None
    ticker: str
    side: Side
    price: Decimal
    count: Decimal
    filled: Decimal
    state: OrderState
    game: str | None
    updated: datetime
    run_id: str


class Journal:
    """One engine run's journal on ``path`` (``None``: in memory, gone when closed).

    Opening creates the schema in a new or empty file, or checks an existing one; a file
    that is not a journal, or one written by a newer schema, is a :class:`JournalError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.path: str | None = None if path is None else os.fspath(path)
        if self.path in ("", ":memory:"):
            raise ValueError(
                f"journal path {self.path!r}: give a file path, or None for an in-memory journal"
            )
        self._clock = clock
        #: Called with the error whenever SQLite refuses a write (module doc).
        self.on_write_error: Callable[[JournalError], None] | None = None
        self.run_id: str = secrets.token_hex(6)
        started = self._timestamp(None)
        self._conn: sqlite3.Connection | None = _open(self.path)
        try:
            with self._writing() as conn:
                conn.execute(
                    "INSERT INTO runs (run_id, started) VALUES (?, ?)", (self.run_id, started)
                )
        except JournalError:
            self.close()
            raise

    def __repr__(self) -> str:
        closed = ", closed" if self._conn is None else ""
        return f"Journal(path={self.path!r}, run_id={self.run_id!r}{closed})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent); every later call raises :class:`JournalError`."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ writing

    def record(
        self,
        kind: str,
        *,
        game: str | None = None,
        ticker: str | None = None,
        ts: datetime | None = None,
        **data: object,
    ) -> None:
        """Journal one decision-relevant event of ``kind`` ("theo", "halt", "kill", …).

        ``data`` is stored as JSON: Decimal as its exact string, datetime as UTC ISO 8601,
        enums by value, tuples as lists; anything else is a ``TypeError`` naming the key.
        """
        _check_kind(kind)
        _check_optional_id(game, "game")
        _check_optional_id(ticker, "ticker")
        when = self._timestamp(ts)
        payload = json.dumps(
            {key: _plain(value, f"{kind} event: {key}") for key, value in data.items()},
            separators=(",", ":"),
            allow_nan=False,
        )
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO events (run_id, ts, kind, game, ticker, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self.run_id, when, kind, game, ticker, payload),
            )

    def order(
        self,
        *,
        client_order_id: str,
        ticker: str,
        side: Side,
        price: Decimal,
        count: Decimal,
        filled: Decimal,
        state: OrderState,
        order_id: str | None = None,
        game: str | None = None,
        reason: str = "",
        ts: datetime | None = None,
    ) -> None:
        """Journal a state of one of our orders: appended to its history, and its latest state.

        The journal records what the order manager decided; it does not judge transitions.
        """
        _check_id(client_order_id, "client_order_id")
        _check_id(ticker, "ticker")
        _check_optional_id(order_id, "order_id")
        _check_optional_id(game, "game")
        if not isinstance(reason, str):
            raise TypeError(f"order reason must be a string, not {type(reason).__name__}")
        # Order applies the domain's rules for price, count and filled in one place.
        checked = Order(
            client_order_id,
            ticker,
            _member(Side, side, "side"),
            price,
            count,
            filled,
            _member(OrderState, state, "state"),
            order_id,
        )
        when = self._timestamp(ts)
        values = (
            checked.client_order_id,
            checked.order_id,
            checked.ticker,
            checked.side.value,
            _text(checked.price),
            _text(checked.count),
            _text(checked.filled),
            checked.state.value,
            game,
        )
        with self._writing() as conn:
            conn.execute(
                f"INSERT INTO order_events ({_ORDER_SQL}, ts, run_id, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, when, self.run_id, reason),
            )
            conn.execute(_ORDER_UPSERT, (*values, when, self.run_id))

    def fill(self, fill: Fill, *, game: str | None = None) -> bool:
        """Journal one of our fills; False (nothing written) if its ``fill_id`` is already in
        the journal, from this run or an earlier one."""
        if not isinstance(fill, Fill):
            raise TypeError(f"fill must be a domain Fill, not {type(fill).__name__}")
        _check_id(fill.fill_id, "fill_id")
        _check_id(fill.order_id, f"fill {fill.fill_id}: order_id")
        _check_id(fill.ticker, f"fill {fill.fill_id}: ticker")
        _check_optional_id(fill.client_order_id, f"fill {fill.fill_id}: client_order_id")
        _check_optional_id(game, "game")
        if not isinstance(fill.is_taker, bool):
            raise TypeError(f"fill {fill.fill_id}: is_taker must be a bool")
        row = (
            fill.fill_id,
            fill.order_id,
            fill.client_order_id,
            fill.ticker,
            _member(Side, fill.side, f"fill {fill.fill_id}: side").value,
            _text(fill.price),
            _text(fill.count),
            _text(fill.fee),
            int(fill.is_taker),
            _utc_text(fill.ts, f"fill {fill.fill_id}: ts"),
            game,
            self.run_id,
        )
        with self._writing() as conn:
            cursor = conn.execute(
                f"INSERT INTO fills ({_FILL_SQL}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (fill_id) DO NOTHING",
                row,
            )
            return cursor.rowcount == 1

    # ------------------------------------------------------------------ reading back

    def fills(self) -> list[Fill]:
        """Every journaled fill of every run, oldest first (by fill time)."""
        rows = self._query(f"SELECT {_FILL_SQL} FROM fills ORDER BY ts, seq")
        return [_fill_from_row(row) for row in rows]

    def open_orders(self) -> list[JournaledOrder]:
        """The latest state of every order not DONE (any run), least recently updated first."""
        rows = self._query(
            f"SELECT {_ORDER_SQL}, updated, run_id FROM orders WHERE state != ?"
            " ORDER BY updated, client_order_id",
            (OrderState.DONE.value,),
        )
        return [_order_from_row(row) for row in rows]

    def order_state(self, client_order_id: str) -> JournaledOrder | None:
        """The latest journaled state of one order, or None if it was never journaled."""
        _check_id(client_order_id, "client_order_id")
        rows = self._query(
            f"SELECT {_ORDER_SQL}, updated, run_id FROM orders WHERE client_order_id = ?",
            (client_order_id,),
        )
        return _order_from_row(rows[0]) if rows else None

    def known_client_order_ids(self) -> set[str]:
        """Every ``client_order_id`` any run journaled an order state for."""
        return {row["client_order_id"] for row in self._query("SELECT client_order_id FROM orders")}

    def traded_tickers(self) -> set[str]:
        """Every market any run journaled an order for."""
        return {row["ticker"] for row in self._query("SELECT DISTINCT ticker FROM orders")}

    def last_fill_time(self) -> datetime | None:
        """The time of the latest journaled fill, or None when there is none."""
        latest = self._query("SELECT MAX(ts) AS ts FROM fills")[0]["ts"]
        return None if latest is None else _parse_time(latest, "fills.ts")

    def runs(self) -> list[tuple[str, datetime]]:
        """``(run_id, started)`` of every run on this file, oldest first (this one last)."""
        rows = self._query("SELECT run_id, started FROM runs ORDER BY seq")
        return [(row["run_id"], _parse_time(row["started"], "runs.started")) for row in rows]

    # ------------------------------------------------------------------ notebook tables

    def events_frame(
        self,
        kind: str | None = None,
        *,
        game: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Events (columns :data:`EVENT_COLUMNS`; ``data`` holds the decoded JSON payload),
        oldest first; filtered by kind, game and ``ts >= since``; the newest ``limit`` only."""
        where, params = [], []
        if kind is not None:
            _check_kind(kind)
            where.append("kind = ?")
            params.append(kind)
        if game is not None:
            _check_id(game, "game")
            where.append("game = ?")
            params.append(game)
        if since is not None:
            where.append("ts >= ?")
            params.append(_utc_text(since, "since"))
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit = {limit}: must be at least 1 (or None for every event)")
        condition = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(
            f"SELECT ts, run_id, kind, game, ticker, data FROM events {condition}"
            " ORDER BY ts DESC, seq DESC LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        records = [
            (
                row["ts"],
                row["run_id"],
                row["kind"],
                row["game"],
                row["ticker"],
                json.loads(row["data"]),
            )
            for row in reversed(rows)
        ]
        return _frame(records, EVENT_COLUMNS, ("ts",))

    def orders_frame(self) -> pd.DataFrame:
        """The latest state of every journaled order (columns :data:`ORDER_COLUMNS`)."""
        rows = self._query(
            f"SELECT {_ORDER_SQL}, updated, run_id FROM orders ORDER BY updated, client_order_id"
        )
        records = []
        for row in rows:
            order = _order_from_row(row)
            records.append((
                order.client_order_id, order.order_id, order.ticker, order.side.value, order.price,
                order.count, order.filled, order.state.value, order.game, row["updated"],
                order.run_id,
            ))  # fmt: skip
        return _frame(records, ORDER_COLUMNS, ("updated",))

    def order_events_frame(self, client_order_id: str | None = None) -> pd.DataFrame:
        """Every journaled order state, in the order written (columns
        :data:`ORDER_EVENT_COLUMNS`); only one order's history when ``client_order_id``."""
        if client_order_id is not None:
            _check_id(client_order_id, "client_order_id")
        condition, params = (
            ("WHERE client_order_id = ?", (client_order_id,))
            if client_order_id is not None
            else ("", ())
        )
        rows = self._query(
            f"SELECT seq, ts, run_id, {_ORDER_SQL}, reason FROM order_events {condition}"
            " ORDER BY seq",
            params,
        )
        records = []
        for row in rows:
            with _reading("order_events", row["seq"]):
                records.append((
                    row["ts"], row["run_id"], row["client_order_id"], row["order_id"],
                    row["ticker"], Side(row["side"]).value, parse_dollars(row["price"]),
                    parse_count(row["count"]), parse_count(row["filled"]),
                    OrderState(row["state"]).value, row["game"], row["reason"],
                ))  # fmt: skip
        return _frame(records, ORDER_EVENT_COLUMNS, ("ts",))

    def fills_frame(self, ticker: str | None = None) -> pd.DataFrame:
        """Every journaled fill, oldest first (columns :data:`FILL_COLUMNS`); one market's
        only when ``ticker``."""
        if ticker is not None:
            _check_id(ticker, "ticker")
        condition, params = ("WHERE ticker = ?", (ticker,)) if ticker is not None else ("", ())
        rows = self._query(f"SELECT {_FILL_SQL} FROM fills {condition} ORDER BY ts, seq", params)
        records = []
        for row in rows:
            fill = _fill_from_row(row)
            records.append((
                row["ts"], row["run_id"], fill.fill_id, fill.order_id, fill.client_order_id,
                fill.ticker, fill.side.value, fill.price, fill.count, fill.fee, fill.is_taker,
                row["game"],
            ))  # fmt: skip
        return _frame(records, FILL_COLUMNS, ("ts",))

    # ------------------------------------------------------------------ plumbing

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path or '(in memory)'} is closed")
        return self._conn

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed on leaving (durable at once) or rolled back whole."""
        conn = self._connection()
        try:
            with conn:
                yield conn
        except sqlite3.Error as exc:
            error = JournalError(f"journal write failed, nothing written: {exc}")
            if self.on_write_error is not None:
                self.on_write_error(error)
            raise error from exc

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"journal read failed: {exc}") from exc

    def _timestamp(self, ts: datetime | None) -> str:
        if ts is None:
            return _utc_text(self._clock(), "the journal clock's time")
        return _utc_text(ts, "ts")


# --------------------------------------------------------------------------- opening


def _open(path: str | None) -> sqlite3.Connection:
    where = "in-memory journal" if path is None else f"journal file {path!r}"
    try:
        conn = sqlite3.connect(":memory:" if path is None else path, timeout=_LOCK_TIMEOUT_SECONDS)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open {where}: {exc}") from None
    try:
        _prepare(conn, where)
    except BaseException:
        conn.close()
        raise
    conn.row_factory = sqlite3.Row
    return conn


def _prepare(conn: sqlite3.Connection, where: str) -> None:
    """Check the file before changing anything in it, then set it up for durable writes."""
    try:
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{where} is not a kmm journal (SQLite: {exc})") from None
    fresh = application_id == 0 and version == 0 and objects == 0
    if not fresh and application_id != APPLICATION_ID:
        raise JournalError(
            f"{where} is an SQLite database but not a kmm journal (application_id "
            f"{application_id:#x}, a journal has {APPLICATION_ID:#x}); it was left untouched"
        )
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{where} has journal schema version {version}, newer than this package reads "
            f"({SCHEMA_VERSION}); upgrade kmm_interactive or use another file"
        )
    if not fresh and version != SCHEMA_VERSION:
        raise JournalError(
            f"{where} has journal schema version {version}; this package reads "
            f"{SCHEMA_VERSION} only"
        )
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        # With WAL, NORMAL loses nothing a committed write put there when the process dies
        # (only a power cut can take the last commits), at a fraction of FULL's cost.
        conn.execute("PRAGMA synchronous = NORMAL")
        if fresh:
            conn.executescript(_SCHEMA)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot set up {where}: {exc}") from None


# --------------------------------------------------------------------------- validation


_E = TypeVar("_E", Side, OrderState)


def _member(kind: type[_E], value: object, what: str) -> _E:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a {kind.__name__}, not {type(value).__name__}")
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{what} = {value!r}: unknown (allowed: {allowed})") from None


def _check_kind(kind: object) -> None:
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError(
            f"event kind {kind!r}: must be 1 to 32 lowercase letters or '_' (e.g. 'theo', 'halt')"
        )


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} must not be empty")


def _check_optional_id(value: object, what: str) -> None:
    if value is not None:
        _check_id(value, what)


def _utc_text(ts: object, what: str) -> str:
    if not isinstance(ts, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(ts).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{what} = {ts.isoformat()} is naive: give a timezone-aware datetime")
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def _text(value: Decimal) -> str:
    """Plain notation that keeps the exact value and its places ("0.5600", never "5.6E-1")."""
    return format(value, "f")


def _plain(value: object, where: str) -> object:
    """``value`` as the JSON types that hold it exactly; TypeError/ValueError naming ``where``."""
    if isinstance(value, enum.Enum):
        return _plain(value.value, where)
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} = {value}: only finite numbers can be journaled")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{where} = {value}: only finite numbers can be journaled")
        return str(value)
    if isinstance(value, datetime):
        return _utc_text(value, where)
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        plain: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a {type(key).__name__} key {key!r}: keys are str")
            plain[key] = _plain(item, f"{where}[{key!r}]")
        return plain
    raise TypeError(
        f"{where} is a {type(value).__name__}; a journal payload holds {_PAYLOAD_TYPES}"
    )


# --------------------------------------------------------------------------- reading rows


@contextlib.contextmanager
def _reading(table: str, key: object) -> Iterator[None]:
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise JournalError(f"journal row {table} {key!r} does not parse: {exc}") from exc


def _parse_time(text: str, what: str) -> datetime:
    with _reading(what, text):
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            raise ValueError("the stored time has no timezone")
        return parsed.astimezone(UTC)


def _fill_from_row(row: sqlite3.Row) -> Fill:
    with _reading("fills", row["fill_id"]):
        return Fill(
            fill_id=row["fill_id"],
            order_id=row["order_id"],
            ticker=row["ticker"],
            side=Side(row["side"]),
            price=parse_dollars(row["price"]),
            count=parse_count(row["count"]),
            fee=parse_dollars(row["fee"]),
            is_taker=bool(row["is_taker"]),
            ts=_parse_time(row["ts"], "fills.ts"),
            client_order_id=row["client_order_id"],
        )


def _order_from_row(row: sqlite3.Row) -> JournaledOrder:
    with _reading("orders", row["client_order_id"]):
        return JournaledOrder(
            client_order_id=row["client_order_id"],
            order_id=row["order_id"],
            ticker=row["ticker"],
            side=Side(row["side"]),
            price=parse_dollars(row["price"]),
            count=parse_count(row["count"]),
            filled=parse_count(row["filled"]),
            state=OrderState(row["state"]),
            game=row["game"],
            updated=_parse_time(row["updated"], "orders.updated"),
            run_id=row["run_id"],
        )


def _frame(
    records: Sequence[tuple[object, ...]], columns: Sequence[str], times: Sequence[str]
) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=list(columns))
    for column in times:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601").dt.as_unit("us")
    return frame
