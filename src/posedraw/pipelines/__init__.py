"""Inference: the generators (diffusers pipelines with one call shape), loading a model folder, and files.

from posedraw.pipelines import KeypointLDMPipeline, CodeTransformerPipeline, load_pipeline
"""

from posedraw.pipelines.code_transformer import CodeTransformerPipeline
from posedraw.pipelines.drawing import Drawing, DrawingPipeline, Option
from posedraw.pipelines.keypoint_ldm import KeypointLDMPipeline
from posedraw.pipelines.loading import PIPELINES, load_pipeline, resolve_model

__all__ = [
    "PIPELINES",
    "CodeTransformerPipeline",
    "Drawing",
    "DrawingPipeline",
    "KeypointLDMPipeline",
    "Option",
    "load_pipeline",
    "resolve_model",
]
