"""Real weights for the decoder: :class:`CheckpointWeights` and :func:`load`.

:class:`CheckpointWeights` offers a :class:`~ryzlab.model.checkpoint.Checkpoint` through the
weight-source protocol of :class:`~ryzlab.model.weights.RandomWeights`, so
:meth:`Model.build` packs a real model exactly as it packs a random one:

* ``layer_linears(i)``: q|k|v and gate|up stacked along the output axis (one fused matrix,
  one scale per part), o and down alone; each part is unpacked from the file when the fused
  matrix is made and dropped once it is packed.
* ``layer_norms(i)``: the checkpoint's ``input_norm`` / ``attn_sub_norm`` / ``post_norm`` /
  ``ffn_sub_norm`` as the decoder's ``attn_norm`` / ``attn_sub_norm`` / ``ffn_norm`` /
  ``ffn_sub_norm`` (float32 copies).
* ``head_f32()``: the output projection (the embedding when tied, as in 2B-4T) as float32:
  transformers does not quantise the LM head, so this is the exact path.
* ``head_int8_chunks()`` / ``head_int8()``: per-row absmax int8 of that matrix
  (:func:`ryzlab.core.head.quantize_rows`), made block by block of :data:`HEAD_CHUNK_ROWS`
  rows so the float32 matrix never exists whole.
* ``embedding_row(t)``: the exact float32 embedding row, whatever the head.

Numerics against transformers' ``BitNetForCausalLM`` (read from its source): RMSNorm
``eps`` and RoPE ``theta`` come from the checkpoint's config; the activation quantiser is
the same per-token absmax rule (``127 / max|x|`` with max clamped at 1e-5, round half to
even, clamp to [-128, 127], which never binds); the weight scale multiplies
(``AutoBitLinear``; see :mod:`ryzlab.model.checkpoint`); the logits are float (head
``"f32"``).  What differs is float32 rounding: transformers fake-quantises (``x_q / s``
then a float matmul) where the kernels form the exact int32 product and scale it once.

Between tensors the loader lets go of the file pages it has read
(:meth:`Checkpoint.drop_pages`), so the peak resident memory of :func:`load` is the packed
model plus one matrix, not the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.head import quantize_rows
from .checkpoint import Checkpoint, CheckpointError, open_checkpoint
from .config import CONFIGS, Config
from .weights import FUSED

__all__ = ["HEAD_CHUNK_ROWS", "CheckpointWeights", "ModelNotFoundError", "load"]

#: Rows of the float head widened and quantised at a time (2B-4T: 4096 x 2560 x 4 = 42 MB).
HEAD_CHUNK_ROWS = 4096

_NORMS = {"attn_norm": "input_norm", "attn_sub_norm": "attn_sub_norm", "ffn_norm": "post_norm",
          "ffn_sub_norm": "ffn_sub_norm"}


class ModelNotFoundError(CheckpointError):
    """Neither a checkpoint on disk nor the name of a model shape."""


def config_of(checkpoint: Checkpoint, name: str | None = None) -> Config:
    """The decoder :class:`Config` of a checkpoint; ``name`` defaults to the file or directory
    name (without ``.gguf``)."""
    c = checkpoint.config
    if name is None:
        p = Path(checkpoint.path)
        name = p.stem if p.suffix == ".gguf" else p.name
    return Config(name, hidden=c.hidden, ffn=c.ffn, layers=c.layers, heads=c.heads, kv_heads=c.kv_heads,
                  head_dim=c.head_dim, vocab=c.vocab, rope_theta=float(c.rope_theta), norm_eps=float(c.eps))


class CheckpointWeights:
    """The weight-source protocol (see :class:`~ryzlab.model.weights.RandomWeights`) over a
    checkpoint.  ``seed`` is None: nothing is random."""

    seed = None

    def __init__(self, checkpoint: Checkpoint, name: str | None = None):
        self.checkpoint = checkpoint
        self.config = config_of(checkpoint, name)
        self.description = f"{checkpoint.format} checkpoint {checkpoint.path}"

    def layer_linears(self, layer: int):
        ck = self.checkpoint
        for name, parts in FUSED.items():
            mats, scales = [], []
            for part in parts:
                w, s = ck.ternary(layer, part)
                mats.append(w)
                scales.append(float(s))
            w = mats[0] if len(mats) == 1 else np.concatenate(mats, axis=0)
            del mats
            ck.drop_pages()
            yield name, np.ascontiguousarray(w), scales
            del w

    def layer_norms(self, layer: int) -> dict[str, np.ndarray]:
        return {ours: np.array(self.checkpoint.vector(theirs, layer), dtype=np.float32, copy=True)
                for ours, theirs in _NORMS.items()}

    def final_norm(self) -> np.ndarray:
        return np.array(self.checkpoint.vector("final_norm"), dtype=np.float32, copy=True)

    def head_f32(self) -> np.ndarray:
        """The float32 output projection (vocab, hidden): the exact head."""
        h = np.ascontiguousarray(self.checkpoint.head(), dtype=np.float32)
        self.checkpoint.drop_pages()
        return h

    def head_int8_chunks(self, rows: int = HEAD_CHUNK_ROWS):
        """Yield (int8 rows, float32 row scales) of the head, ``rows`` rows at a time."""
        vocab = self.config.vocab
        for a in range(0, vocab, rows):
            f = self.checkpoint.head_rows(np.arange(a, min(a + rows, vocab)))
            q, s = quantize_rows(f)
            del f
            self.checkpoint.drop_pages()
            yield q, s

    def head_int8(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-row absmax int8 head and its row scales (vocab, hidden), (vocab,)."""
        qs, ss = zip(*self.head_int8_chunks())
        return np.concatenate(qs), np.concatenate(ss)

    def embedding_row(self, token: int) -> np.ndarray:
        """The exact float32 embedding row of ``token``."""
        return self.checkpoint.embedding_rows([token])[0]


