"""The journal: exact round trips, refusals that write nothing, history vs latest state,
restarts on one file (runs, open orders, fill dedup), survival of a killed writer, file
checks, notebook tables, and a closed journal."""

from __future__ import annotations

import select
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmm_interactive.domain import Fill, OrderState, Side
from kmm_interactive.engine.journal import (
    EVENT_COLUMNS,
    FILL_COLUMNS,
    ORDER_COLUMNS,
    ORDER_EVENT_COLUMNS,
    Journal,
    JournaledOrder,
    JournalError,
)

D = Decimal
S = OrderState
T0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
EASTERN = timezone(timedelta(hours=-5))
KINDS = (
    "start", "stop", "theo", "override", "override_cleared", "params", "halt", "halt_cleared",
    "kill", "rearm", "reconcile", "mismatch", "stall", "recheck", "error",
)  # fmt: skip


class Clock:
    """A clock that moves a second each time it is read."""

    def __init__(self) -> None:
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return T0 + timedelta(seconds=self.reads - 1)


@pytest.fixture
def journal() -> Iterator[Journal]:
    with Journal(clock=Clock()) as j:
        yield j


def make_fill(fill_id: str, *, minute: int = 0, **changes: object) -> Fill:
    fields: dict[str, object] = {
        "fill_id": fill_id,
        "order_id": f"o-{fill_id}",
        "ticker": "KXNBAGAME-A",
        "side": Side.BID,
        "price": D("0.5600"),
        "count": D("3.00"),
        "fee": D("0.0100"),
        "is_taker": False,
        "ts": T0 + timedelta(minutes=minute),
        "client_order_id": f"c-{fill_id}",
    }
    fields.update(changes)
    return Fill(**fields)  # type: ignore[arg-type]


def write_order(j: Journal, cid: str, state: OrderState, **changes: object) -> None:
    fields: dict[str, object] = {
        "client_order_id": cid,
        "ticker": "KXNBAGAME-A",
        "side": Side.BID,
        "price": D("0.4500"),
        "count": D("10.00"),
        "filled": D("0.00"),
        "state": state,
        "game": "G1",
    }
    fields.update(changes)
    j.order(**fields)  # type: ignore[arg-type]


def nothing_written(j: Journal) -> bool:
    return (
        j.events_frame().empty
        and j.order_events_frame().empty
        and j.orders_frame().empty
        and j.fills_frame().empty
    )


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips_its_payload_exactly(kind: str) -> None:
    with Journal(clock=Clock()) as j:
        j.record(
            kind,
            game="G1",
            ticker="KXNBAGAME-A",
            theo=D("0.5600"),
            tiny=D("1E-6"),
            at=datetime(2026, 12, 4, 13, 0, 0, 250, tzinfo=EASTERN),
            side=Side.ASK,
            state=S.PENDING_CANCEL,
            pair=(D("0.45"), D("0.55")),
            nested={"reasons": [S.DONE, None], "ok": True, "n": 3, "x": 0.1},
        )
        frame = j.events_frame(kind)
        assert len(frame) == 1
        row = frame.iloc[0]
        assert row["kind"] == kind
        assert row["game"] == "G1"
        assert row["ticker"] == "KXNBAGAME-A"
        assert row["run_id"] == j.run_id
        assert row["ts"] == pd.Timestamp(T0 + timedelta(seconds=1))  # read 0 was the run start
        assert row["data"] == {
            "theo": "0.5600",
            "tiny": "0.000001",
            "at": "2026-12-04T18:00:00.000250+00:00",
            "side": "ask",
            "state": "pending_cancel",
            "pair": ["0.45", "0.55"],
            "nested": {"reasons": ["done", None], "ok": True, "n": 3, "x": 0.1},
        }
        assert D(row["data"]["theo"]) == D("0.56")


