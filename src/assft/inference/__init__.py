"""Inference: one pass engine (MONAI's sliding window, windows of several volumes per forward call) whose hooks
reduce activations to embeddings and norm moments."""

from assft.inference.engine import iter_probs, iter_windows_pass, plan_windows, softmax_predictor
from assft.inference.predict import (
    PassResult,
    iter_loaded,
    predict_probs,
    predict_to_folder,
    prepare_model,
    run_pass,
)

__all__ = [
    "PassResult",
    "iter_loaded",
    "iter_probs",
    "iter_windows_pass",
    "plan_windows",
    "predict_probs",
    "predict_to_folder",
    "prepare_model",
    "run_pass",
    "softmax_predictor",
]