def load(path: os.PathLike | str, *, kernel: str | None = None, head: str = "int8", threads: int | None = None,
         max_context: int = 4096, name: str | None = None):
    """A :class:`~ryzlab.model.Model` over a checkpoint, packed for ``kernel``.

    ``path``: a Hugging Face BitNet directory (packed ``hf`` or ``hf-bf16`` master weights) or
    a GGUF file (I2_S, TQ2_0, TQ1_0); see :mod:`ryzlab.model.checkpoint`.  The file stays
    memory-mapped and the ternary matrices are unpacked and packed one at a time.  A name of
    :data:`ryzlab.model.CONFIGS` instead gives that shape with random weights
    (:meth:`Model.generate`, seed 0).

    ``head``: ``"int8"`` (per-row int8, fast) or ``"f32"`` (transformers' exact float head).
    ``threads``: the default thread count of the model's :meth:`~Model.forward` and
    :meth:`~Model.generate` (None: the physical cores).  The tokenizer (``tokenizers``) and
    chat template, when the checkpoint carries them, are ``model.tokenizer`` and
    ``model.chat_template``; ``model.checkpoint`` is the opened checkpoint.

    Every problem with the file raises a :class:`CheckpointError` (a ``RyzlabError``) that
    names the file and tensor; no partial model is returned.
    """
    from .decoder import Model

    text = os.fspath(path)
    if isinstance(text, str) and text.startswith("~"):
        text = os.path.expanduser(text)
    if isinstance(text, str) and text in CONFIGS and not Path(text).exists():
        m = Model.generate(text, kernel=kernel, max_context=max_context, head=head)
        m.checkpoint, m.tokenizer, m.chat_template = None, None, None
    else:
        if not Path(text).exists():
            raise ModelNotFoundError(text, f"unknown model {text!r}: no such file or directory, and not a "
                                           f"model shape ({', '.join(CONFIGS)})")
        ck = open_checkpoint(text)
        try:
            m = Model.build(CheckpointWeights(ck, name), kernel, max_context, head)
            tok = ck.tokenizer()
        except BaseException:
            ck.close()
            raise
        ck.drop_pages()
        m.checkpoint, m.tokenizer, m.chat_template = ck, tok, ck.chat_template
    m.default_threads = threads
    return m