def test_an_explicit_timestamp_is_kept_to_the_microsecond(journal: Journal) -> None:
    at = datetime(2026, 12, 4, 13, 0, 1, 123456, tzinfo=EASTERN)
    journal.record("halt", ts=at, reason="stale_theo")
    ts = journal.events_frame("halt")["ts"].iloc[0]
    assert ts.to_pydatetime() == at
    assert str(ts.tz) == "UTC"


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"bad": {1, 2}}, TypeError, "theo event: bad is a set; a journal payload holds str,"),
        ({"deep": {"a": [1, object()]}}, TypeError, "theo event: deep['a'][1] is a object;"),
        ({"keys": {1: "x"}}, TypeError, "theo event: keys has a int key 1: keys are str"),
        ({"p": float("nan")}, ValueError, "theo event: p = nan: only finite numbers"),
        ({"p": [float("inf")]}, ValueError, "theo event: p[0] = inf: only finite numbers"),
        ({"p": D("NaN")}, ValueError, "theo event: p = NaN: only finite numbers"),
        ({"at": datetime(2026, 1, 1)}, ValueError, "theo event: at = 2026-01-01T00:00:00 is naive"),
        ({"b": b"raw"}, TypeError, "theo event: b is a bytes;"),
    ],
)
def test_a_payload_json_cannot_hold_exactly_is_refused_naming_the_key(
    journal: Journal, data: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        journal.record("theo", game="G1", ok=1, **data)  # type: ignore[arg-type]
    assert str(raised.value).startswith(message)
    assert nothing_written(journal)


@pytest.mark.parametrize("kind", ["", "Theo", "theo-x", "theo1", "a" * 33, " theo"])
def test_an_event_kind_must_be_a_short_identifier(journal: Journal, kind: str) -> None:
    with pytest.raises(ValueError, match=r"must be 1 to 32 lowercase letters or '_'"):
        journal.record(kind)
    assert nothing_written(journal)


def test_bad_event_arguments_write_nothing(journal: Journal) -> None:
    with pytest.raises(ValueError, match=r"ts = 2026-12-04T18:00:00 is naive"):
        journal.record("halt", ts=datetime(2026, 12, 4, 18, 0))
    with pytest.raises(ValueError, match="game must not be empty"):
        journal.record("halt", game="")
    with pytest.raises(TypeError, match="ticker must be a string, not int"):
        journal.record("halt", ticker=5)  # type: ignore[arg-type]
    assert nothing_written(journal)


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match=r"the journal clock's time = .* is naive"):
        Journal(clock=lambda: datetime(2026, 1, 1))


def test_events_frame_filters_by_kind_game_time_and_keeps_the_newest(journal: Journal) -> None:
    for minute, (kind, game) in enumerate(
        [("theo", "G1"), ("halt", "G1"), ("theo", "G2"), ("theo", "G1"), ("kill", None)]
    ):
        journal.record(kind, game=game, ts=T0 + timedelta(minutes=minute), n=minute)

    def ns(frame: pd.DataFrame) -> list[int]:
        return [data["n"] for data in frame["data"]]

    assert ns(journal.events_frame()) == [0, 1, 2, 3, 4]
    assert ns(journal.events_frame("theo")) == [0, 2, 3]
    assert ns(journal.events_frame(game="G1")) == [0, 1, 3]
    assert ns(journal.events_frame("theo", game="G1")) == [0, 3]
    assert ns(journal.events_frame(since=T0 + timedelta(minutes=2))) == [2, 3, 4]
    assert ns(journal.events_frame(limit=2)) == [3, 4]
    assert ns(journal.events_frame("theo", limit=1)) == [3]
    assert journal.events_frame("stall").empty
    with pytest.raises(ValueError, match="limit = 0: must be at least 1"):
        journal.events_frame(limit=0)
    with pytest.raises(ValueError, match=r"since = .* is naive"):
        journal.events_frame(since=datetime(2026, 1, 1))


# --------------------------------------------------------------------------- orders


def test_order_history_and_latest_state(journal: Journal) -> None:
    write_order(journal, "c1", S.PENDING_NEW, reason="create")
    assert [o.client_order_id for o in journal.open_orders()] == ["c1"]
    write_order(journal, "c1", S.RESTING, order_id="X1", reason="created")
    write_order(journal, "c1", S.PENDING_CANCEL, order_id="X1", filled=D("4"), reason="cancel")
    write_order(journal, "c1", S.DONE, order_id="X1", filled=D("4"), reason="canceled")

    history = journal.order_events_frame("c1")
    assert list(history["state"]) == ["pending_new", "resting", "pending_cancel", "done"]
    assert list(history["reason"]) == ["create", "created", "cancel", "canceled"]
    assert list(history["order_id"].isna()) == [True, False, False, False]  # pandas' missing
    assert list(history["order_id"].iloc[1:]) == ["X1", "X1", "X1"]
    assert list(history["filled"]) == [D(0), D(0), D(4), D(4)]
    assert list(history["ts"]) == [pd.Timestamp(T0 + timedelta(seconds=s)) for s in (1, 2, 3, 4)]

    assert journal.order_state("c1") == JournaledOrder(
        client_order_id="c1",
        order_id="X1",
        ticker="KXNBAGAME-A",
        side=Side.BID,
        price=D("0.45"),
        count=D(10),
        filled=D(4),
        state=S.DONE,
        game="G1",
        updated=T0 + timedelta(seconds=4),
        run_id=journal.run_id,
    )
    assert journal.open_orders() == []
    assert journal.order_state("c2") is None
    assert len(journal.orders_frame()) == 1


