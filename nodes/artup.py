"""ARTUP nodes: the full ARTUP pipeline (picture → scanning-robust colour QR code), Face2QR marker harmonisation,
and ARTUP's per-module scanning-probability map."""

import json

import comfy.utils
import numpy as np
from comfy_api.latest import io

from ..art.artup import (
    ADJUST_MODES,
    COLOUR_MODES,
    MARKER_MODES,
    ArtupConfig,
    artup_until_scans,
)
from ..art.markers import MODES as MARKER_COLOUR_MODES
from ..art.markers import harmonize_markers
from ..losses.scan_probability import (
    DEFAULT_GLOBAL_WEIGHT,
    DEFAULT_SIGMA_S,
    DEFAULT_SIGMA_T,
    DEFAULT_WINDOW,
    module_scan_probability_np,
)
from ..qr.pixels import fit, require_geometry, require_same_aspect
from ..scan.analysis import probability_heatmap
from ..scan.report import verify_image
from .inputs import FROM_CODE, AQRNode, code_or_text
from .tensors import image_batch_to_numpy, numpy_to_image, per_image
from .types import QRCodeType

DEFAULTS = ArtupConfig()
AUTO = 0                # version and module_px: 0 = auto (the config's None)
AUTO_CAMERA_BLUR = -1.0  # camera_blur: -1 = auto (the config's None)


def _config_input(name: str, **ui) -> dict:
    """An AQR_ARTUP input's default and bounds from ArtupConfig (the field's default, and the bounds its
    validation enforces), then `ui` (the widget's own limits, step, tooltip)."""
    meta = ArtupConfig.__dataclass_fields__[name].metadata
    return {"default": getattr(DEFAULTS, name), **{k: meta[k] for k in ("min", "max") if k in meta}, **ui}


def _node_value(value, auto):
    """A config value as the node shows it: None (auto) as the node's `auto` number."""
    return auto if value is None else value


class AQRArtup(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_ARTUP",
            display_name="QR ARTUP (scanning-robust picture code)",
            category="Aesthetic QR/Generate",
            description="ARTUP (Xu et al., TOMM 2021) without any model: (1) the code's free bits are reshuffled to "
                        "follow the picture (ARTUP priority: edges, saliency, centre); (2) each module's "
                        "probability of being read correctly — a scanner's uncertain threshold around the local "
                        "mean and its uncertain sampling point around the module centre — is raised to at least "
                        "p_min by lightening light modules and darkening dark ones as little as needed, "
                        "re-estimating the threshold a few times; (3) the colours are moved along their own hue "
                        "to the new luminance. The result is verified with zxing-cpp and WeChat (and the "
                        "simulated-camera suite). One code per image in the batch.",
            inputs=[
                io.Image.Input("image", tooltip="The picture. Any size: it is centre-cropped to a square and "
                                                "resized to the code's image size. Every image of a batch gets "
                                                "its own code."),
                QRCodeType.Input("qr_code", optional=True,
                                 tooltip="The code: its text, version, level and geometry are used. With "
                                         "'reshuffle' on it is reshuffled towards the picture first; off, it is "
                                         "used as it is (e.g. from QR Reshuffle)."),
                io.String.Input("text", optional=True, default="", multiline=True,
                                tooltip="Message to encode when no QR_CODE is connected."),
                io.Combo.Input("ecl", options=[FROM_CODE, "L", "M", "Q", "H"], default=FROM_CODE,
                               tooltip="Error-correction level for the binary stage ('from code' keeps the "
                                       "connected code's level, M for text). Lower levels leave more free "
                                       "modules to follow the picture."),
                io.Int.Input("version", default=_node_value(DEFAULTS.version, AUTO), min=AUTO, max=40,
                             tooltip="QR version for text input (0 = the smallest that fits; a connected code "
                                     "keeps its own)."),
                io.Int.Input("module_px", default=_node_value(DEFAULTS.module_px, AUTO), min=AUTO, max=64,
                             tooltip="Pixels per module for text input (0 = the largest that keeps the image "
                                     "within 512 px). A connected code keeps its geometry."),
                io.Boolean.Input("reshuffle", default=True,
                                 tooltip="Run ARTUP's binary stage (reshuffle the code's free bits towards the "
                                         "picture). Turn off when the connected code is already reshuffled."),
                io.Float.Input("p_min", **_config_input("p_min", step=0.01),
                               tooltip="Minimum probability that a scanner reads each data module correctly. "
                                       "Higher: more robust, more code visible (1 = the binary code, 0 = the "
                                       "picture with function patterns)."),
                io.Float.Input("function_p_min", **_config_input("function_p_min", step=0.01),
                               tooltip="The same for timing, format and version modules."),
                io.Float.Input("sigma_s", **_config_input("sigma_s", max=1.0, step=0.01),
                               tooltip="Sampling spread, in modules: how far from the module centre a scanner "
                                       "may sample (ARTUP eq. 13). 0 = the centre only."),
                io.Float.Input("sigma_t", **_config_input("sigma_t", min=0.01, max=1.0, step=0.01),
                               tooltip="Threshold spread, in luminance (0-1): how far a scanner's threshold may "
                                       "stray from its expected value (lighting, exposure; ARTUP eq. 8). "
                                       "Higher: more contrast."),
                io.Float.Input("window", **_config_input("window", min=1.0, max=20.0, step=0.5),
                               tooltip="Side of the local-mean window for the expected threshold, in modules."),
                io.Float.Input("global_weight", **_config_input("global_weight", step=0.05),
                               tooltip="Share of a fixed mid-grey threshold in the expected threshold (global "
                                       "binarisers, exposure changes). 0 = the paper's local mean only."),
                io.Int.Input("iterations", **_config_input("iterations", max=50),
                             tooltip="Threshold re-estimations (ARTUP Algorithm 2; about 10 converge)."),
                io.Combo.Input("adjust", options=list(ADJUST_MODES), default=DEFAULTS.adjust,
                               tooltip="blend: blend each weak module with its colour just enough (keeps the "
                                       "picture's texture; higher SSIM at the same scan rate). probability: the "
                                       "paper's per-pixel probability raise, centre first (black/white dots)."),
                io.Combo.Input("markers", options=list(MARKER_MODES), default=DEFAULTS.markers,
                               tooltip="Finder, separator and alignment patterns: crisp black/white, harmonize "
                                       "(Face2QR's clamp with lambda, the picture shows where it already "
                                       "contrasts), or model (like any other module)."),
                io.Float.Input("lam", **_config_input("lam", step=0.05),
                               tooltip="Face2QR's lambda for markers = harmonize: light marker pixels are "
                                       "raised to at least 0.5(1+lambda), dark ones lowered to at most "
                                       "0.5(1-lambda)."),
                io.Float.Input("quiet_width", **_config_input("quiet_width", max=8.0, step=0.5),
                               tooltip="Modules of the border around the symbol kept light (by the model); the "
                                       "rest of the border keeps the picture. The standard asks for 4."),
                io.Float.Input("camera_blur", default=_node_value(DEFAULTS.camera_blur, AUTO_CAMERA_BLUR),
                               min=AUTO_CAMERA_BLUR, max=1.0, step=0.01,
                               tooltip="Also keep every module readable on the image blurred by this much (in "
                                       "modules), as a phone camera sees it. -1 = auto (0.3 % of the code's "
                                       "width: 0.14 module at version 5, 0.2 at version 10); 0 = off (the "
                                       "paper's model)."),
                io.Combo.Input("colour", options=list(COLOUR_MODES), default=DEFAULTS.colour,
                               tooltip="paper: move each colour towards black or white (ARTUP eq. 18-23). "
                                       "saturated: lighten along the most saturated colour of the same hue "
                                       "first (more colourful light modules)."),
                io.Boolean.Input("verify_suite", default=True,
                                 tooltip="Also run the simulated-camera suite (about 60 degraded views) and "
                                         "report the scan success rate per decoder; about 1-2 s per image."),
                io.Int.Input("seed", **_config_input("seed", min=0, max=2**31 - 1),
                             tooltip="Tie-break order among modules of equal priority in the reshuffle."),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The ARTUP code(s), colour, at the code's size."),
                QRCodeType.Output(display_name="qr_code",
                                  tooltip="The code the first image carries (reshuffled, geometry attached)."),
                io.String.Output(display_name="report",
                                 tooltip="Per image: code settings, mean/min scanning probability, stage times, "
                                         "and the verification (decoders, scan success rate)."),
            ],
        )

    @classmethod
    def execute(cls, image, ecl, version, module_px, reshuffle, p_min, function_p_min, sigma_s, sigma_t, window,
                global_weight, iterations, adjust, markers, lam, quiet_width, camera_blur, colour, verify_suite, seed,
                qr_code=None, text="") -> io.NodeOutput:
        pictures = image_batch_to_numpy(image)
        source = code_or_text(qr_code, text, "AQR_ARTUP", ecl=ecl, version=version or None,
                              module_px=module_px or None, border=DEFAULTS.border, multiple=DEFAULTS.multiple)
        code, message = None, source.text  # reshuffle on: the connected code's text, reshuffled anew
        if source.qr is not None and not reshuffle:
            if source.ecl != source.qr.ecl:
                raise ValueError(f"AQR_ARTUP: ecl {ecl} differs from the connected code's {source.qr.ecl}, "
                                 f"but reshuffle is off so the code is used as it is; set ecl to 'from code'")
            code, message = source.qr, None
        config = ArtupConfig(version=source.version, ecl=source.ecl, **source.geometry(), seed=seed,
                             p_min=p_min, function_p_min=function_p_min, sigma_s=sigma_s, sigma_t=sigma_t,
                             window=window, global_weight=global_weight, iterations=iterations, adjust=adjust,
                             markers=markers, lam=lam, quiet_width=quiet_width,
                             camera_blur=None if camera_blur < 0 else camera_blur, colour=colour)
        steps = iterations + 2 + (1 if verify_suite else 0)
        total = steps * len(pictures)
        bar = comfy.utils.ProgressBar(total)
        images, reports, first_qr = [], [], None
        for i, picture in enumerate(pictures):
            base = i * steps
            result, attempts = artup_until_scans(
                picture, message, qr=code, config=config,
                progress=lambda done, _total, b=base: bar.update_absolute(b + done, total))
            if images and result.image.shape != images[0].shape:
                raise ValueError("AQR_ARTUP: the images of the batch gave codes of different sizes; "
                                 "fix the version and module size")
            rep = verify_image(result.image, result.qr.text, result.qr, suite=verify_suite)
            bar.update_absolute(base + steps, total)
            images.append(result.image)
            first_qr = first_qr or result.qr
            summary = {k: v for k, v in result.to_dict().items()
                       if k in ("version", "ecl", "mask", "mean_p", "min_p", "below_p_min", "camera_blur",
                                "mean_p_camera", "min_p_camera", "match_fraction", "timings_s")}
            if len(attempts) > 1:
                summary["p_min_raised"] = [a["p_min"] for a in attempts]
            if rep.suite is not None:
                summary["ssr"] = {k: round(v, 3) for k, v in rep.suite.ssr.items()}
            reports.append(f"{json.dumps(summary, ensure_ascii=False)}\n{rep.to_text()}")
        report = per_image(reports, "\n\n")
        return io.NodeOutput(numpy_to_image(images), first_qr, report, ui={"text": (report,)})


class AQRMarkerHarmonize(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_MarkerHarmonize",
            display_name="QR Marker Harmonize (Face2QR)",
            category="Aesthetic QR/Refine",
            description="Strengthen the finder (and alignment) patterns of an art code so decoders find it, keeping "
                        "the picture where it already contrasts (Face2QR eq. 6): light marker pixels are raised to "
                        "at least 0.5(1+lambda), dark ones lowered to at most 0.5(1-lambda); everything else is "
                        "left untouched. lambda 1 draws pure black/white markers, 0 only pushes pixels past mid "
                        "grey.",
            inputs=[
                io.Image.Input("image", tooltip="The art code(s), at the code's size or a uniformly scaled copy; "
                                                "every image of the batch is processed."),
                QRCodeType.Input("qr_code", tooltip="The code the image carries (its geometry says where the "
                                                    "markers are)."),
                io.Float.Input("lam", default=0.8, min=0.0, max=1.0, step=0.05,
                               tooltip="Face2QR's lambda (0.8 in the paper): how far marker pixels are pushed "
                                       "towards black/white."),
                io.Boolean.Input("include_alignment", default=True,
                                 tooltip="Also strengthen the alignment patterns (versions 2 and up)."),
                io.Boolean.Input("include_separators", default=True,
                                 tooltip="Also the light ring around each finder (part of what a detector's "
                                         "1:1:3:1:1 scan sees)."),
                io.Boolean.Input("include_timing", default=False,
                                 tooltip="Also the timing patterns (row and column 6)."),
                io.Boolean.Input("quiet_zone", default=False,
                                 tooltip="Also clamp the whole border outside the symbol as light."),
                io.Combo.Input("mode", options=list(MARKER_COLOUR_MODES), default="rgb",
                               tooltip="rgb: the formula on each channel (the paper). luminance: on the "
                                       "luminance, then the colour is moved along its own hue (keeps hues)."),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The image(s) with harmonised markers.")],
        )

    @classmethod
    def execute(cls, image, qr_code, lam, include_alignment, include_separators, include_timing, quiet_zone,
                mode) -> io.NodeOutput:
        pictures = image_batch_to_numpy(image)
        bar = comfy.utils.ProgressBar(len(pictures))
        out = []
        for i, picture in enumerate(pictures):
            out.append(harmonize_markers(picture, qr_code, lam, include_alignment, include_timing,
                                         include_separators=include_separators, quiet_zone=quiet_zone,
                                         mode=mode))
            bar.update_absolute(i + 1, len(pictures))
        return io.NodeOutput(numpy_to_image(out))


class AQRScanProbability(AQRNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AQR_ScanProbability",
            display_name="QR Scan Probability (ARTUP model)",
            category="Aesthetic QR/Verify",
            description="ARTUP's module-based scanning-probability model: for every module, the probability that "
                        "a scanner reads it correctly, given a threshold that strays around the local mean "
                        "luminance and a sampling point that strays around the module centre. The heatmap tints "
                        "modules red (low) through yellow to green (high) over the dimmed picture.",
            inputs=[
                io.Image.Input("image", tooltip="The code image(s), at the code's size or a uniformly scaled copy "
                                                "(resampled to the code's size for the model)."),
                QRCodeType.Input("qr_code", tooltip="The code the image should carry (bits and geometry)."),
                io.Float.Input("sigma_s", default=DEFAULT_SIGMA_S, min=0.0, max=1.0, step=0.01,
                               tooltip="Sampling spread around the module centre, in modules."),
                io.Float.Input("sigma_t", default=DEFAULT_SIGMA_T, min=0.01, max=1.0, step=0.01,
                               tooltip="Threshold spread around its expected value, in luminance (0-1)."),
                io.Float.Input("window", default=DEFAULT_WINDOW, min=1.0, max=20.0, step=0.5,
                               tooltip="Local-mean window for the expected threshold, in modules."),
                io.Float.Input("global_weight", default=DEFAULT_GLOBAL_WEIGHT, min=0.0, max=1.0, step=0.05,
                               tooltip="Share of a fixed mid-grey threshold in the expected threshold "
                                       "(0 = the paper)."),
            ],
            outputs=[
                io.Image.Output(display_name="heatmap", tooltip="Per-module probability over the picture: red "
                                                                "low, yellow middle, green high."),
                io.Float.Output(display_name="mean_p", tooltip="Mean probability over all modules (mean over "
                                                               "the batch)."),
                io.Float.Output(display_name="min_p", tooltip="Lowest module probability (over the batch)."),
            ],
        )

    @classmethod
    def execute(cls, image, qr_code, sigma_s, sigma_t, window, global_weight) -> io.NodeOutput:
        pictures = image_batch_to_numpy(image)
        bar = comfy.utils.ProgressBar(len(pictures))
        heat, means, mins = [], [], []
        for i, picture in enumerate(pictures):
            geometry = require_geometry(qr_code)
            require_same_aspect(*picture.shape[:2], geometry)
            fitted = fit(picture, geometry)
            prob = module_scan_probability_np(fitted, qr_code, sigma_s=sigma_s, sigma_t=sigma_t, window=window,
                                              global_weight=global_weight)
            heat.append(probability_heatmap(picture, prob, qr_code))
            means.append(float(prob.mean()))
            mins.append(float(prob.min()))
            bar.update_absolute(i + 1, len(pictures))
        return io.NodeOutput(numpy_to_image(heat), float(np.mean(means)), float(np.min(mins)))
