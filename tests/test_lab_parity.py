"""The strategy lab and the live engine decide alike: one scripted book and fill sequence, fed
to each side's own state building (the lab's from the exchange core, the engine's from an
``OrderBook``, its order list and a position book kept from the fills), gives equal
decisions at every step: prices, sizes, reasons, halts and back-off memory.

The script walks the competition and risk rules: a competitor outbids us, one sits far above
our ceiling, takers push the inventory past the over-exposed line (break-even ceilings), the
competitors leave, and the start buffer halts the game.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from kmm_interactive.domain import Fill, Side
from kmm_interactive.engine.game import GameRuntime, OwnOrder
from kmm_interactive.kalshi.book import OrderBook
from kmm_interactive.kalshi.models import BookLevels
from kmm_interactive.ledger import PositionBook
from kmm_interactive.sim import lab
from kmm_interactive.sim.agents import AgentConfig
from kmm_interactive.sim.exchange import CC, SimOrder, cc_to_count
from kmm_interactive.strategy.halts import HaltReason, TradingState
from kmm_interactive.strategy.inputs import quote_params
from kmm_interactive.strategy.quoter import Decision, decide

QUIET = AgentConfig(
    retail=False, stale_liquidity=False, market_makers=0, informed=False, lifecycle=False
)
SPEC = lab.LabScenario("parity", mix="nba", games=1, agents=QUIET, first_start=3600.0,
                       last_start=3600.0)  # fmt: skip
COMPETITOR, TAKER = "script-mm", "script-taker"


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Script:
    """The lab's run with no agents, driven step by step, and an engine-side twin."""

    def __init__(self) -> None:
        self.run = lab._Run(SPEC, lab.LabConfig(), seed=11)
        ex = self.run.exchange
        for user in (COMPETITOR, TAKER):
            ex.open_account(user, Decimal(10) ** 9, keep_history=False)
        self.g = next(iter(self.run.games.values()))
        self.run._pull([self.g], lab.ORIGIN, recheck=False)
        g = self.g
        assert g.probs is not None
        assert g.theo_as_of is not None
        profile = self.run.product.sports[g.game.sport]
        self.engine = GameRuntime(g.game, g.game.sport, profile, self.run.product)
        self.engine.set_theo(dict(g.probs), at(g.theo_as_of))
        # The same problem from each side's own inputs, so one solve serves both.
        table = g.tables[0]
        assert table is not None
        assert self.engine.problem(0) == table.problem
        self.engine.tables[0] = table
        self.positions = PositionBook()
        self.seen_fills = 0
        self.competing: list[SimOrder] = []

    @property
    def a(self) -> str:
        return self.g.game.market_a.ticker

    @property
    def b(self) -> str:
        return self.g.game.market_b.ticker

    # -------------------------------------------------------------- the script's moves

    def compete(self, ticker: str, side: str, price: str, size: int = 10) -> None:
        order = self.run.exchange.create_order(
            COMPETITOR, ticker=ticker, side=side, price=price, count=size,
            time_in_force="good_till_canceled", self_trade_prevention_type="maker",
            post_only=True,
        )  # fmt: skip
        assert order.live, f"the script's {side} at {price} on {ticker} did not rest"
        self.competing.append(order)

    def leave(self) -> None:
        for order in self.competing:
            if order.live:
                self.run.exchange.cancel_order(COMPETITOR, order.order_id)
        self.competing.clear()

    def take(self, ticker: str, side: str, price: str, size: int) -> None:
        self.run.exchange.create_order(
            TAKER, ticker=ticker, side=side, price=price, count=size,
            time_in_force="immediate_or_cancel", self_trade_prevention_type="taker_at_cross",
        )  # fmt: skip

    # -------------------------------------------------------------- both sides decide

    def step(self, t: float) -> Decision:
        self.run.clock.set(t)
        ours = self.run.decide_now(self.g, t)
        theirs = self._engine_decides(t)
        assert ours == theirs
        self._execute(ours, t)
        return ours

    def _engine_decides(self, t: float) -> Decision:
        ex, g = self.run.exchange, self.g
        for record in ex.account(lab.LAB_USER).fills[self.seen_fills :]:
            self.positions.apply_fill(
                Fill(record.fill_id, record.order_id, record.ticker, Side(record.book_side),
                     record.price, cc_to_count(record.count), record.fee, record.is_taker,
                     at(record.ts))
            )  # fmt: skip
        self.seen_fills = len(ex.account(lab.LAB_USER).fills)
        books: dict[str, OrderBook] = {}
        own: dict[str, dict[tuple[Side, Decimal], Decimal]] = {}
        orders: list[OwnOrder] = []
        for m in g.game.markets:
            book = ex.market(m.ticker).book
            levels = BookLevels(
                tuple(self._levels(m.grid, book.sizes["bid"], best_first_high=True)),
                tuple(self._levels(m.grid, book.sizes["ask"], best_first_high=False)),
            )
            books[m.ticker] = OrderBook.from_levels(m.ticker, levels)
            own[m.ticker] = {}
            for side in Side:
                s = g.sides[(m.ticker, side)]
                if s.order is not None and s.order.live:
                    left = cc_to_count(s.order.remaining)
                    own[m.ticker][(side, s.order.price)] = left
                    orders.append(OwnOrder(m.ticker, side, s.order.price, left, at(s.since)))
        exposure = {}
        for markets in self.engine.units:
            tickers = tuple(m.ticker for m in markets)
            e = self.positions.exposure(tickers)  # type: ignore[arg-type]
            exposure[tickers] = (e.q, e.claim_cost)
        # The engine's guard holds the odds-recheck halt while a recheck is pending.
        halts = frozenset({HaltReason.ODDS_RECHECK}) if g.recheck_pending else frozenset()
        state = self.engine.state(books, own, orders, exposure, halts, at(t))
        decision = decide(state, quote_params(self.run.product, self.engine.profile), at(t))
        self.engine.remember(decision)
        return decision

    @staticmethod
    def _levels(
        grid: object, sizes: dict[int, int], *, best_first_high: bool
    ) -> Iterable[tuple[Decimal, Decimal]]:
        for tick in sorted(sizes, reverse=best_first_high):
            yield grid.price(tick), cc_to_count(sizes[tick])  # type: ignore[attr-defined]

    def _execute(self, decision: Decision, t: float) -> None:
        """Put the decision's quotes on the exchange at once, by the lab's own write rule (no
        latency: the script is about deciding, and the state each side reads must match)."""
        for (ticker, side), wanted in sorted(decision.quotes.items()):
            write = self.run._plan(self.g, ticker, side, wanted)
            if write is not None:
                self.run._apply(write, t)


