"""Fidelity losses: VGG features without torchvision, DiffQRCoder's "LPIPS", Face2QR's Wasserstein content loss,
and weight-free fallbacks.

* `VGGFeatures`: VGG16 / VGG19 convolutional trunks (Simonyan & Zisserman, configurations D and E) built from plain
  torch layers with exactly torchvision's ``features`` indices, so a state dict of torchvision's
  ``vgg16().features`` (keys ``0.weight`` …), of a whole ``vgg16()`` (keys ``features.0.weight`` …, the classifier
  is ignored) or the same as .safetensors loads. `load_vgg` reads a file the user provides (the node layer passes
  a path under ComfyUI's models folder); nothing is downloaded.
* `lpips_loss`: what DiffQRCoder calls LPIPS (its ``perceptual_loss.py``): ImageNet-normalised input, VGG16
  relu1_2, relu2_2, relu3_3, relu4_3, each feature map divided by its per-pixel channel L2 norm, then the MSE (mean
  over channels and pixels) per layer, summed over layers. Real LPIPS (Zhang et al. 2018) adds learned per-channel
  weights and sums over channels; neither paper uses them.
* `w2_content_loss`: Face2QR eq. 12, L_a = Σ_i D_W2(g_i(Z), g_i(I_s)) over VGG-19 layers (the paper does not name
  the layers; we use relu1_1 … relu5_1). Each channel's activations over the image are treated as a 1-D
  distribution. ``mode="gaussian"`` (default): the closed-form squared 2-Wasserstein distance between Gaussians
  with the channels' means and standard deviations, (μ_x − μ_y)² + (s_x − s_y)², s = √(var + ε); ``mode="sorted"``:
  the exact squared W2 between the two empirical marginals, mean((sort x − sort y)²) (same pixel count
  needed). Per layer: mean over channels; summed over layers. We return W² (``squared=True``), which is smooth
  at 0; ``squared=False`` gives √(W² + ε). Departures: channels are treated independently (no full-covariance
  Bures term) and the weights are torchvision's ImageNet VGG-19, not the MS-COCO-trained VGG-19 the paper
  mentions (not public).
* `ssim_loss` (1 − SSIM, Gaussian window 11/σ 1.5, per channel) and `pixel_loss` (L2/L1) need no weights;
  `fidelity_loss` uses LPIPS when a VGG is given and SSIM + pixel otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

VGG_CONFIGS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}
# torchvision's ImageNet weights: the files a user puts under ComfyUI/models/vgg/
VGG_WEIGHTS = {
    "vgg16": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "vgg19": ("vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
}
MODELS_SUBDIR = "vgg"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LPIPS_LAYERS = {"vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
                "vgg19": ("relu1_2", "relu2_2", "relu3_4", "relu4_4")}
W2_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def vgg_layer_names(arch: str) -> dict[str, int]:
    """Name → index in ``features``: conv{b}_{i}, relu{b}_{i}, pool{b} (torchvision's numbering)."""
    if arch not in VGG_CONFIGS:
        raise ValueError(f"arch {arch!r} is not one of {sorted(VGG_CONFIGS)}")
    names, idx, block, conv = {}, 0, 1, 1
    for v in VGG_CONFIGS[arch]:
        if v == "M":
            names[f"pool{block}"] = idx
            idx, block, conv = idx + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"], names[f"relu{block}_{conv}"] = idx, idx + 1
            idx, conv = idx + 2, conv + 1
    return names


class VGGFeatures(nn.Module):
    """The convolutional trunk of VGG16/VGG19 as ``self.features`` (torchvision's layout), frozen, in eval mode.

    forward(x, layers) takes B×3×H×W images in [0, 1] (ImageNet-normalised inside unless ``normalise_input`` is
    False) and returns {layer name: activation}, running only as deep as the deepest requested layer.
    """

    def __init__(self, arch: str = "vgg16", normalise_input: bool = True):
        super().__init__()
        self.arch = arch
        self.layer_index = vgg_layer_names(arch)
        self.normalise_input = normalise_input
        layers, c_in = [], 3
        for v in VGG_CONFIGS[arch]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU()]
                c_in = v
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.reset_parameters()
        self.requires_grad_(False)
        self.eval()

    def reset_parameters(self) -> None:
        """torchvision's initialisation (Kaiming-normal fan-out, zero bias) — for tests without weights."""
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def train(self, mode: bool = True):  # a frozen feature extractor: stays in eval mode
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        unknown = [n for n in layers if n not in self.layer_index]
        if unknown:
            raise ValueError(f"{self.arch} has no layer(s) {unknown}; known: {list(self.layer_index)}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a B×3×H×W image, got {tuple(x.shape)}")
        p = next(self.parameters())
        x = x.to(device=p.device, dtype=p.dtype)
        if self.normalise_input:
            x = (x - self.mean.to(x)) / self.std.to(x)
        wanted = {self.layer_index[n]: n for n in layers}
        out, last = {}, max(wanted)
        for i, module in enumerate(self.features):
            x = module(x)
            if i in wanted:
                out[wanted[i]] = x
            if i == last:
                break
        return out


