"""The ``kmm`` command.

``kmm check-config [PATH]`` validates a configuration file; ``kmm quote`` prints the quote
table a sport profile gives for a game at a theo, as a trader's sanity check; ``kmm sim``
serves the embedded exchange and odds feed on 127.0.0.1 until interrupted; ``kmm run``
runs the market maker headless (against the embedded exchange unless told otherwise),
printing a status line every few seconds and a summary at the end; ``kmm demo`` runs the
quickstart notebook's story in the terminal (``make demo-headless``).

Failure semantics: a bad argument, configuration or key exits with status 2 and one
``kmm: error:`` line on stderr. ``kmm run --env prod`` (or a configuration whose
``exchange.env`` is ``prod``) without ``--confirm-prod`` is such an error, raised before any
key is read or any host contacted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kmm_interactive import __version__
from kmm_interactive.config import ConfigError, load_config, parse_duration

_EPILOG = """\
examples:
  kmm check-config kmm.toml
  kmm quote --sport nba --theo 0.62 --tau 2h
  kmm quote --sport boxing --theo 0.4 --q=-10,0,10 --model glft
  kmm sim --seed 7 --speed 30 --json
  kmm run --seconds 60                          # the embedded exchange, one minute
  kmm demo --seconds 60                         # the quickstart's story, in the terminal
  kmm run --config kmm.toml --env demo          # Kalshi's demo host, keys from the environment