def test_the_lab_and_the_engine_decide_alike_step_by_step() -> None:
    script = Script()
    t0 = lab.ORIGIN
    first = script.step(t0 + 1)
    assert any(q.quoting for q in first.quotes.values()), "the script needs quotes to work on"

    bid_a = first.quotes[(script.a, Side.BID)]
    assert bid_a.tick is not None
    grid = script.g.game.market_a.grid
    # A competitor one tick above our bid: outbid (or hold while the min rest runs).
    script.compete(script.a, "bid", str(grid.price(bid_a.tick + 1)))
    script.step(t0 + 1.5)
    outbid = script.step(t0 + 3.5)  # 2.5 s after our bid was placed: the min rest is over
    assert outbid.quotes[(script.a, Side.BID)].competitor is not None

    # One far above our ceiling: back off, and stay off while the hold lasts.
    ceiling = outbid.quotes[(script.a, Side.BID)].ceiling
    assert ceiling is not None
    script.compete(script.a, "bid", str(grid.price(min(ceiling + 3, len(grid) - 2))))
    backed = script.step(t0 + 7)
    assert backed.units[0].quotes[0].backed_off_since is not None or any(
        q.backed_off_since for q in backed.quotes.values()
    )
    script.step(t0 + 12)

    # Takers sell YES A into our bid and buy YES B from our ask until we are over-exposed.
    cap = backed.units[0].cap
    for n in range(12):
        script.take(script.a, "ask", "0.01", 10)
        script.take(script.b, "bid", "0.99", 10)
        d = script.step(t0 + 20 + 3 * n)
        if d.units[0].over_exposed:
            break
    assert d.units[0].over_exposed, f"q = {d.units[0].q} never passed half of cap {cap}"
    assert script.positions.exposure((script.a, script.b)).claim_cost is not None

    # A recheck is pending: only the sides that reduce the exposure quote, on both sides.
    script.g.recheck_pending = True
    reducing = script.step(t0 + 90)
    assert HaltReason.ODDS_RECHECK in reducing.halts
    assert reducing.state is TradingState.REDUCING
    script.g.recheck_pending = False

    # The competitors leave: walk back down; time passes; the start buffer halts the game.
    script.leave()
    for t in (t0 + 100, t0 + 140, t0 + 600):
        script.step(t)
    start = script.g.spec.start
    halted = script.step(start - script.run.product.risk.start_buffer + 1)
    assert HaltReason.GAME_STARTED in halted.halts
    assert not any(q.quoting for q in halted.quotes.values())
    assert script.seen_fills > 0
    assert CC == 100
