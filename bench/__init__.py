"""Benchmark harness: a fast fake OpenAI upstream, a load driver and the one-command runner.

Run it with ``uv run python bench/run.py [--quick]``; see ``docs/performance.md``.
"""
