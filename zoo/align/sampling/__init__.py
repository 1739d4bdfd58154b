"""Pair sources: what turns prompts into preference pairs (DESIGN.md). `bdhs`: the model's own
prior, with the image hidden, writes the rejected response."""

from zoo.align.sampling.bdhs import BDHSConfig, BDHSItem, BDHSSample, BDHSSampler, SentenceSimilarity

__all__ = ["BDHSConfig", "BDHSItem", "BDHSSample", "BDHSSampler", "SentenceSimilarity"]