def _missing_weights_message(arch: str, path) -> str:
    filename, url = VGG_WEIGHTS[arch]
    where = "no path was given" if path is None else f"'{path}' does not exist"
    return (f"{arch.upper()} weights not found: {where}. Download torchvision's ImageNet {arch.upper()} weights "
            f"({filename}, {url}) and put the file in the ComfyUI models folder under models/{MODELS_SUBDIR}/ "
            f"(e.g. ComfyUI/models/{MODELS_SUBDIR}/{filename}). A .pth or .safetensors state dict of torchvision's "
            f"{arch}() or {arch}().features loads. Without weights, use the weight-free fidelity "
            f"(ssim_loss + pixel_loss).")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled modules, corrupt files
        raise ValueError(f"could not read '{path}' as a state dict of tensors ({exc.__class__.__name__}: {exc}); "
                         f"save `model.state_dict()`, not the model") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"'{path}' holds a {type(sd).__name__}, not a state dict")
    return sd


def features_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of a torchvision VGG (``features.N.*``, optionally under ``module.``) or of its ``features``
    (``N.*``) → ``N.*``; classifier keys dropped."""
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}
    if any(k.startswith("features.") for k in sd):
        return {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    return {k: v for k, v in sd.items() if k.split(".", 1)[0].isdigit()}


def _arch_of(sd: dict[str, torch.Tensor]) -> str | None:
    convs = len({k.split(".", 1)[0] for k in sd if k.endswith(".weight") and sd[k].dim() == 4})
    return {13: "vgg16", 16: "vgg19"}.get(convs)


def load_vgg(path=None, arch: str = "vgg16", *, random_init: bool = False, device=None,
             dtype: torch.dtype | None = None, normalise_input: bool = True) -> VGGFeatures:
    """A frozen `VGGFeatures` with the weights in `path` (.pth / .pt / .bin / .safetensors state dict).

    path None with ``random_init=True`` gives randomly initialised weights (tests). A missing file raises
    FileNotFoundError naming the file to download and where to put it; a file of the other architecture raises
    ValueError.
    """
    if arch not in VGG_CONFIGS:
        raise ValueError(f"arch {arch!r} is not one of {sorted(VGG_CONFIGS)}")
    if path is None and not random_init:
        raise FileNotFoundError(_missing_weights_message(arch, None))
    p = None if path is None else Path(path).expanduser()
    if p is not None and not p.is_file():
        raise FileNotFoundError(_missing_weights_message(arch, p))
    model = VGGFeatures(arch, normalise_input=normalise_input)
    if p is not None:
        sd = features_state_dict(_read_state_dict(p))
        found = _arch_of(sd)
        if found is None:
            raise ValueError(f"'{p}' does not look like a VGG16/VGG19 state dict (keys: {list(sd)[:6]} …)")
        if found != arch:
            raise ValueError(f"'{p}' holds {found.upper()} weights but {arch.upper()} was asked for")
        model.features.load_state_dict(sd, strict=True)
    return model.to(device=device, dtype=dtype)


def _per_item(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(1)


def _channel_normalise(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / torch.sqrt((f * f).sum(1, keepdim=True) + eps)


def _features(vgg: VGGFeatures, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
    if x.requires_grad:
        return vgg(x, layers)
    with torch.no_grad():
        return vgg(x, layers)


def lpips_loss(image: torch.Tensor, reference: torch.Tensor, vgg: VGGFeatures,
               layers: Sequence[str] | None = None) -> torch.Tensor:
    """DiffQRCoder's VGG "LPIPS" per item (B,): Σ_layers MSE of channel-L2-normalised features. `reference` may
    have batch 1 (broadcast)."""
    layers = tuple(layers) if layers is not None else LPIPS_LAYERS[vgg.arch]
    fx, fy = _features(vgg, image, layers), _features(vgg, reference, layers)
    total = 0
    for n in layers:
        a, b = _channel_normalise(fx[n]), _channel_normalise(fy[n])
        total = total + _per_item((a - b.expand_as(a)) ** 2)
    return total.to(image.dtype)


def w2_distance(fx: torch.Tensor, fy: torch.Tensor, mode: str = "gaussian", squared: bool = True,
                eps: float = 1e-8) -> torch.Tensor:
    """Per-item (B,) mean over channels of the (squared) 2-Wasserstein distance between each channel's activation
    distributions of two B×C×H×W feature maps (`fy` may have batch 1)."""
    a, b = fx.flatten(2), fy.flatten(2)
    if b.shape[0] == 1:
        b = b.expand(a.shape[0], -1, -1)
    if mode == "gaussian":
        mu_a, mu_b = a.mean(-1), b.mean(-1)
        s_a = torch.sqrt(a.var(-1, unbiased=False) + eps)
        s_b = torch.sqrt(b.var(-1, unbiased=False) + eps)
        w2 = (mu_a - mu_b) ** 2 + (s_a - s_b) ** 2                      # B×C
    elif mode == "sorted":
        if a.shape[-1] != b.shape[-1]:
            raise ValueError("mode='sorted' needs feature maps with the same number of pixels")
        w2 = ((a.sort(-1).values - b.sort(-1).values) ** 2).mean(-1)
    else:
        raise ValueError(f"mode {mode!r} is not 'gaussian' or 'sorted'")
    w2 = w2.mean(-1)
    return w2 if squared else torch.sqrt(w2 + eps)


def w2_content_loss(image: torch.Tensor, reference: torch.Tensor, vgg: VGGFeatures,
                    layers: Sequence[str] = W2_LAYERS, mode: str = "gaussian", squared: bool = True) -> torch.Tensor:
    """Face2QR's aesthetic content loss per item (B,): Σ_layers W2 between feature distributions (see module doc).
    Face2QR uses VGG-19."""
    layers = tuple(layers)
    fx, fy = _features(vgg, image, layers), _features(vgg, reference, layers)
    total = 0
    for n in layers:
        total = total + w2_distance(fx[n], fy[n], mode=mode, squared=squared)
    return total.to(image.dtype)


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    r = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(image: torch.Tensor, reference: torch.Tensor, window: int = 11, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """Per-item (B,) mean SSIM (Wang et al. 2004) with a Gaussian window, per channel, valid region only; the
    window shrinks (odd) for images smaller than it."""
    if image.dim() != 4:
        raise ValueError(f"expected B×C×H×W, got {tuple(image.shape)}")
    ref = reference.to(image).expand_as(image)
    c = image.shape[1]
    size = min(window, image.shape[-1], image.shape[-2])
    size -= (size + 1) % 2
    g = _gaussian_window(size, sigma, image.device, image.dtype)
    kh, kw = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, kh, groups=c), kw, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(image), blur(ref)
    sxx = blur(image * image) - mx * mx
    syy = blur(ref * ref) - my * my
    sxy = blur(image * ref) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return _per_item(s)


def ssim_loss(image: torch.Tensor, reference: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-item (B,) 1 − SSIM."""
    return 1 - ssim(image, reference, window, sigma)


def pixel_loss(image: torch.Tensor, reference: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Per-item (B,) mean squared ("l2") or absolute ("l1") pixel difference."""
    d = image - reference.to(image)
    if kind == "l2":
        return _per_item(d * d)
    if kind == "l1":
        return _per_item(d.abs())
    raise ValueError(f"kind {kind!r} is not 'l2' or 'l1'")


def fidelity_loss(image: torch.Tensor, reference: torch.Tensor, vgg: VGGFeatures | None = None, *,
                  ssim_weight: float = 1.0, pixel_weight: float = 1.0) -> torch.Tensor:
    """Per-item (B,) fidelity to `reference`: `lpips_loss` with a VGG, else ssim_weight·(1 − SSIM) +
    pixel_weight·L2 (the weight-free fallback)."""
    if vgg is not None:
        return lpips_loss(image, reference, vgg)
    return ssim_weight * ssim_loss(image, reference) + pixel_weight * pixel_loss(image, reference)


__all__ = ["VGGFeatures", "load_vgg", "vgg_layer_names", "features_state_dict", "lpips_loss", "w2_distance",
           "w2_content_loss", "ssim", "ssim_loss", "pixel_loss", "fidelity_loss", "VGG_WEIGHTS", "MODELS_SUBDIR"]
