"""The built-in streaming platform: a simulated world of viewers and movies and its event log."""
