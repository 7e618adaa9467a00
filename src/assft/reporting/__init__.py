"""Reports over simulated or real campaigns: budget curves, AUBC, final metrics, gap closed, win matrix, Fig. 5."""

from assft.reporting.comparison import aubc_by_pair, compare_runs, rank_strategies
from assft.reporting.document import Document
from assft.reporting.report import ReportResult, build_report, write_report
from assft.reporting.runs import RunData, RunSet, load_runs
from assft.reporting.summary import compute_stats, run_aubc, summarize_runs

__all__ = [
    "Document",
    "ReportResult",
    "RunData",
    "RunSet",
    "aubc_by_pair",
    "build_report",
    "compare_runs",
    "compute_stats",
    "load_runs",
    "rank_strategies",
    "run_aubc",
    "summarize_runs",
    "write_report",
]
