"""ComfyUI V3 nodes: a thin layer over the packages below (README, Layout)."""

from comfy_api.latest import ComfyExtension, io

from .art import AQRArt
from .artup import AQRArtup, AQRMarkerHarmonize, AQRScanProbability
from .blueprint import AQRHalftoneBlueprint
from .encode import AQREncode
from .face import AQRFaceMask
from .guidance import AQRGuidanceReport, AQRScanGuidance
from .invisible import AQRHideCode, AQRRevealCode
from .latent_refine import AQRLatentRefine
from .pick import AQRPickBest
from .pixel_refine import AQRPixelRefine
from .reshuffle import AQRReshuffle
from .scan_sampler import AQRScanSampler
from .verify import AQRVerify


class AestheticQRExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [AQREncode, AQRReshuffle, AQRHalftoneBlueprint, AQRFaceMask, AQRMarkerHarmonize, AQRArtup,
                AQRPixelRefine, AQRScanProbability, AQRScanGuidance, AQRGuidanceReport, AQRLatentRefine, AQRVerify,
                AQRPickBest, AQRScanSampler, AQRArt, AQRHideCode, AQRRevealCode]
