"""Public weight formats: how each maps its state-dict keys onto a registered network and infers its config.

Every format is a pure function `state_dict -> (ModelConfig, renamed state_dict)`; the importer builds the network,
compares keys (loaded / missing / unexpected / shape-mismatched) and writes an assft checkpoint.

- `swin-ssl`: MONAI Swin UNETR self-supervised weights (`model_swinvit.pt`): the Swin ViT encoder only, keys
  `module.patch_embed.*`, `module.layers{1-4}.0.blocks.{n}.*` (MLP as `mlp.fc1/fc2`), `module.layers{i}.0.downsample.*`
  -> `swinViT.*` of MONAI's SwinUNETR (`mlp.linear1/linear2`), as `SwinUNETR.load_from` maps them.
- `suprem`, `voco`: a whole MONAI SwinUNETR (`swinViT.*`, `encoder*`, `decoder*`, `out.*`), possibly behind
  `module.` / `backbone.` / `model.` prefixes (SuPreM: `{"net": ...}` with `module.backbone.`); a SuPreM U-Net file
  (`down_tr*` keys) maps onto `genesis_unet`.
- `models-genesis`: Models Genesis' UNet3D (`down_tr64 ... out_tr.final_conv`) -> the `genesis_unet` model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from assft.config import ModelConfig
from assft.errors import CheckpointError
from assft.registry import Registry

StateDict = dict[str, torch.Tensor]
WRAPPER_PREFIXES = ("module.", "backbone.", "model.", "_orig_mod.")


@dataclass(frozen=True)
class ImportFormat:
    """One public weight format: its key mapping and where users get such a file."""

    convert: Callable[[StateDict, Path | None], tuple[ModelConfig, StateDict]]
    source: str  # where users get such a file (shown in docs and errors)
    __doc__: str = ""


IMPORT_FORMATS: Registry[ImportFormat] = Registry("import format")


def strip_wrappers(state: StateDict, prefixes: tuple[str, ...] = WRAPPER_PREFIXES) -> StateDict:
    """Remove DataParallel / wrapper prefixes (`module.`, `backbone.`, `model.`) from every key, repeatedly."""
    from assft.models.checkpoint import strip_prefixes

    return strip_prefixes(state, prefixes)


def detect_format(state: StateDict) -> str | None:
    """Best guess of a state dict's format from its keys (used to suggest the right --format), or None."""
    keys = list(strip_wrappers(state))
    if any(k.startswith("down_tr64.") for k in keys):
        return "models-genesis"
    if any(k.startswith(("swinViT.", "swin_vit.")) for k in keys):
        return "suprem"  # or voco: the same key layout
    if any(k.startswith(("patch_embed.", "layers1.0.blocks.")) for k in keys):
        return "swin-ssl"
    return None


def _mlp_names(key: str) -> str:
    return key.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")


def _need(state: StateDict, key: str, path: Path | None, fmt: str) -> torch.Tensor:
    if key not in state:
        guess = detect_format(state)
        hint = f" It looks like --format {guess}." if guess and guess != fmt else ""
        raise CheckpointError(f"the weights have no {key!r}, which every {fmt!r} file has.{hint} "
                              f"First keys: {', '.join(list(state)[:4])}.", path=path,
                              fix=f"pass the right --format (known: {', '.join(IMPORT_FORMATS.names())})")
    return state[key]


def infer_swin_config(state: StateDict, path: Path | None, fmt: str) -> ModelConfig:
    """SwinUNETR config from `swinViT.*` shapes: feature_size, in/out channels, depths, heads, use_v2."""
    embed = _need(state, "swinViT.patch_embed.proj.weight", path, fmt)
    feature_size, in_channels, patch = int(embed.shape[0]), int(embed.shape[1]), int(embed.shape[2])
    depths, heads = [], []
    for i in range(1, 5):
        blocks = {int(m.group(1)) for k in state if (m := re.match(rf"swinViT\.layers{i}\.0\.blocks\.(\d+)\.", k))}
        table = _need(state, f"swinViT.layers{i}.0.blocks.0.attn.relative_position_bias_table", path, fmt)
        depths.append(len(blocks))
        heads.append(int(table.shape[1]))
        window = round(math.pow(int(table.shape[0]), 1 / 3) + 1) // 2
        if patch != 2 or window != 7:
            raise CheckpointError(f"patch size {patch} / window size {window} are not supported (the registered "
                                  "swinunetr uses patch 2 and window 7).", path=path,
                                  fix="these weights need a differently configured Swin UNETR; they cannot be imported")
    out = state.get("out.conv.conv.weight")
    params = {"feature_size": feature_size, "depths": tuple(depths), "num_heads": tuple(heads),
              "use_v2": any(k.startswith("swinViT.layers1c.") for k in state)}
    return ModelConfig(name="swinunetr", in_channels=in_channels,
                       out_channels=int(out.shape[0]) if out is not None else in_channels, params=params, dropout=0.0)