def test_order_history_can_be_read_for_one_order_or_all(journal: Journal) -> None:
    write_order(journal, "c1", S.PENDING_NEW)
    write_order(journal, "c2", S.PENDING_NEW, side=Side.ASK)
    write_order(journal, "c1", S.RESTING)
    assert list(journal.order_events_frame()["client_order_id"]) == ["c1", "c2", "c1"]
    assert list(journal.order_events_frame("c2")["side"]) == ["ask"]
    assert [(o.client_order_id, o.state) for o in journal.open_orders()] == [
        ("c2", S.PENDING_NEW),
        ("c1", S.RESTING),
    ]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"client_order_id": ""}, ValueError, "client_order_id must not be empty"),
        ({"ticker": " "}, ValueError, "ticker must not be empty"),
        ({"order_id": ""}, ValueError, "order_id must not be empty"),
        ({"state": "filled"}, ValueError, "state = 'filled': unknown (allowed: pending_new,"),
        ({"state": 3}, TypeError, "state must be a OrderState, not int"),
        ({"side": "buy"}, ValueError, "side = 'buy': unknown (allowed: bid, ask)"),
        ({"price": D("1.5")}, ValueError, "price = 1.5 must lie strictly between 0 and 1"),
        ({"price": 0.45}, TypeError, "order c1 price must be a string, int or Decimal, not float"),
        ({"count": D("0")}, ValueError, "order c1: count 0 must be positive"),
        ({"filled": D("11")}, ValueError, "order c1: filled 11 exceeds count 10.00"),
        ({"ts": datetime(2026, 1, 1)}, ValueError, "ts = 2026-01-01T00:00:00 is naive"),
        ({"reason": None}, TypeError, "order reason must be a string, not NoneType"),
    ],
)
def test_bad_order_arguments_are_refused_before_writing(
    journal: Journal, changes: dict[str, object], error: type[Exception], message: str
) -> None:
    fields: dict[str, object] = {"client_order_id": "c1", "state": S.RESTING}
    fields.update(changes)
    cid, state = fields.pop("client_order_id"), fields.pop("state")
    with pytest.raises(error) as raised:
        write_order(journal, cid, state, **fields)  # type: ignore[arg-type]
    assert message in str(raised.value)
    assert nothing_written(journal)


def test_states_given_as_their_wire_values_are_accepted(journal: Journal) -> None:
    write_order(journal, "c1", "resting", side="ask")  # type: ignore[arg-type]
    latest = journal.order_state("c1")
    assert latest is not None
    assert (latest.state, latest.side) == (S.RESTING, Side.ASK)


# --------------------------------------------------------------------------- fills


def test_fills_come_back_as_equal_domain_fills_oldest_first(journal: Journal) -> None:
    late = make_fill("f1", minute=5, side=Side.ASK, is_taker=True, client_order_id=None)
    early = make_fill("f2", minute=1, price=D("0.001"), count=D("0.50"), fee=D("0"))
    eastern = make_fill("f3", minute=3, ts=datetime(2026, 12, 4, 13, 3, tzinfo=EASTERN))
    for fill in (late, early, eastern):
        assert journal.fill(fill, game="G1") is True
    back = journal.fills()
    assert back == [early, eastern, late]
    assert [str(f.price) for f in back] == ["0.001", "0.5600", "0.5600"]
    assert [str(f.count) for f in back] == ["0.50", "3.00", "3.00"]
    assert back[2].client_order_id is None
    assert back[2].is_taker is True
    assert journal.last_fill_time() == T0 + timedelta(minutes=5)


def test_a_duplicate_fill_is_not_written_again(journal: Journal) -> None:
    assert journal.last_fill_time() is None
    assert journal.fill(make_fill("f1")) is True
    assert journal.fill(make_fill("f1", price=D("0.99"))) is False
    assert journal.fills() == [make_fill("f1")]


