"""CLIP-guided tuning of VQ latents: restyle a drawing towards text or image prompts, keeping its pose."""

from posedraw.tuning.clip import TuneOptions, TuneResult, similarities, tune
from posedraw.tuning.prompts import WeightedPrompt, embed_prompts, parse_prompt

__all__ = ["TuneOptions", "TuneResult", "WeightedPrompt", "embed_prompts", "parse_prompt", "similarities", "tune"]
