"""Durable, append-only storage of study records (see ``ffnn.results``)."""

from ..results import RESULTS_FILE, ResultStore, load_results, read_records, run_key  # noqa: F401
