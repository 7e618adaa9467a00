"""`assft import --format monai | monai-bundle`: a MONAI network (state dict + class + kwargs) or a MONAI bundle as
a supervised assft checkpoint whose preprocessing and sliding window are the ones the network was trained with.

A bundle is read with MONAI's own parser (`monai.bundle.ConfigParser`): `network_def` gives the class and its
kwargs, `models/model.pt` the weights, `preprocessing` and `inferer` the grid, intensity normalisation and window.
Every transform is mapped onto PreprocessConfig or refused by name: a bundle assft would run differently from MONAI
is never imported.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np

from assft.config import ModelConfig, PreprocessConfig
from assft.errors import CheckpointError, ConfigError
from assft.models.checkpoint import compare_state_dicts, make_checkpoint, save_checkpoint
from assft.models.monai_nets import monai_class
from assft.models.zoo import MONAI_PREFIX, build_model, check_sizes
from assft.pretrain.formats import strip_wrappers
from assft.pretrain.importer import ImportOutput, read_weight_file

MONAI_FORMATS = ("monai", "monai-bundle")
# Transforms that only read or retype the image: nothing to reproduce.
PASSIVE = {"LoadImage", "LoadImaged", "EnsureChannelFirst", "EnsureChannelFirstd", "AddChannel", "AddChanneld",
           "EnsureType", "EnsureTyped", "ToTensor", "ToTensord", "CastToType", "CastToTyped", "Identity", "Identityd"}
# Postprocessing assft does itself (softmax, argmax, back to the input grid, writing files).
POST_OK = {"Activations", "Activationsd", "AsDiscrete", "AsDiscreted", "Invertd", "SaveImage", "SaveImaged",
           "EnsureType", "EnsureTyped", "ToTensor", "ToTensord", "CopyItemsd", "DeleteItemsd", "Identity", "Identityd"}
BUNDLE_FIX = "assft cannot import this bundle as it is; import its network with --format monai and the preprocessing " \
             "assft supports as options (see docs/models.md)"


def monai_model_config(arch: str, kwargs: dict[str, Any], source: str | Path | None = None) -> ModelConfig:
    """ModelConfig "monai.ARCH" from constructor kwargs (in/out channels taken out; the rest must be JSON values)."""
    cls = monai_class(arch)
    kwargs = dict(kwargs)
    signature = inspect.signature(cls).parameters
    channels = {}
    for key in ("in_channels", "out_channels"):
        default = signature[key].default if key in signature else inspect.Parameter.empty
        value = kwargs.pop(key, default)
        if value is inspect.Parameter.empty:
            raise ConfigError(f"monai.networks.nets.{arch} needs {key}.", path=source, fix=f"add \"{key}\" to --arch-args")
        channels[key] = int(value)
    for key, value in kwargs.items():
        try:
            json.dumps(value)
        except TypeError as exc:
            raise ConfigError(f"argument {key}={value!r} of {arch} is not a plain value (a {type(value).__name__}), "
                              "so the checkpoint cannot record it.", path=source,
                              fix="write it as a string, number or list (e.g. act \"PRELU\", norm [\"INSTANCE\", {}])"
                              ) from exc
    return ModelConfig(name=MONAI_PREFIX + cls.__name__, params=kwargs, dropout=0.0, **channels)


def import_monai_network(arch: str, arch_args: dict[str, Any], weights: str | Path, out: str | Path, *,
                         preprocess: PreprocessConfig, inference: dict[str, Any] | None = None,
                         labels: dict[int, str] | None = None, trust_pickle: bool = False,
                         source_format: str = "monai", extra_metadata: dict[str, Any] | None = None) -> ImportOutput:
    """A state dict of monai.networks.nets.ARCH(**arch_args) -> a supervised assft checkpoint at `out`.

    Every key must match in name and shape (the network is used as it is, head included); otherwise a
    CheckpointError carries the key report and nothing is written.
    """
    path = Path(weights)
    model_config = monai_model_config(arch, arch_args, path)
    model = build_model(model_config)
    if inference and inference.get("roi_size"):  # a window the network cannot take would fail at the first pass
        check_sizes(model_config, tuple(inference["roi_size"]))
    raw = read_weight_file(path, trust_pickle=trust_pickle)
    # MONAI's own keys may start with "model." (UNet, AttentionUnet): strip wrapper prefixes only where that fits better
    candidates = [raw, strip_wrappers(raw, ("module.", "_orig_mod.")), strip_wrappers(raw)]
    reports = [compare_state_dicts(model.state_dict(), c) for c in candidates]
    best = max(range(len(candidates)), key=lambda i: len(reports[i].loaded))
    state, report = candidates[best], reports[best]
    # BatchNorm's step counter is not a weight; files saved without it are complete.
    report.missing = [k for k in report.missing if not k.endswith("num_batches_tracked")]
    if report.missing or report.unexpected or report.mismatched:
        raise CheckpointError(f"the weights do not fit monai.networks.nets.{arch}({json.dumps(arch_args)}): "
                              f"{report.summary()}.", path=path,
                              fix="check --arch and --arch-args: they must be the arguments the weights were "
                                  "trained with")
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    labels = labels or {i: ("background" if i == 0 else f"class_{i}") for i in range(model_config.out_channels)}
    if len(labels) != model_config.out_channels:
        raise ConfigError(f"{len(labels)} label names for a network with {model_config.out_channels} outputs.",
                          fix="pass one name per output channel (--labels background,...)")
    metadata = {"imported_from": str(path), "import_format": source_format, "key_report": report.to_dict(),
                "inference": dict(inference or {}), **(extra_metadata or {})}
    ckpt = make_checkpoint(model, model_config, labels, kind="supervised", preprocess=preprocess, metadata=metadata)
    save_checkpoint(out, ckpt)
    return ImportOutput(Path(out), source_format, model_config, report)


def import_monai_bundle(bundle: str | Path, out: str | Path, *, trust_pickle: bool = False) -> ImportOutput:
    """A MONAI bundle folder (configs/inference.json|yaml, models/model.pt) -> a supervised assft checkpoint."""
    bundle = Path(bundle)
    parser = _bundle_parser(bundle)
    arch, kwargs = _network(parser, bundle)
    preprocess, notes = bundle_preprocess(parser, bundle, int(kwargs.get("in_channels", 1)))
    inference = bundle_inferer(parser, bundle)
    _check_postprocessing(parser, bundle)
    weights = bundle / "models" / "model.pt"
    if not weights.is_file():
        found = sorted(p.name for p in (bundle / "models").glob("*")) if (bundle / "models").is_dir() else []
        raise CheckpointError(f"the bundle has no models/model.pt (found: {', '.join(found) or 'nothing'}).",
                              path=bundle, fix="put the bundle's state dict at models/model.pt (a TorchScript "
                                               "model.ts cannot be imported: its kwargs are gone)")
    return import_monai_network(arch, kwargs, weights, out, preprocess=preprocess, inference=inference,
                                labels=_bundle_labels(bundle), trust_pickle=trust_pickle,
                                source_format="monai-bundle",
                                extra_metadata={"bundle": str(bundle), "bundle_notes": notes})


def _bundle_parser(bundle: Path):
    from monai.bundle import ConfigParser

    configs = bundle / "configs"
    found = [configs / f"inference.{ext}" for ext in ("json", "yaml", "yml") if (configs / f"inference.{ext}").is_file()]
    if not found:
        raise CheckpointError("not a MONAI bundle: no configs/inference.json (or .yaml).", path=bundle,
                              fix="pass the bundle's root folder (the one holding configs/ and models/)")
    parser = ConfigParser()
    parser.read_config(found[0])
    parser["bundle_root"] = str(bundle)  # bundles refer to their files through @bundle_root
    return parser


def _parsed(parser, key: str, bundle: Path) -> Any:
    try:
        return parser.get_parsed_content(key, instantiate=True)
    except Exception as exc:  # the bundle's own expressions may fail in many ways; name the entry
        raise CheckpointError(f"MONAI's bundle parser cannot build {key!r} ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}).", path=bundle,
                              fix="check the bundle with `python -m monai.bundle verify_metadata`/`run` first") from exc


def _network(parser, bundle: Path) -> tuple[str, dict[str, Any]]:
    """(class name, resolved kwargs) of `network_def`, a class of monai.networks.nets."""
    import monai.networks.nets as nets

    raw = parser.get("network_def")
    if not isinstance(raw, dict) or "_target_" not in raw:
        raise CheckpointError("the bundle's config has no network_def with a _target_.", path=bundle, fix=BUNDLE_FIX)
    network = _parsed(parser, "network_def", bundle)
    name = type(network).__name__
    if getattr(nets, name, None) is not type(network):
        raise CheckpointError(f"network_def is {type(network).__module__}.{name}, not a class of "
                              "monai.networks.nets, so a checkpoint cannot rebuild it.", path=bundle, fix=BUNDLE_FIX)
    kwargs = {key: _parsed(parser, f"network_def#{key}", bundle) for key in raw if not key.startswith("_")}
    return name, kwargs


def bundle_preprocess(parser, bundle: Path, in_channels: int) -> tuple[PreprocessConfig, list[str]]:
    """PreprocessConfig of the bundle's `preprocessing` Compose; a transform assft cannot reproduce is refused."""
    from monai.transforms import Compose

    compose = _parsed(parser, "preprocessing", bundle)
    transforms = compose.transforms if isinstance(compose, Compose) else [compose]
    fields: dict[str, Any] = {"normalization": "none"}  # no intensity transform: raw intensities
    notes: list[str] = []
    intensity_seen = None
    for t in transforms:
        name = type(t).__name__

        def refuse(why: str) -> CheckpointError:
            return CheckpointError(f"the bundle's preprocessing uses {name} ({why}), which assft cannot reproduce.",
                                   path=bundle, fix=BUNDLE_FIX)

        if name in PASSIVE:
            continue
        if name in ("Orientation", "Orientationd"):
            ornt = getattr(t, "ornt_transform", t)
            if ornt.axcodes is None or ornt.as_closest_canonical:
                raise refuse("no axis codes given")
            fields["orientation"] = ornt.axcodes
        elif name in ("Spacing", "Spacingd"):
            fields["target_spacing"] = _spacing(t, refuse)
            if intensity_seen:
                raise refuse(f"it resamples after {intensity_seen}; assft resamples first, then normalises")
        elif name in ("NormalizeIntensity", "NormalizeIntensityd"):
            n = getattr(t, "normalizer", t)
            if n.subtrahend is not None or n.divisor is not None or (in_channels > 1 and not n.channel_wise):
                raise refuse("fixed subtrahend/divisor or statistics over all channels together")
            fields.update(normalization="zscore", nonzero=bool(n.nonzero))
        elif name in ("ScaleIntensityRange", "ScaleIntensityRanged"):
            s = getattr(t, "scaler", t)
            if not s.clip or s.b_min is None or s.b_max is None:
                raise refuse("without clip=True and b_min/b_max")
            fields.update(normalization="range", intensity_range=(s.a_min, s.a_max, s.b_min, s.b_max))
        elif name in ("ScaleIntensityRangePercentiles", "ScaleIntensityRangePercentilesd"):
            s = getattr(t, "scaler", t)
            if not s.clip or s.relative or (s.b_min, s.b_max) != (0.0, 1.0) or (in_channels > 1 and not s.channel_wise):
                raise refuse("only clip=True, relative=False to [0, 1] maps onto assft's percentile scaling")
            fields.update(normalization="percentile", percentiles=(s.lower, s.upper))
        else:
            raise refuse("no assft counterpart")
        if name.startswith(("Normalize", "Scale")):
            intensity_seen = name
    return PreprocessConfig(**fields), notes


