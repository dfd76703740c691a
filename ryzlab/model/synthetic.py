"""Synthetic checkpoints: random weights in the Hugging Face layout of BitNet b1.58 2B-4T.

:func:`write_checkpoint` writes ``config.json`` and ``model.safetensors`` as
``microsoft/bitnet-b1.58-2B-4T`` has them (uint8 linears, 4 ternary codes per byte along the
output axis, code = w + 1; a bf16 ``weight_scale`` per linear; bf16 norms and a tied bf16
embedding), tensor by tensor: the header first, then each tensor's bytes, so memory stays
at one tensor (the embedding in blocks of rows) whatever the model size.  For a full-size
2B-4T this is 1.18 GB on disk, for measuring load time and memory without the download
(``tools/make_synthetic_checkpoint.py``).  The weights are random, so the text is noise.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .config import Config, get_config

_LINEARS = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
            "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
_ROWS = 8192  # embedding rows written at a time


def _shapes(cfg: Config) -> dict[str, tuple[int, int]]:
    q, kv, h, f = cfg.q_out, cfg.kv_out, cfg.hidden, cfg.ffn
    return {"q": (q, h), "k": (kv, h), "v": (kv, h), "o": (h, q), "gate": (f, h), "up": (f, h), "down": (h, f)}


def _tensors(cfg: Config):
    """(name, dtype, shape) of every tensor, in file order."""
    for layer in range(cfg.layers):
        p = f"model.layers.{layer}."
        for name, (M, K) in _shapes(cfg).items():
            if M % 4:
                raise ValueError(f"{name}: {M} output rows do not pack by 4 (the Hugging Face layout)")
            yield p + _LINEARS[name] + ".weight", "U8", (M // 4, K)
            yield p + _LINEARS[name] + ".weight_scale", "BF16", (1,)
        yield p + "input_layernorm.weight", "BF16", (cfg.hidden,)
        yield p + "post_attention_layernorm.weight", "BF16", (cfg.hidden,)
        yield p + "self_attn.attn_sub_norm.weight", "BF16", (cfg.q_out,)
        yield p + "mlp.ffn_sub_norm.weight", "BF16", (cfg.ffn,)
    yield "model.norm.weight", "BF16", (cfg.hidden,)
    yield "model.embed_tokens.weight", "BF16", (cfg.vocab, cfg.hidden)


def _bf16(x: np.ndarray) -> bytes:
    """float32 -> bf16 bytes, rounded to nearest even."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16).tobytes()


def _data(cfg: Config, name: str, shape: tuple[int, ...], rng: np.random.Generator):
    """The bytes of one tensor, as one or more blocks."""
    if name.endswith(".weight_scale"):
        K = _shapes(cfg)["down" if "down_proj" in name else "o" if "o_proj" in name else "q"][1]
        yield _bf16(np.array([math.sqrt(2 / math.pi) / math.sqrt(K) * rng.uniform(0.9, 1.1)]))
    elif name.endswith("proj.weight"):  # codes 0, 1, 2 (w + 1), 4 per byte
        R, K = shape
        codes = rng.integers(0, 3, size=(4, R, K), dtype=np.uint8)
        yield (codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6)).tobytes()
    elif name == "model.embed_tokens.weight":
        V, H = shape
        for a in range(0, V, _ROWS):
            yield _bf16(rng.standard_normal((min(_ROWS, V - a), H), dtype=np.float32) * np.float32(0.02))
    else:  # norms
        yield _bf16(1.0 + 0.02 * rng.standard_normal(shape[0]).astype(np.float32))


def write_checkpoint(out_dir: os.PathLike | str, config: Config | str = "bitnet-2b-4t", seed: int = 0) -> Path:
    """Write a random BitNet checkpoint of ``config`` in the Hugging Face layout; returns the
    directory.  Every K must pack by 4 rows (2B-4T's shapes do)."""
    cfg = get_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = list(_tensors(cfg))
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in specs:
        n = int(np.prod(shape)) * (1 if dtype == "U8" else 2)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    rng = np.random.default_rng(seed)
    tmp = out / "model.safetensors.partial"
    with open(tmp, "wb") as fh:
        fh.write(len(h).to_bytes(8, "little") + h)
        for name, _, shape in specs:
            for block in _data(cfg, name, shape, rng):
                fh.write(block)
    if tmp.stat().st_size != 8 + len(h) + off:
        raise RuntimeError(f"wrote {tmp.stat().st_size} bytes, expected {8 + len(h) + off}")
    tmp.replace(out / "model.safetensors")
    conf = {
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
        "hidden_size": cfg.hidden, "intermediate_size": cfg.ffn, "num_hidden_layers": cfg.layers,
        "num_attention_heads": cfg.heads, "num_key_value_heads": cfg.kv_heads, "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab, "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.norm_eps,
        "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 1, "max_position_embeddings": 4096,
        "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                "quantization_mode": "offline"},
    }
    (out / "config.json").write_text(json.dumps(conf, indent=2))
    return out
