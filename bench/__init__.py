"""Benchmarks for genro-asgi, run side by side with a bare ASGI callable and Starlette.

Entry point: ``python bench/run.py`` (or ``make bench``); see ``bench/README.md``.
"""