"""


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text}: a theo must lie strictly between 0 and 1")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text, "--tau")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _inventories(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give whole contract counts separated by commas, e.g. -20,0,20"
        ) from None


def _games(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text}: the number of games must be in 1 … 1000")
    return value


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 10_000.0:
        raise argparse.ArgumentTypeError(f"{text}: the speed must be in (0, 10000]")
    return value


def build_parser() -> argparse.ArgumentParser:
    from kmm_interactive.domain import FeeType
    from kmm_interactive.pricing.fees import SUPPORTED_FEE_TYPES
    from kmm_interactive.pricing.quote_table import QuoteModel

    parser = argparse.ArgumentParser(
        prog="kmm",
        description="kmm_interactive: a Kalshi sports market maker steered from Jupyter.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kmm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("path", nargs="?", default="kmm.toml", help="TOML file (default kmm.toml)")

    quote = commands.add_parser("quote", help="print the quote table for a game")
    quote.add_argument("--sport", default="nba", help="sport profile (default nba)")
    quote.add_argument(
        "--theo", type=_probability, required=True, help="probability that team A wins"
    )
    quote.add_argument(
        "--tau", type=_duration, default=7200.0, help="time to start, e.g. 90m or 2h (default 2h)"
    )
    quote.add_argument(
        "--q",
        type=_inventories,
        default=None,
        help="inventories to show (default: −cap … cap in 9 steps)",
    )
    quote.add_argument(
        "--model",
        choices=[m.value for m in QuoteModel],
        default=None,
        help="quoting model (default: the config's)",
    )
    quote.add_argument(
        "--fee-type",
        choices=sorted(t.value for t in SUPPORTED_FEE_TYPES),
        default=FeeType.QUADRATIC_WITH_MAKER_FEES.value,
        help="the series' fee_type (default quadratic_with_maker_fees)",
    )
    quote.add_argument("--config", default=None, help="TOML file (default: built-in defaults)")

    from kmm_interactive.sim.ratelimit import TIERS
    from kmm_interactive.sim.scenario import MIXES

    sim = commands.add_parser("sim", help="serve the embedded exchange and odds feed")
    sim.add_argument("--seed", type=int, default=7, help="scenario seed (default 7)")
    sim.add_argument(
        "--scenario", choices=sorted(MIXES), default="default", help="sport mix (default default)"
    )
    sim.add_argument(
        "--speed", type=_speed, default=30.0, help="time compression factor (default 30)"
    )
    sim.add_argument(
        "--json", action="store_true", help="print the connection details as one JSON line"
    )
    sim.add_argument(
        "--games", type=_games, default=None, help="number of games (default: the scenario's)"
    )
    sim.add_argument(
        "--tier", choices=sorted(TIERS), default="basic", help="rate-limit tier (default basic)"
    )

    run = commands.add_parser("run", help="run the market maker headless")
    run.add_argument("--config", default=None, help="TOML file (default: built-in defaults)")
    run.add_argument(
        "--env", choices=("embedded", "demo", "prod"), default=None,
        help="where to trade (default: the configuration's exchange.env)",
    )  # fmt: skip
    run.add_argument(
        "--seconds",
        type=_positive_seconds,
        default=None,
        help="stop after this long (default: Ctrl-C)",
    )
    run.add_argument("--journal", default=None, help="SQLite journal file (default: in memory)")
    run.add_argument(
        "--status-every", type=_positive_seconds, default=5.0, help="seconds between status lines"
    )
    run.add_argument("--sport", action="append", default=None, help="limit to a sport (repeatable)")
    run.add_argument("--seed", type=int, default=7, help="embedded scenario seed (default 7)")
    run.add_argument(
        "--speed", type=_speed, default=30.0, help="embedded time compression (default 30)"
    )
    run.add_argument(
        "--confirm-prod", action="store_true", help="required with --env prod: real money"
    )
    run.add_argument(
        "--connect", default=None, metavar="FILE",
        help="trade an exchange started elsewhere: the JSON `kmm sim --json` printed",
    )  # fmt: skip
    demo = commands.add_parser("demo", help="the quickstart's story in the terminal")
    demo.add_argument(
        "--seconds", type=_positive_seconds, default=60.0, help="how long (default 60, >= 20)"
    )
    demo.add_argument("--seed", type=int, default=7, help="scenario seed (default 7)")
    demo.add_argument("--speed", type=_speed, default=30.0, help="time compression (default 30)")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = parse_duration(float(text) if _is_number(text) else text, "seconds")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be more than zero seconds")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import logging
    from pathlib import Path

    from kmm_interactive.kalshi.auth import CredentialsError
    from kmm_interactive.launch import (
        EmbeddedExchange,
        compressed,
        connection_from_info,
        live_connection,
        run_headless,
    )

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    env = args.env or config.exchange.env
    if args.connect is not None and env != "embedded":
        # Connection details name an exchange on this machine: never Kalshi's hosts, so no
        # --env demo / prod (whose gate, --confirm-prod, is live_connection's).
        raise ValueError(
            f"--connect trades an exchange `kmm sim` started on this machine, not env {env!r} "
            "(drop --env, or give --env embedded)"
        )
    embedded = env == "embedded" and args.connect is None
    world = EmbeddedExchange(seed=args.seed, speed=args.speed) if embedded else None
    try:
        if args.connect is not None:
            try:
                info = json.loads(Path(args.connect).read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"--connect {args.connect}: not readable JSON ({exc})") from None
            if not isinstance(info, dict):
                raise ValueError(f"--connect {args.connect}: expected a JSON object")
            connection = connection_from_info(info, env)
        elif world is not None:
            connection = world.start()
            config = compressed(config, args.speed)
            print(
                f"embedded exchange, time compressed {args.speed:g}x: stop "
                f"{config.risk.start_buffer:g} s before each start, odds pulled every "
                f"{config.refresh.odds:g} s"
            )
        else:
            connection = live_connection(config, env, confirm_prod=args.confirm_prod)
    except CredentialsError as exc:
        print(f"kmm: error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(
            run_headless(
                config,
                connection,
                seconds=args.seconds,
                journal_path=args.journal,
                status_every=args.status_every,
                sports=tuple(args.sport) if args.sport else None,
            )
        )
    finally:
        if world is not None:
            world.stop()
    for line in summary.lines():
        print(line)
    unverified = summary.stop_report is not None and not summary.stop_report.ok
    return 1 if summary.failures or unverified else 0


def _demo(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from kmm_interactive.story import run_story

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run_story(args.seconds, seed=args.seed, speed=args.speed))


def _check_config(path: str) -> int:
    config = load_config(path)
    print(
        f"{path}: valid; exchange env {config.exchange.env}, quoting model "
        f"{config.quoting.model}, {len(config.sports)} sport profiles"
    )
    for name, profile in config.sports.items():
        print(
            f"  {name:14} gamma={profile.gamma:<6g} cap={profile.cap:<5} "
            f"sigma={profile.sigma:<8g} k={profile.prior_k:<4g} A={profile.prior_A:<6g} "
            f"series={','.join(profile.series) or '-'}"
        )
    return 0


def _quote(args: argparse.Namespace) -> int:
    from kmm_interactive.domain import FeeType, PriceGrid, SeriesFees
    from kmm_interactive.pricing.hjb import solve_quote_table
    from kmm_interactive.pricing.quote_table import BookInputs, QuoteProblem

    config = load_config(args.config)
    profile = config.profile(args.sport)
    fees = SeriesFees(FeeType(args.fee_type))
    grid = PriceGrid.linear_cent()

    def book(theo: float) -> BookInputs:
        return BookInputs(grid=grid, theo=theo, A=profile.prior_A, k=profile.prior_k, fees=fees)

    problem = QuoteProblem(
        book_a=book(args.theo),
        book_b=book(1.0 - args.theo),
        gamma=profile.gamma,
        q_max=profile.cap,
        sigma=profile.sigma,
        horizon=max(config.quoting.horizon, args.tau),
        n_tau=config.quoting.tau_points,
    )
    model = args.model or config.quoting.model
    table = solve_quote_table(problem, model)
    cap = profile.cap
    shown = args.q if args.q is not None else sorted({round(cap * f / 4) for f in range(-4, 5)})
    frame = table.frame(args.tau).loc[[q for q in shown if -cap <= q <= cap]]
    print(
        f"{args.sport}: theo A {args.theo:.4f}, {args.tau / 60:.0f} min to start, model "
        f"{model}, gamma {profile.gamma:g}/$, cap {cap}, sigma {profile.sigma:g} $/√s, "
        f"A {profile.prior_A:g}/s, k {profile.prior_k:g}/¢, fees {fees.fee_type.value}"
    )
    print("q > 0 is long team A (YES A or NO B); prices are YES prices in dollars.")
    print(frame.to_string(float_format=lambda x: f"{x:.2f}", na_rep="—"))
    return 0


def _sim(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import signal
    import time

    from kmm_interactive.sim.embedded import start_embedded, uptime_summary

    async def serve() -> None:
        # Stop cleanly (servers closed, demo key deleted) on Ctrl-C, TERM or HUP alike.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        sim = await start_embedded(
            seed=args.seed, scenario=args.scenario, speed=args.speed, n_games=args.games,
            tier=args.tier,
        )  # fmt: skip
        started = time.monotonic()
        try:
            info = sim.connection_info()
            if args.json:
                print(json.dumps(info), flush=True)
            else:
                print(f"embedded Kalshi exchange: {info['rest_url']}")
                print(f"WebSocket:                {info['ws_url']}")
                print(f"odds feed:                {info['odds_url']}")
                print(f"demo key id:              {info['key_id']}")
                print(f"private key:              {info['private_key_path']}")
                print(f"{len(sim.scenario.games)} games, speed {args.speed:g}; Ctrl-C stops")
                print("(`kmm sim --json` prints these, with the odds API key, as JSON)", flush=True)
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 60)
                except TimeoutError:
                    if not args.json:
                        print(uptime_summary(sim, started), flush=True)
        finally:
            await sim.close()

    asyncio.run(serve())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            return _check_config(args.path)
        if args.command == "quote":
            return _quote(args)
        if args.command == "sim":
            return _sim(args)
        if args.command == "run":
            return _run(args)
        if args.command == "demo":
            return _demo(args)
    except (ConfigError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"kmm: error: {message}", file=sys.stderr)
        return 2
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