def infer_genesis_config(state: StateDict, path: Path | None, fmt: str) -> ModelConfig:
    """genesis_unet config from shapes: base width, in/out channels."""
    first = _need(state, "down_tr64.ops.0.conv1.weight", path, fmt)
    out = state.get("out_tr.final_conv.weight")
    in_channels = int(first.shape[1])
    return ModelConfig(name="genesis_unet", in_channels=in_channels,
                       out_channels=int(out.shape[0]) if out is not None else in_channels,
                       params={"base": int(first.shape[0])}, dropout=0.0)


def convert_swin_ssl(state: StateDict, path: Path | None) -> tuple[ModelConfig, StateDict]:
    """`model_swinvit.pt`: encoder-only keys (no `swinViT.`) -> `swinViT.*`, mlp.fc1/fc2 -> mlp.linear1/linear2."""
    state = strip_wrappers(state)
    if any(k.startswith(("encoder1.", "decoder1.", "out.conv.")) for k in state):
        raise CheckpointError("these are whole Swin UNETR weights, not the encoder-only SSL file.", path=path,
                              fix="pass --format suprem or --format voco")
    mapped = {}
    for key, value in state.items():
        if key.startswith("swin_vit."):
            key = "swinViT." + key[len("swin_vit."):]
        elif key.startswith(("patch_embed.", "layers1", "layers2", "layers3", "layers4")):
            key = "swinViT." + key
        mapped[_mlp_names(key)] = value
    return infer_swin_config(mapped, path, "swin-ssl"), mapped


def convert_swinunetr(state: StateDict, path: Path | None, fmt: str) -> tuple[ModelConfig, StateDict]:
    """Whole-SwinUNETR files: strip wrappers, `swin_vit.` -> `swinViT.`, mlp names; a U-Net file goes to genesis."""
    state = strip_wrappers(state)
    if any(k.startswith("down_tr64.") for k in state):
        return convert_genesis(state, path)
    mapped = {_mlp_names(k.replace("swin_vit.", "swinViT.", 1) if k.startswith("swin_vit.") else k): v
              for k, v in state.items()}
    return infer_swin_config(mapped, path, fmt), mapped


def convert_genesis(state: StateDict, path: Path | None) -> tuple[ModelConfig, StateDict]:
    """Models Genesis / SuPreM UNet3D keys are genesis_unet keys once wrappers are stripped."""
    state = strip_wrappers(state)
    return infer_genesis_config(state, path, "models-genesis"), state


IMPORT_FORMATS.register("swin-ssl")(ImportFormat(
    convert_swin_ssl,
    "model_swinvit.pt from the MONAI research-contributions SwinUNETR/Pretrain release",
    "MONAI Swin UNETR self-supervised encoder (model_swinvit.pt; feature_size 48)."))
IMPORT_FORMATS.register("suprem")(ImportFormat(
    lambda s, p: convert_swinunetr(s, p, "suprem"),
    "supervised_suprem_swinunetr_2100.pth (or supervised_suprem_unet_2100.pth) from the SuPreM release",
    "SuPreM Swin UNETR (or U-Net) weights, whole network; a supervised source head for unknown classes."))
IMPORT_FORMATS.register("voco")(ImportFormat(
    lambda s, p: convert_swinunetr(s, p, "voco"),
    "a VoCo Swin UNETR checkpoint (e.g. VoCo_B_SSL_head.pt) from the VoCo release",
    "VoCo self-supervised Swin UNETR weights (whole network or encoder)."))
IMPORT_FORMATS.register("models-genesis")(ImportFormat(
    convert_genesis,
    "Genesis_Chest_CT.pt from the Models Genesis release",
    "Models Genesis 3D U-Net (UNet3D) self-supervised weights."))