def _spacing(t, refuse) -> tuple[float, float, float]:
    """Spacing(d)'s pixdim, when it resamples as assft does (MONAI's defaults: bilinear, border, no extras)."""
    s = getattr(t, "spacing_transform", t)
    resample = getattr(s, "sp_resample", None)
    mode = _first(getattr(t, "mode", None) or getattr(resample, "mode", "bilinear"))
    padding = _first(getattr(t, "padding_mode", None) or getattr(resample, "padding_mode", "border"))
    if str(mode).split(".")[-1].lower() != "bilinear" or str(padding).split(".")[-1].lower() != "border":
        raise refuse(f"mode {mode}, padding {padding}; assft resamples bilinear with border padding")
    bounds = [b for b in (s.min_pixdim, s.max_pixdim) if b is not None and np.isfinite(np.asarray(b, float)).any()]
    if any(_first(getattr(t, k, False)) for k in ("align_corners", "scale_extent")) or s.diagonal or s.scale_extent \
            or s.recompute_affine or bounds:
        raise refuse("align_corners/diagonal/scale_extent/recompute_affine/min_pixdim/max_pixdim set")
    pixdim = [float(p) for p in s.pixdim]
    if len(pixdim) != 3 or min(pixdim) <= 0:
        raise refuse(f"pixdim {pixdim} is not three positive spacings")
    return tuple(pixdim)  # type: ignore[return-value]


