"""Rules: symbols -> verdicts, driven by generated data tables. Rules never build text."""
