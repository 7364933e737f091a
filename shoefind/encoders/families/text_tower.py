"""A text tower with CLIP's text architecture at a small width, for backbones that have none (LiT).

It holds exactly the parts of `clip.model.CLIP` that encode text, under the same names
(token_embedding, positional_embedding, transformer, ln_final, text_projection, logit_scale),
so every path written for CLIP's text side runs on it unchanged: the short-context text pass
(`shoefind.encoders.families.openai_clip._short_text_features`), CoOp's prompt learner, the tokenizer
(`clip.tokenize`, CLIP's BPE vocabulary). Its output dimension is the image backbone's.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from shoefind.encoders.families.clip_parts import clip_model

LayerNorm, Transformer = clip_model().LayerNorm, clip_model().Transformer

VOCAB_SIZE = 49408          # CLIP's BPE vocabulary (clip.tokenize)
CONTEXT_LENGTH = 77
# Bump when the tower's outputs for the same weights change (tests/models/test_golden.py holds them).
TOWER_VERSION = 1


@dataclass(frozen=True)
class TowerConfig:
    """The shape of a text tower; saved in LiT checkpoints so loading rebuilds the same module."""
    embed_dim: int                  # output dimension: the image embedding's
    width: int = 128
    layers: int = 3
    heads: int = 2
    context_length: int = CONTEXT_LENGTH
    vocab_size: int = VOCAB_SIZE

    def as_dict(self) -> dict:
        return asdict(self)


class TextTower(nn.Module):
    """CLIP's text encoder (causal transformer read at the end-of-text token), nothing else.

    The token embedding is sparse: a step of training touches only the rows of the words in
    its captions (the vocabulary has 49,408 rows; a catalog's captions use a few hundred).
    """

    def __init__(self, config: TowerConfig):
        super().__init__()
        self.config = config
        w, n = config.width, config.context_length
        self.context_length = n
        self.token_embedding = nn.Embedding(config.vocab_size, w, sparse=True)
        self.positional_embedding = nn.Parameter(torch.empty(n, w))
        self.transformer = Transformer(w, config.layers, config.heads,
                                       attn_mask=torch.full((n, n), float("-inf")).triu_(1))
        self.ln_final = LayerNorm(w)
        self.text_projection = nn.Parameter(torch.empty(w, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self._init()

    def _init(self) -> None:
        """CLIP's own initialisation (clip.model.CLIP.initialize_parameters), text side."""
        w, layers = self.config.width, self.config.layers
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = (w ** -0.5) * ((2 * layers) ** -0.5)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=w ** -0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * w) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=w ** -0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.text_projection.dtype

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unnormalised text features, as clip.model.CLIP.encode_text computes them."""
        from shoefind.encoders.families.openai_clip import text_features
        return text_features(self, tokens, normalise=False)


TEXT_PARAMETER_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.",
                           "text_projection", "logit_scale")


def text_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters of a CLIP-style model's text side (a TextTower's are all of them): what LiT trains."""
    return {name: p for name, p in model.named_parameters() if name.startswith(TEXT_PARAMETER_PREFIXES)}