def _first(value: Any) -> Any:
    """The image key's entry of a dictionary transform's per-key tuple (or the value itself)."""
    return value[0] if isinstance(value, list | tuple) else value


def bundle_inferer(parser, bundle: Path) -> dict[str, Any]:
    """roi_size, overlap and mode of the bundle's SlidingWindowInferer (others are refused)."""
    inferer = _parsed(parser, "inferer", bundle)
    name = type(inferer).__name__
    if name != "SlidingWindowInferer":
        raise CheckpointError(f"the bundle's inferer is {name}; assft runs every network with a sliding window.",
                              path=bundle, fix=BUNDLE_FIX)
    roi = [int(r) for r in (inferer.roi_size if isinstance(inferer.roi_size, list | tuple) else [inferer.roi_size] * 3)]
    mode = str(inferer.mode).split(".")[-1].lower()
    padding = str(inferer.padding_mode).split(".")[-1].lower()
    sigma = inferer.sigma_scale
    if len(roi) != 3 or min(roi) < 1 or mode not in ("gaussian", "constant") or padding != "constant" \
            or inferer.cval != 0 or (mode == "gaussian" and sigma != 0.125):
        raise CheckpointError(f"the bundle's SlidingWindowInferer (roi {roi}, mode {mode}, padding {padding}, "
                              f"cval {inferer.cval}, sigma_scale {sigma}) differs from assft's window (a positive 3D "
                              "roi, gaussian sigma 0.125 or constant, zero padding).", path=bundle, fix=BUNDLE_FIX)
    return {"roi_size": roi, "overlap": float(inferer.overlap), "mode": mode, "blend": "logits"}


