from datetime import UTC, datetime, timedelta

import pytest

from kmm_interactive.pricing.consensus import BookOdds, ConsensusParams, consensus
from kmm_interactive.pricing.devig import devig

NOW = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
FRESH = NOW - timedelta(minutes=2)
PARAMS = ConsensusParams(devig_method="multiplicative", anchor_weight=0.6, min_books=2)


def book(name, a, b, age_minutes=2.0):
    return BookOdds(name, (a, b), NOW - timedelta(minutes=age_minutes))


def fair(a, b):
    return devig([a, b], "multiplicative")


def test_pinnacle_anchored_weighted_mean():
    books = [
        book("pinnacle", 1.60, 2.50),
        book("draftkings", 1.57, 2.45),
        book("fanduel", 1.62, 2.35),
    ]
    result = consensus(books, NOW, PARAMS)
    rest = [(x + y) / 2 for x, y in zip(fair(1.57, 2.45), fair(1.62, 2.35), strict=True)]
    expected = 0.6 * fair(1.60, 2.50)[0] + 0.4 * rest[0]
    assert result.ok
    assert result.anchored
    assert result.probabilities[0] == pytest.approx(expected)
    assert sum(result.probabilities) == pytest.approx(1.0)
    assert result.books_used == ("pinnacle", "draftkings", "fanduel")
    assert result.newest_update == FRESH
    assert result.dispersion > 0


def test_stale_and_outlier_books_are_dropped_with_reasons():
    books = [
        book("pinnacle", 1.60, 2.50),
        book("draftkings", 1.58, 2.45),
        book("bovada", 1.58, 2.45, age_minutes=40),  # stale
        book("mybookie", 2.10, 1.75),  # the other team favoured: an outlier
    ]
    result = consensus(books, NOW, PARAMS)
    assert result.books_used == ("pinnacle", "draftkings")
    assert result.dropped["bovada"].startswith("stale: last update 40 min ago")
    assert result.dropped["mybookie"].startswith("outlier")


def test_without_pinnacle_the_median_of_the_others():
    books = [
        book("draftkings", 1.57, 2.45),
        book("fanduel", 1.62, 2.35),
        book("betmgm", 1.70, 2.20),
        book("pinnacle", 1.6, 2.5, age_minutes=60),
    ]
    result = consensus(books, NOW, PARAMS)
    assert result.ok
    assert not result.anchored
    assert result.probabilities[0] == pytest.approx(fair(1.62, 2.35)[0], abs=1e-12)
    assert "pinnacle" in result.dropped


def test_anchor_alone_is_enough_when_min_books_is_one():
    result = consensus(
        [book("pinnacle", 1.8, 2.1)],
        NOW,
        ConsensusParams(devig_method="multiplicative", min_books=1),
    )
    assert result.probabilities == pytest.approx(fair(1.8, 2.1))


def test_too_few_books_gives_no_theo_and_says_why():
    books = [
        book("pinnacle", 1.6, 2.5, age_minutes=30),
        book("draftkings", 1.57, 2.45),
        book("fanduel", 1.0, 2.0),
    ]
    result = consensus(books, NOW, PARAMS)
    assert not result.ok
    assert result.probabilities is None
    assert result.reason.startswith("1 usable book(s), need 2")
    assert "pinnacle (stale" in result.reason
    assert "fanduel (bad odds" in result.reason
    assert not consensus([], NOW, PARAMS).ok


def test_wrong_outcome_count_is_dropped():
    books = [
        book("pinnacle", 1.6, 2.5),
        book("draftkings", 1.57, 2.45),
        BookOdds("fanduel", (2.0, 3.5, 3.9), FRESH),
    ]
    result = consensus(books, NOW, PARAMS)
    assert result.dropped["fanduel"] == "3 outcomes, expected 2"


def test_future_timestamps_and_clock_rules():
    books = [book("pinnacle", 1.6, 2.5), book("draftkings", 1.57, 2.45, age_minutes=-10)]
    result = consensus(books, NOW, ConsensusParams(devig_method="multiplicative", min_books=1))
    assert result.dropped["draftkings"] == "last update 600 s in the future"
    with pytest.raises(ValueError, match="timezone-aware"):
        BookOdds("pinnacle", (1.6, 2.5), datetime(2026, 11, 21, 18, 0))
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        consensus(books, datetime(2026, 11, 21, 18, 0), PARAMS)


def test_the_anchor_decides_the_outcome_count():
    books = [
        BookOdds("pinnacle", (2.5, 2.9, 3.3), FRESH),
        book("draftkings", 1.6, 2.5),
        book("fanduel", 1.62, 2.4),
    ]
    result = consensus(books, NOW, ConsensusParams(devig_method="shin", min_books=1))
    assert len(result.probabilities) == 3
    assert result.dropped["draftkings"] == "2 outcomes, expected 3"


def test_a_stale_anchor_does_not_decide_the_outcome_count():
    old = NOW - timedelta(hours=5)
    books = [
        BookOdds("pinnacle", (2.5, 2.9, 3.3), old),
        book("draftkings", 1.6, 2.5),
        book("fanduel", 1.62, 2.4),
        book("betmgm", 1.61, 2.45),
    ]
    result = consensus(books, NOW, PARAMS)
    assert result.ok
    assert len(result.probabilities) == 2
    assert result.dropped["pinnacle"].startswith("3 outcomes, expected 2")


def test_books_split_on_the_outcome_count_give_no_theo():
    books = [BookOdds("draftkings", (2.5, 2.9, 3.3), FRESH), book("fanduel", 1.62, 2.4)]
    result = consensus(books, NOW, PARAMS)
    assert result.reason == "the books disagree on the number of outcomes"


def test_three_way_soccer():
    books = [
        BookOdds("pinnacle", (2.5, 2.9, 3.3), FRESH),
        BookOdds("williamhill", (2.45, 2.8, 3.25), FRESH),
    ]
    result = consensus(books, NOW, ConsensusParams(devig_method="shin"))
    assert len(result.probabilities) == 3
    assert sum(result.probabilities) == pytest.approx(1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"anchor_weight": 1.5}, "anchor_weight = 1.5"),
        ({"devig_method": "vibes"}, "devig method 'vibes' is unknown"),
        ({"min_books": 0}, "min_books = 0"),
        ({"outlier_tolerance": 0.0}, "outlier_tolerance = 0.0"),
        ({"max_book_age": timedelta(0)}, "max_book_age"),
    ],
)
def test_bad_params(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConsensusParams(**kwargs)
