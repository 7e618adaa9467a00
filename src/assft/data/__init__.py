"""Data: dataset layouts (MSD, nnU-Net v2, plain folder), validation, loading and preprocessing."""

from assft.data.cases import Case, DatasetSpec
from assft.data.checks import DataReport, Problem, check_dataset
from assft.data.io import read_volume, write_label_map, write_volume
from assft.data.layout import load_dataset
from assft.data.preprocess import LoadedCase, load_case, normalize_intensity
from assft.data.splits import load_split, make_split, save_split, select_cases

__all__ = [
    "Case",
    "DataReport",
    "DatasetSpec",
    "LoadedCase",
    "Problem",
    "check_dataset",
    "load_case",
    "load_dataset",
    "normalize_intensity",
    "load_split",
    "make_split",
    "read_volume",
    "save_split",
    "select_cases",
    "write_label_map",
    "write_volume",
]
