"""Pure quoting decisions: theo → quote table → competition → risk. No I/O, no clock reads."""
