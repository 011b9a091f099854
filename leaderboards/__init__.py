"""Leaderboard builder: lm-eval results files (with the reflectevo provenance block) → tables and plots."""
