"""Synthetic B2B demo data: a hidden fit and intent drive engagement and sales outcomes.

`params` holds the fixed numbers and the vocabulary, `simulate` the draws, `assemble` the
canonical tables and what `samepage demo` writes.
"""

from samepage.demo.assemble import DemoSummary, generate_demo, iter_demo_chunks, summarize, write_demo
from samepage.demo.params import DEFAULT_END

__all__ = ["DEFAULT_END", "DemoSummary", "generate_demo", "iter_demo_chunks", "summarize", "write_demo"]
