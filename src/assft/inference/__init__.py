"""Inference: MONAI sliding-window passes that also reduce hooks to embeddings and norm moments."""

from assft.inference.predict import (
    PassResult,
    iter_loaded,
    make_inferer,
    predict_probs,
    predict_to_folder,
    prepare_model,
    run_pass,
    softmax_predictor,
)

__all__ = [
    "PassResult",
    "iter_loaded",
    "make_inferer",
    "predict_probs",
    "predict_to_folder",
    "prepare_model",
    "run_pass",
    "softmax_predictor",
]