def _check_postprocessing(parser, bundle: Path) -> None:
    """Postprocessing beyond softmax/argmax/inversion/saving would change the label map: refused by name."""
    if "postprocessing" not in parser.config:
        return
    from monai.transforms import Compose

    compose = _parsed(parser, "postprocessing", bundle)
    for t in compose.transforms if isinstance(compose, Compose) else [compose]:
        name = type(t).__name__
        act = getattr(t, "activations", None) or getattr(t, "activ", None) or t
        sigmoid = getattr(act, "sigmoid", False)
        if name not in POST_OK or (isinstance(sigmoid, list | tuple) and any(sigmoid)) or sigmoid is True:
            raise CheckpointError(f"the bundle's postprocessing uses {name}{' with sigmoid' if name in POST_OK else ''}"
                                  ", which assft cannot reproduce (it takes the softmax and its argmax).",
                                  path=bundle, fix=BUNDLE_FIX)


def _bundle_labels(bundle: Path) -> dict[int, str] | None:
    """Class names from configs/metadata.json (network_data_format.outputs.pred.channel_def), if given."""
    meta = bundle / "configs" / "metadata.json"
    if not meta.is_file():
        return None
    try:
        channel_def = json.loads(meta.read_text())["network_data_format"]["outputs"]["pred"]["channel_def"]
        return {int(k): str(v) for k, v in channel_def.items()}
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None
