"""The Odds API v4: the HTTP client, odds boards parsed into bookmaker odds, and game matching."""
