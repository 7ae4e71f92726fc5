"""What the strategy lab measures, per fill, per game and per run, and the tables made of it.

Money stays ``Decimal`` in the records (it is summed from the exchange's fills); the
DataFrames turn it into floats for statistics and plots, which is where floats belong.

Definitions (one place for each):

* **PnL** = realized PnL after each market settles at the drawn result, fees included.
* **Markout** of a fill = (truth ``markout_horizon`` later, or at the start if that comes
  first − price) × count for a bid, the opposite for an ask: what the fill was worth once
  the market learned more.
* **Adverse-selection loss** = − the markouts of the fills made within ``news_window``
  after one of the game's news jumps (informed flow picks off quotes the bookmakers have not
  repriced yet). Positive is money lost.
* **Share of taker flow** = our contracts filled / every contract traded in the game's
  markets before its start (every trade has one taker).
* **Budget share** = write tokens spent (10 a write, 2 a cancel) / what the tier's write
  rate allows the account over the time quoted: per game, that game's tokens over its own
  quoted time; per run, every game's tokens over the longest quoted time (the account's
  whole budget for the day).
* **Worst case** = the peak of q plus every resting order of one direction (both books of a
  game can fill at once), against the sport's cap: what the cap promises, which realized
  |q| alone cannot show.
* **PnL/σ(PnL)** = mean over seeds of a configuration's run PnL divided by its standard
  deviation across those seeds (a Sharpe ratio over seeds, not over time).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kmm_interactive.domain import ZERO

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class FillRow:
    """One of our fills, with the truth at the fill and ``markout_horizon`` later."""

    event_ticker: str
    ticker: str
    side: str  # "bid" or "ask" of the YES book
    price: Decimal
    count: Decimal
    fee: Decimal
    ts: float
    truth: float
    truth_later: float
    theo: float | None

    @property
    def markout(self) -> float:
        sign = 1.0 if self.side == "bid" else -1.0
        return sign * (self.truth_later - float(self.price)) * float(self.count)


@dataclass(frozen=True)
class GameResult:
    event_ticker: str
    sport: str
    cap: int
    pnl: Decimal
    settlement: Decimal  # the part of the PnL that settlement paid (or took)
    fees: Decimal
    fills: int
    contracts: Decimal
    traded: Decimal
    max_abs_q: Decimal
    max_worst: Decimal
    q_at_start: Decimal
    markout: float
    adverse_loss: float
    news_fills: int
    writes: tuple[tuple[str, int], ...]
    tokens: int
    budget: float
    rechecks: int

    @classmethod
    def of(
        cls,
        event_ticker: str,
        sport: str,
        cap: int,
        pnl: Decimal,
        settlement: Decimal,
        fills: Sequence[FillRow],
        max_abs_q: Decimal,
        max_worst: Decimal,
        q_at_start: Decimal,
        traded: Decimal,
        news: Sequence[float],
        news_window: float,
        writes: dict[str, int],
        tokens: int,
        budget: float,
        rechecks: int,
    ) -> GameResult:
        after_news = [f for f in fills if any(0 <= f.ts - t <= news_window for t in news)]
        return cls(
            event_ticker=event_ticker,
            sport=sport,
            cap=cap,
            pnl=pnl,
            settlement=settlement,
            fees=sum((f.fee for f in fills), ZERO),
            fills=len(fills),
            contracts=sum((f.count for f in fills), ZERO),
            traded=traded,
            max_abs_q=max_abs_q,
            max_worst=max_worst,
            q_at_start=q_at_start,
            markout=math.fsum(f.markout for f in fills),
            adverse_loss=math.fsum(-f.markout for f in after_news),
            news_fills=len(after_news),
            writes=tuple(sorted(writes.items())),
            tokens=tokens,
            budget=budget,
            rechecks=rechecks,
        )

    def row(self) -> dict[str, Any]:
        writes = dict(self.writes)
        return {
            "event_ticker": self.event_ticker,
            "sport": self.sport,
            "pnl": float(self.pnl),
            "settlement": float(self.settlement),
            "fees": float(self.fees),
            "fills": self.fills,
            "contracts": float(self.contracts),
            "traded": float(self.traded),
            "taker_share": float(self.contracts / self.traded) if self.traded else 0.0,
            "max_abs_q": float(self.max_abs_q),
            "cap": self.cap,
            "max_q_over_cap": float(self.max_abs_q) / self.cap,
            "worst_case_over_cap": float(self.max_worst) / self.cap,
            "q_at_start": float(self.q_at_start),
            "markout": self.markout,
            "adverse_loss": self.adverse_loss,
            "news_fills": self.news_fills,
            "writes": sum(writes.values()),
            "cancels": writes.get("cancel", 0),
            "tokens": self.tokens,
            "budget": self.budget,
            "budget_share": self.tokens / self.budget if self.budget else 0.0,
            "rechecks": self.rechecks,
        }


@dataclass(frozen=True)
class RunResult:
    """One run: a scenario, a strategy configuration and a seed."""

    scenario: str
    strategy: str
    seed: int
    games: tuple[GameResult, ...]
    rejected: tuple[tuple[str, int], ...]
    model_errors: int
    decisions: int
    exchange_cash: Decimal  # our cash change at the exchange when the run ended
    virtual_seconds: float
    wall_seconds: float

    @property
    def pnl(self) -> Decimal:
        return sum((g.pnl for g in self.games), ZERO)

    def same_outcome(self, other: RunResult) -> bool:
        """Equal in everything but the wall time it took (determinism checks)."""
        return self == dataclasses.replace(other, wall_seconds=self.wall_seconds)


_KEYS = ("scenario", "strategy", "seed")


@dataclass(frozen=True)
class LabResults:
    """Many runs, as tables: ``games`` (a row per run and game), ``runs`` (a row per run) and
    ``summary`` (a row per scenario and strategy, across seeds)."""

    runs_done: tuple[RunResult, ...]

    def __len__(self) -> int:
        return len(self.runs_done)

    def games(self) -> pd.DataFrame:
        import pandas as pd

        rows = [
            {"scenario": r.scenario, "strategy": r.strategy, "seed": r.seed} | g.row()
            for r in self.runs_done
            for g in r.games
        ]
        return pd.DataFrame(rows)

    def runs(self) -> pd.DataFrame:
        """Per run: sums over its games, the worst game's |q| and worst case against its cap,
        the account's budget share, and the wall time the run took."""
        games = self.games()
        if games.empty:
            raise ValueError("no runs (or runs of no games) to tabulate")
        summed = ["pnl", "settlement", "fees", "fills", "contracts", "traded", "markout"]
        summed += ["adverse_loss"]
        summed += ["news_fills", "writes", "cancels", "tokens", "rechecks"]
        grouped = games.groupby(list(_KEYS), sort=False)
        out = grouped[summed].sum()
        out["max_q_over_cap"] = grouped["max_q_over_cap"].max()
        out["worst_case_over_cap"] = grouped["worst_case_over_cap"].max()
        out["q_at_start"] = grouped["q_at_start"].sum()
        out["taker_share"] = (out["contracts"] / out["traded"]).fillna(0.0)
        out["budget_share"] = out["tokens"] / grouped["budget"].max()
        out = out.reset_index()
        wall = {(r.scenario, r.strategy, r.seed): r.wall_seconds for r in self.runs_done}
        out["wall_seconds"] = [wall[k] for k in zip(*(out[c] for c in _KEYS), strict=True)]
        return out

    def summary(self) -> pd.DataFrame:
        """Per scenario and strategy across seeds: mean PnL, σ(PnL), PnL/σ(PnL), the worst
        max |q| / cap, and the means of adverse-selection loss, fees, fills, taker share,
        |q| into the start, budget share and wall time.
        ``pnl_over_sd`` is NaN from one seed (no σ) and ±inf when every seed made the same."""
        runs = self.runs()
        grouped = runs.groupby(["scenario", "strategy"], sort=False)
        out = grouped.agg(
            seeds=("seed", "count"),
            mean_pnl=("pnl", "mean"),
            sd_pnl=("pnl", "std"),
            worst_q_over_cap=("max_q_over_cap", "max"),
            worst_case_over_cap=("worst_case_over_cap", "max"),
            adverse_loss=("adverse_loss", "mean"),
            fees=("fees", "mean"),
            fills=("fills", "mean"),
            taker_share=("taker_share", "mean"),
            q_at_start=("q_at_start", "mean"),
            budget_share=("budget_share", "mean"),
            wall_seconds=("wall_seconds", "mean"),
        )
        out.insert(3, "pnl_over_sd", out["mean_pnl"] / out["sd_pnl"])
        return out.reset_index()