def test_bad_fills_are_refused_before_writing(journal: Journal) -> None:
    with pytest.raises(ValueError, match="fill_id must not be empty"):
        journal.fill(make_fill(""))
    with pytest.raises(ValueError, match=r"fill f1: ts = 2026-12-04T18:00:00 is naive"):
        journal.fill(make_fill("f1", ts=datetime(2026, 12, 4, 18, 0)))
    with pytest.raises(ValueError, match=r"fill f1: side = 'yes': unknown \(allowed: bid, ask\)"):
        journal.fill(make_fill("f1", side="yes"))
    with pytest.raises(TypeError, match="fill must be a domain Fill, not dict"):
        journal.fill({"fill_id": "f1"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="game must not be empty"):
        journal.fill(make_fill("f1"), game="")
    assert nothing_written(journal)


@given(
    price=st.integers(1, 999_999).map(lambda n: D(n).scaleb(-6)),
    count=st.integers(1, 10**9).map(lambda n: D(n).scaleb(-2)),
    fee=st.integers(0, 10**8).map(lambda n: D(n).scaleb(-4)),
    side=st.sampled_from(Side),
)
def test_any_exact_fill_and_order_round_trip(
    price: Decimal, count: Decimal, fee: Decimal, side: Side
) -> None:
    with Journal(clock=Clock()) as j:
        fill = make_fill("f1", price=price, count=count, fee=fee, side=side)
        j.fill(fill)
        j.order(
            client_order_id="c1", ticker="T", side=side, price=price, count=count,
            filled=count, state=S.DONE,
        )  # fmt: skip
        (back,) = j.fills()
        assert back == fill
        assert (str(back.price), str(back.count), str(back.fee)) == (
            str(price),
            str(count),
            str(fee),
        )
        order = j.order_state("c1")
        assert order is not None
        assert (order.price, order.count, order.filled, order.side) == (price, count, count, side)


# --------------------------------------------------------------------------- restarts


def test_a_restart_sees_the_previous_runs_orders(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path, clock=Clock()) as first:
        write_order(first, "c1", S.RESTING, order_id="X1")
        write_order(first, "c2", S.DONE)
        write_order(first, "c3", S.UNKNOWN)
        first_run = first.run_id
    with Journal(path, clock=lambda: T0 + timedelta(hours=1)) as second:
        assert second.run_id != first_run
        assert second.runs() == [(first_run, T0), (second.run_id, T0 + timedelta(hours=1))]
        assert [(o.client_order_id, o.state, o.run_id) for o in second.open_orders()] == [
            ("c1", S.RESTING, first_run),
            ("c3", S.UNKNOWN, first_run),
        ]
        assert second.known_client_order_ids() == {"c1", "c2", "c3"}
        write_order(second, "c1", S.DONE, order_id="X1")
        assert [o.client_order_id for o in second.open_orders()] == ["c3"]
        latest = second.order_state("c1")
        assert latest is not None
        assert latest.run_id == second.run_id
        assert list(second.order_events_frame("c1")["run_id"]) == [first_run, second.run_id]


def test_fills_dedup_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as first:
        assert first.fill(make_fill("f1", minute=1)) is True
        first.record("theo", p=D("0.5"))
    with Journal(path) as second:
        assert second.fill(make_fill("f1", minute=1)) is False
        assert second.fill(make_fill("f2", minute=2)) is True
        assert second.fills() == [make_fill("f1", minute=1), make_fill("f2", minute=2)]
        assert list(second.fills_frame()["run_id"]) == [first.run_id, second.run_id]
        assert list(second.events_frame()["run_id"]) == [first.run_id]
        assert second.last_fill_time() == T0 + timedelta(minutes=2)


_KILLED_WRITER = """
import sys, time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from kmm_interactive.domain import Fill, OrderState, Side
from kmm_interactive.engine.journal import Journal

t0 = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
j = Journal(sys.argv[1])
for i in range(40):
    j.record("theo", game="G1", n=i, p=Decimal("0.5600"))
    j.order(client_order_id=f"c{i}", ticker="T", side=Side.BID, price=Decimal("0.4500"),
            count=Decimal("10.00"), filled=Decimal("0.00"), state=OrderState.RESTING)
    j.fill(Fill(f"f{i}", f"o{i}", "T", Side.BID, Decimal("0.4500"), Decimal("1.00"),
                Decimal("0.0100"), False, t0 + timedelta(seconds=i), f"c{i}"))
print("ready", j.run_id, flush=True)
time.sleep(60)
"""


def test_every_committed_row_survives_a_killed_writer(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        readable, _, _ = select.select([proc.stdout], [], [], 30)
        assert readable, "the writer did not get ready within 30 s"
        ready, run_id = proc.stdout.readline().split()
        assert ready == "ready"
        assert (tmp_path / "journal.sqlite-wal").exists()  # the rows live in the WAL
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -9
    with Journal(path) as after:
        events = after.events_frame("theo")
        assert [d["n"] for d in events["data"]] == list(range(40))
        assert set(events["run_id"]) == {run_id}
        assert [o.client_order_id for o in after.open_orders()] == [f"c{i}" for i in range(40)]
        fills = after.fills()
        assert [f.fill_id for f in fills] == [f"f{i}" for i in range(40)]
        assert {(f.price, f.count, f.fee) for f in fills} == {(D("0.45"), D(1), D("0.01"))}
        assert [r for r, _ in after.runs()] == [run_id, after.run_id]


# --------------------------------------------------------------------------- the file


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    with pytest.raises(
        JournalError, match=r"schema version 2, newer than this package reads \(1\)"
    ):
        Journal(path)


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    content = b"these are not the rows you are looking for\n" * 100
    path.write_bytes(content)
    with pytest.raises(JournalError, match="is not a kmm journal"):
        Journal(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_another_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE prices (p TEXT)")
    conn.close()
    content = path.read_bytes()
    with pytest.raises(JournalError, match="an SQLite database but not a kmm journal"):
        Journal(path)
    assert path.read_bytes() == content


def test_a_path_that_cannot_be_opened_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot open journal file"):
        Journal(tmp_path / "missing" / "journal.sqlite")
    with pytest.raises(ValueError, match="give a file path, or None for an in-memory journal"):
        Journal(":memory:")


def test_a_file_journal_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path):
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()


# --------------------------------------------------------------------------- notebook tables


def test_frames_have_their_columns_and_exact_decimals(journal: Journal) -> None:
    journal.record("params", game="G1", gamma=D("0.3"))
    write_order(journal, "c1", S.RESTING, order_id="X1")
    journal.fill(make_fill("f1"), game="G1")

    events = journal.events_frame()
    orders = journal.orders_frame()
    order_events = journal.order_events_frame()
    fills = journal.fills_frame()
    assert tuple(events.columns) == EVENT_COLUMNS
    assert tuple(orders.columns) == ORDER_COLUMNS
    assert tuple(order_events.columns) == ORDER_EVENT_COLUMNS
    assert tuple(fills.columns) == FILL_COLUMNS

    for frame in (events, orders, order_events, fills):
        assert not any(pd.api.types.is_float_dtype(dtype) for dtype in frame.dtypes)
    assert str(events["ts"].dtype) == "datetime64[us, UTC]"
    assert str(orders["updated"].dtype) == "datetime64[us, UTC]"
    assert str(fills["ts"].dtype) == "datetime64[us, UTC]"

    order = orders.iloc[0]
    assert (order["price"], order["count"], order["filled"]) == (D("0.45"), D(10), D(0))
    assert all(isinstance(order[c], Decimal) for c in ("price", "count", "filled"))
    assert (order["side"], order["state"], order["order_id"]) == ("bid", "resting", "X1")
    fill = fills.iloc[0]
    assert all(isinstance(fill[c], Decimal) for c in ("price", "count", "fee"))
    assert (fill["price"], fill["count"], fill["fee"]) == (D("0.56"), D(3), D("0.01"))
    assert (fill["fill_id"], fill["is_taker"], fill["game"]) == ("f1", False, "G1")
    assert fill["ts"] == pd.Timestamp(T0)
    assert journal.fills_frame("KXNBAGAME-B").empty


def test_empty_frames_still_have_their_columns(journal: Journal) -> None:
    assert tuple(journal.events_frame().columns) == EVENT_COLUMNS
    assert tuple(journal.orders_frame().columns) == ORDER_COLUMNS
    assert tuple(journal.order_events_frame().columns) == ORDER_EVENT_COLUMNS
    assert tuple(journal.fills_frame().columns) == FILL_COLUMNS


# --------------------------------------------------------------------------- closing


def test_a_closed_journal_refuses_everything(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.sqlite")
    j.close()
    j.close()  # idempotent
    assert repr(j).endswith(", closed)")
    for call in (
        lambda: j.record("halt"),
        lambda: write_order(j, "c1", S.RESTING),
        lambda: j.fill(make_fill("f1")),
        j.fills,
        j.open_orders,
        j.events_frame,
    ):
        with pytest.raises(JournalError, match=r"journal .*journal\.sqlite is closed"):
            call()


def test_the_context_manager_closes_and_repr_names_path_and_run() -> None:
    with Journal() as j:
        assert repr(j) == f"Journal(path=None, run_id={j.run_id!r})"
    with pytest.raises(JournalError, match=r"journal \(in memory\) is closed"):
        j.record("halt")
