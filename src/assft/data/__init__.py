"""Data: dataset layouts (MSD, nnU-Net v2, plain folder), validation, loading and preprocessing.

Names resolve lazily (PEP 562): reading or checking a dataset must not pay for importing torch and MONAI, which
only preprocessing needs (`assft data check` and every early input error stay fast).
"""

from __future__ import annotations

from assft.utils.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Case": "assft.data.cases", "DatasetSpec": "assft.data.cases",
    "DataReport": "assft.data.checks", "Problem": "assft.data.checks", "check_dataset": "assft.data.checks",
    "read_volume": "assft.data.io", "write_label_map": "assft.data.io", "write_volume": "assft.data.io",
    "load_dataset": "assft.data.layout",
    "LoadedCase": "assft.data.cases", "load_case": "assft.data.preprocess",
    "normalize_intensity": "assft.data.preprocess",
    "load_split": "assft.data.splits", "make_split": "assft.data.splits", "save_split": "assft.data.splits",
    "select_cases": "assft.data.splits",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
