"""The games table as HTML: one row per game, its four quotes with sizes, the best competitor
and each side's reason. Pure: views in, a string out (the render task sends it only when
it changed)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal

from kmm_interactive.engine.views import GameView, SideView

_STATE_COLOUR = {"ACTIVE": "#1a7f37", "REDUCING": "#9a6700", "HALTED": "#cf222e"}
_STYLE = (
    "<style>.kmm-games{border-collapse:collapse;font-size:12px;font-family:monospace}"
    ".kmm-games td,.kmm-games th{border-bottom:1px solid #d0d7de;padding:2px 6px;"
    "vertical-align:top;text-align:left;white-space:nowrap}"
    ".kmm-games .why{color:#57606a;font-size:11px}.kmm-games tr.sel{background:#ddf4ff}"
    ".kmm-games-box{max-height:420px;overflow:auto}</style>"
)
#: Longest reason shown in a cell (the whole one is the cell's tooltip).
_REASON_CHARS = 34


def _cents(price: Decimal | None) -> str:
    return "–" if price is None else f"{price * 100:.1f}".rstrip("0").rstrip(".") + "¢"


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "started"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}" if hours else f"{minutes}m{secs:02d}"


def _count(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _reason(text: str) -> str:
    short = text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"
    return html.escape(short)


def _side_cell(s: SideView) -> str:
    label = html.escape(s.label)
    why = html.escape(s.reason)
    head = f"<b>{label}</b> –" if s.price is None else f"<b>{label}</b> {_cents(s.price)}×{s.size}"
    details = [f"best {_cents(s.competitor)}"]
    if s.resting is not None:
        details.append(f"rests {_cents(s.resting)}×{_count(s.resting_size)}")
    return (
        f'<td title="{why}">{head} <span class="why">{" · ".join(details)}</span>'
        f'<br><span class="why">{_reason(s.reason)}</span></td>'
    )


def _sides(v: GameView, width: int) -> str:
    """The quote cells; one line for a game that quotes nothing, for one reason."""
    if not v.sides:
        return f'<td colspan="{width}" class="why"><i>no decision yet</i></td>'
    idle = all(s.price is None and s.resting is None for s in v.sides)
    if idle and len({s.reason for s in v.sides}) == 1:
        why = html.escape(v.sides[0].reason)
        return f'<td colspan="{width}" class="why">not quoting: {why}</td>'
    cells = "".join(_side_cell(s) for s in v.sides)
    if len(v.sides) < width:
        cells += f'<td colspan="{width - len(v.sides)}"></td>'
    return cells


def _theo_cell(v: GameView) -> str:
    if v.theo_a is None:
        return "<td>none</td>"
    age = "" if v.theo_age is None else f", {v.theo_age:.0f} s"
    mark = ""
    if v.override_until is not None:
        feed = "–" if v.feed_theo_a is None else f"{v.feed_theo_a:.3f}"
        mark = f' <b style="color:#8250df">OVERRIDE</b> (feed {feed})'
    return f"<td>{v.theo_a:.3f}{mark}<br><span class='why'>{v.theo_source}{age}</span></td>"


def games_table_html(views: Sequence[GameView], selected: str | None = None) -> str:
    """The table (see the module doc); ``selected`` is highlighted."""
    if not views:
        return "<i>no games tracked yet</i>"
    width = max(4, *(len(v.sides) for v in views))
    rows = []
    for v in views:
        colour = _STATE_COLOUR.get(v.state, "#57606a")
        halts = html.escape(", ".join(v.halts))
        sides = _sides(v, width)
        selected_class = ' class="sel"' if v.event_ticker == selected else ""
        rows.append(
            f"<tr{selected_class}><td><b>{html.escape(v.title)}</b><br>"
            f'<span class="why">{html.escape(v.event_ticker)}</span></td>'
            f"<td>{html.escape(v.sport)}</td><td>{_duration(v.seconds_to_start)}</td>"
            f'<td><b style="color:{colour}">{v.state}</b><br><span class="why">{halts}</span></td>'
            f"{_theo_cell(v)}<td>{_count(v.q)} / {v.cap}</td>{sides}<td>{v.pnl:+.2f}</td></tr>"
        )
    return (
        f'{_STYLE}<div class="kmm-games-box"><table class="kmm-games">'
        "<tr><th>game</th><th>sport</th><th>to start</th>"
        f"<th>state</th><th>theo A</th><th>q / cap</th><th colspan={width}>quotes: want×size,"
        " the others' best, what rests, why</th><th>PnL</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )
