"""Verification: real decoders (zxing-cpp, WeChat in worker processes), the simulated-camera suite, module-level
analysis against the code, and the report that joins them. numpy only; no torch, no ComfyUI."""

from .analysis import ModuleAnalysis, analyze
from .camera import SuiteResult, run_suite
from .decoders import DEFAULT_DECODERS, DecodeResult, decode
from .report import verify_image

__all__ = ["DEFAULT_DECODERS", "DecodeResult", "ModuleAnalysis", "SuiteResult", "analyze", "decode", "run_suite",
           "verify_image"]
