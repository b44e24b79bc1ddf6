"""Synthetic B2B demo data: a hidden fit and intent drive engagement and sales outcomes."""

from samepage.demo.generate import DEFAULT_END, DemoSummary, generate_demo, iter_demo_chunks, summarize, write_demo

__all__ = ["DEFAULT_END", "DemoSummary", "generate_demo", "iter_demo_chunks", "summarize", "write_demo"]
