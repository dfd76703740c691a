"""Readers for real BitNet b1.58 model files: one tensor source, whatever the format.

:func:`open_checkpoint` opens

* a Hugging Face directory (``config.json`` + ``model.safetensors``, or shards listed in
  ``model.safetensors.index.json``) with ``model_type: bitnet`` and a
  ``quantization_config`` with ``quant_method: bitnet``:

  - format ``"hf"`` (``quantization_mode: offline``, as ``microsoft/bitnet-b1.58-2B-4T``):
    linear weights uint8 of shape (M / 4, K), packed by transformers' ``pack_weights``
    (``transformers/integrations/bitnet.py``) along the OUTPUT axis: output row
    ``i * M/4 + r`` is bits ``2i, 2i+1`` of packed row ``r``; code = w + 1 (code 3 is
    invalid).  Plus a per-tensor ``weight_scale``.  Its meaning depends on ``linear_class``:
    ``autobitlinear`` (2B-4T; ``AutoBitLinear.forward``: ``F.linear(x, W) * weight_scale``)
    multiplies, so ``s = weight_scale``; ``bitlinear`` (the class's default;
    ``BitLinear.post_quant_process``: ``y / (input_scale * weight_scale)``) divides, so
    ``s = 1 / weight_scale``.
  - format ``"hf-bf16"`` (``quantization_mode: online``, as ``...-2B-4T-bf16``): float master
    weights, ternarised here exactly as transformers' ``WeightQuant.forward`` does at every
    forward: ``scale = 1 / mean(|W|).clamp(1e-5)`` in float32,
    ``W_t = round(W * scale).clamp(-1, 1)`` (half to even), ``s = 1 / scale`` (transformers
    divides ``W_t`` by ``scale``).

* a GGUF file (memory-mapped with gguf-py's ``GGUFReader``) of llama.cpp's ``bitnet`` arch
  (``bitnet-b1.58`` as bitnet.cpp names it is read the same way) whose linear weights are
  llama.cpp's TQ2_0 or TQ1_0 (blocks of 256 weights with an fp16 scale; every block that
  holds a nonzero weight must carry the same scale) or bitnet.cpp's I2_S (type 36, not in
  mainline gguf-py: ``n / 4`` bytes of 2-bit codes in blocks of 128 weights, then a float32
  per-tensor scale in a 32-byte tail; see :func:`_unpack_i2_s`).

Whatever the source, :meth:`Checkpoint.ternary` returns the same int8 (M, K) matrix in
{-1, 0, 1} (out x in) and a float scale ``s`` with ``W_float = s * W_ternary``.  Only one
tensor is unpacked at a time; everything else stays memory-mapped.

Errors: every problem with a file raises a :class:`CheckpointError` subclass whose message
names the file and, where there is one, the tensor.  :func:`open_checkpoint` checks the
structure (config, header, presence, dtype and shape of every tensor, the HF and I2_S
scales) before it returns; the values of packed codes and per-block scales are checked when
:meth:`Checkpoint.ternary` unpacks them.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from ..errors import RyzlabError

__all__ = [
    "FORMATS", "LINEAR_NAMES", "VECTOR_NAMES", "Checkpoint", "CheckpointConfig", "CheckpointError",
    "CheckpointFormatError", "ConfigError", "MissingTensorError", "TensorShapeError",
    "TernaryValueError", "UnsupportedCheckpointError", "open_checkpoint",
]

LINEAR_NAMES = ("q", "k", "v", "o", "gate", "up", "down")
VECTOR_NAMES = ("input_norm", "post_norm", "attn_sub_norm", "ffn_sub_norm", "final_norm")
FORMATS = ("hf", "hf-bf16", "gguf-i2_s", "gguf-tq2_0", "gguf-tq1_0")


# --------------------------------------------------------------------------- errors


class CheckpointError(RyzlabError, ValueError):
    """A model file cannot be read as a BitNet b1.58 checkpoint."""

    def __init__(self, path: os.PathLike | str, message: str, tensor: str | None = None):
        self.path, self.tensor = str(path), tensor
        where = f"{self.path}" + (f", tensor {tensor!r}" if tensor else "")
        super().__init__(f"{where}: {message}")


class CheckpointFormatError(CheckpointError):
    """Truncated or corrupt file: header, offsets or sizes do not hold."""


class ConfigError(CheckpointError):
    """Missing or invalid configuration (config.json / GGUF metadata)."""


class UnsupportedCheckpointError(CheckpointError):
    """A valid file of a kind this reader does not handle (quant method, GGUF type, arch)."""


class MissingTensorError(CheckpointError):
    """A tensor the model needs is not in the file."""


class TensorShapeError(CheckpointError):
    """A tensor has the wrong shape or dtype for the configuration."""


class TernaryValueError(CheckpointError):
    """Packed values that are not ternary, or a NaN / infinite / zero / inconsistent scale."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class CheckpointConfig:
    """The shape and constants of a BitNet b1.58 decoder, as the file states them."""

    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    rope_theta: float
    eps: float
    tied: bool
    bos_id: int | None = None
    eos_ids: tuple[int, ...] = ()

    def linear_shape(self, name: str) -> tuple[int, int]:
        """(out, in) of a ternary linear of one layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes = {"q": (q, self.hidden), "k": (kv, self.hidden), "v": (kv, self.hidden),
                  "o": (self.hidden, q), "gate": (self.ffn, self.hidden), "up": (self.ffn, self.hidden),
                  "down": (self.hidden, self.ffn)}
        return shapes[_check_name(name, LINEAR_NAMES)]

    def vector_size(self, name: str) -> int:
        return self.ffn if _check_name(name, VECTOR_NAMES) == "ffn_sub_norm" else self.hidden


def _check_name(name: str, names: tuple[str, ...]) -> str:
    if name not in names:
        raise ValueError(f"unknown tensor name {name!r}; choose one of: {', '.join(names)}")
    return name


def _make_config(path, get, tied: bool, bos, eos) -> CheckpointConfig:
    """Validate the sizes ``get(key, default)`` returns and build the config."""

    def pos_int(key, default=None):
        v = get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(path, f"{key} must be a positive integer, got {v!r}")
        return int(v)

    def pos_float(key, default):
        v = get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not (math.isfinite(v) and v > 0):
            raise ConfigError(path, f"{key} must be a positive finite number, got {v!r}")
        return float(v)

    hidden, heads = pos_int("hidden"), pos_int("heads")
    kv_heads = pos_int("kv_heads", heads)
    head_dim = pos_int("head_dim", hidden // heads if hidden % heads == 0 else None)
    if heads % kv_heads:
        raise ConfigError(path, f"heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
    if heads * head_dim != hidden:
        # transformers' attn_sub_norm has hidden_size weights and normalises heads * head_dim
        raise ConfigError(path, f"heads * head_dim = {heads} * {head_dim} must equal hidden ({hidden})")
    if head_dim % 2:
        raise ConfigError(path, f"RoPE needs an even head_dim, got {head_dim}")
    eos_ids = tuple(int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None)
    return CheckpointConfig(hidden=hidden, ffn=pos_int("ffn"), layers=pos_int("layers"), heads=heads,
                            kv_heads=kv_heads, head_dim=head_dim, vocab=pos_int("vocab"),
                            rope_theta=pos_float("rope_theta", 500000.0), eps=pos_float("eps", 1e-5),
                            tied=tied, bos_id=None if bos is None else int(bos), eos_ids=eos_ids)


# --------------------------------------------------------------------------- unpacking


def _bf16_to_f32(u16: np.ndarray) -> np.ndarray:
    return (u16.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _check_codes(codes: np.ndarray, path, tensor: str) -> None:
    bad = np.flatnonzero(codes.reshape(-1) == 3)
    if bad.size:
        raise TernaryValueError(path, f"{bad.size} packed codes are 3 (not a ternary value; first at "
                                      f"flat index {int(bad[0])})", tensor)


def _unpack_hf(packed: np.ndarray, path, tensor: str) -> np.ndarray:
    """transformers ``unpack_weights``: (R, K) uint8 -> (4R, K) int8; row i*R + r is bits 2i of row r."""
    R, K = packed.shape
    out = np.empty((4 * R, K), np.int8)
    for i in range(4):
        out[i * R:(i + 1) * R] = (packed >> np.uint8(2 * i)) & np.uint8(3)
    _check_codes(out, path, tensor)
    out -= 1
    return out


def _unpack_i2_s(data: np.ndarray, M: int, K: int, path, tensor: str) -> tuple[np.ndarray, float]:
    """bitnet.cpp I2_S (x86, QK_I2_S = 128; ``quantize_i2_s`` in src/ggml-bitnet-mad.cpp): the
    (M, K) matrix flattened row-major, each 128 weights in 32 bytes, weight j of a block at byte
    j % 32, bits 6 - 2 (j // 32); code 0, 1, 2 = -1, 0, +1; then a float32 scale at byte n / 4."""
    n = M * K
    blocks = data[: n // 4].reshape(-1, 1, 32)
    codes = (blocks >> np.array([6, 4, 2, 0], np.uint8).reshape(1, 4, 1)) & np.uint8(3)
    _check_codes(codes, path, tensor)
    w = codes.reshape(M, K).view(np.int8)
    w -= 1
    return w, float(data[n // 4: n // 4 + 4].view(np.float32)[0])


_POW3 = np.array([1, 3, 9, 27, 81], np.uint8)


def _tq_codes(blocks: np.ndarray, kind: str, path, tensor: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes in 0..2 as uint8 (blocks, 256), fp16 scales as float32 (blocks,)) of TQ1_0 / TQ2_0
    blocks, in the layout gguf-py's ``quants.TQ*_0`` (and ggml-quants.c) use."""
    nb = blocks.shape[0]
    if kind == "tq2_0":  # 64 bytes: 4 codes per byte, bits 2k of byte p of a 32-byte half -> k*32 + p
        qs = blocks[:, :64].reshape(nb, 2, 1, 32)
        codes = ((qs >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & np.uint8(3)).reshape(nb, 256)
        _check_codes(codes, path, tensor)
        d = blocks[:, 64:66]
    else:  # tq1_0: 48 bytes of 5 trits + 4 bytes of 4 trits, base-3 fixed point
        qs0 = (blocks[:, :32].reshape(nb, 1, 32) * _POW3.reshape(1, 5, 1)).reshape(nb, 160)
        qs1 = (blocks[:, 32:48].reshape(nb, 1, 16) * _POW3.reshape(1, 5, 1)).reshape(nb, 80)
        qh = (blocks[:, 48:52].reshape(nb, 1, 4) * _POW3[:4].reshape(1, 4, 1)).reshape(nb, 16)
        q = np.concatenate([qs0, qs1, qh], axis=1)  # uint8 products wrap mod 256, as in ggml
        codes = ((q.astype(np.uint16) * 3) >> 8).astype(np.uint8)
        d = blocks[:, 52:54]
    return codes, np.ascontiguousarray(d).view(np.float16).reshape(nb).astype(np.float32)


def _block_scale(codes: np.ndarray, d: np.ndarray, path, tensor: str) -> float:
    """The one scale of all blocks that hold a nonzero weight (code != 1)."""
    used = np.any(codes != 1, axis=1)
    if not used.any():
        raise TernaryValueError(path, "all weights are zero: no scale", tensor)
    ds = d[used]
    if not np.all(np.isfinite(ds)):
        raise TernaryValueError(path, "NaN or infinite block scale", tensor)
    if np.any(ds != ds[0]):
        raise TernaryValueError(path, f"block scales differ ({float(ds.min())} .. {float(ds.max())}): "
                                      "not a per-tensor-scaled BitNet tensor", tensor)
    return float(ds[0])


def _check_scale(s: float, path, tensor: str) -> float:
    if not math.isfinite(s) or s <= 0:
        raise TernaryValueError(path, f"weight scale must be finite and positive, got {s}", tensor)
    return s


# --------------------------------------------------------------------------- base


class Checkpoint:
    """An opened checkpoint: memory-mapped, validated, read one tensor at a time."""

    path: Path
    format: str
    config: CheckpointConfig
    #: tokenizer.json beside an HF checkpoint, else None
    tokenizer_path: Path | None = None
    #: the chat template (jinja2 source) when the checkpoint carries one
    chat_template: str | None = None

    def ternary(self, layer: int, name: str) -> tuple[np.ndarray, float]:
        """(int8 (out, in) matrix in {-1, 0, 1}, scale s) with ``W_float = s * W``."""
        self._check_layer(layer)
        return self._ternary(layer, _check_name(name, LINEAR_NAMES))

    def vector(self, name: str, layer: int | None = None) -> np.ndarray:
        """float32 norm weights; ``layer`` for all but ``final_norm``."""
        name = _check_name(name, VECTOR_NAMES)
        if (name == "final_norm") != (layer is None):
            raise ValueError("final_norm takes no layer; the other norms need one")
        if layer is not None:
            self._check_layer(layer)
        return self._vector(name, layer)

    def embedding(self) -> np.ndarray:
        """float32 (vocab, hidden): a memory-mapped view for float32 files, widened otherwise."""
        return self._float(self._embedding_key())

    def embedding_rows(self, ids) -> np.ndarray:
        """float32 rows of the embedding, widening only those rows."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab):
            raise ValueError(f"token ids must be in [0, {self.config.vocab})")
        return self._float(self._embedding_key(), rows=ids)

    def head(self) -> np.ndarray:
        """float32 (vocab, hidden) output projection: the embedding when tied."""
        return self.embedding() if self.config.tied else self._float(self._head_key())

    def head_rows(self, ids) -> np.ndarray:
        """float32 rows of the output projection (of the embedding when tied), widening only
        those rows."""
        if self.config.tied:
            return self.embedding_rows(ids)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab):
            raise ValueError(f"token ids must be in [0, {self.config.vocab})")
        return self._float(self._head_key(), rows=ids)

    def drop_pages(self) -> None:
        """Let go of the file pages read so far (``madvise(MADV_DONTNEED)`` on the read-only
        maps): they leave this process's resident set (the OS page cache keeps them) and are
        read again if touched.  Arrays returned earlier stay valid.  A loader calls this
        between tensors so that its peak RSS is what it keeps, not the file it has read."""
        import mmap

        for mm in self._maps():
            raw = getattr(mm, "_mmap", None)
            if raw is not None and hasattr(mmap, "MADV_DONTNEED"):
                try:
                    raw.madvise(mmap.MADV_DONTNEED)
                except (OSError, ValueError):  # closed or unsupported: nothing to drop
                    pass

    def _maps(self) -> list:
        return []

    def tokenizer(self):
        """A ``tokenizers.Tokenizer``, or None when the checkpoint has none."""
        if self.tokenizer_path is None:
            return None
        from tokenizers import Tokenizer

        try:
            return Tokenizer.from_file(str(self.tokenizer_path))
        except Exception as e:  # tokenizers raises its own Exception type
            raise CheckpointFormatError(self.tokenizer_path, f"cannot read the tokenizer: {e}") from None

    def close(self) -> None:
        """Drop the memory maps (arrays returned earlier stay valid while referenced)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        return (f"<Checkpoint {self.format} {self.path}: {c.layers} layers, hidden {c.hidden}, "
                f"ffn {c.ffn}, heads {c.heads}/{c.kv_heads}x{c.head_dim}, vocab {c.vocab}>")

    def _check_layer(self, layer: int) -> None:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < self.config.layers:
            raise ValueError(f"layer must be an int in [0, {self.config.layers}), got {layer!r}")

    # implemented by the readers
    def _ternary(self, layer: int, name: str) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def _vector(self, name: str, layer: int | None) -> np.ndarray:
        raise NotImplementedError

    def _float(self, key: str, rows: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def _embedding_key(self) -> str:
        raise NotImplementedError

    def _head_key(self) -> str:
        raise NotImplementedError


# --------------------------------------------------------------------------- Hugging Face

_HF_LINEAR = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
              "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
_HF_VECTOR = {"input_norm": "input_layernorm", "post_norm": "post_attention_layernorm",
              "attn_sub_norm": "self_attn.attn_sub_norm", "ffn_sub_norm": "mlp.ffn_sub_norm"}
_ST_DTYPES = {"BF16": None, "F16": np.float16, "F32": np.float32, "U8": np.uint8}
_FLOAT_DTYPES = ("BF16", "F16", "F32")


@dataclass
class _STensor:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file


class _HFCheckpoint(Checkpoint):

    def __init__(self, path: Path):
        self.path = path
        cfg_path = path / "config.json"
        if not cfg_path.is_file():
            raise ConfigError(path, "not a Hugging Face checkpoint directory: no config.json")
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(cfg_path, f"cannot parse config.json: {e}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(cfg_path, "config.json is not a JSON object")
        self._read_quant_config(cfg_path, cfg)
        rope = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else {}
        keys = {"hidden": "hidden_size", "ffn": "intermediate_size", "layers": "num_hidden_layers",
                "heads": "num_attention_heads", "kv_heads": "num_key_value_heads", "head_dim": "head_dim",
                "vocab": "vocab_size", "eps": "rms_norm_eps"}

        def get(key, default=None):
            if key == "rope_theta":
                return cfg.get("rope_theta", rope.get("rope_theta", default))
            v = cfg.get(keys[key])
            return default if v is None else v

        # BitNetConfig's defaults: tie_word_embeddings False, rope theta 500000, eps 1e-5
        self.config = _make_config(cfg_path, get, bool(cfg.get("tie_word_embeddings", False)),
                                   cfg.get("bos_token_id"), cfg.get("eos_token_id"))
        self._mmaps: dict[Path, np.memmap] = {}
        self._tensors = self._read_headers()
        self._validate()
        tok = path / "tokenizer.json"
        self.tokenizer_path = tok if tok.is_file() else None
        tc = path / "tokenizer_config.json"
        if tc.is_file():
            try:
                t = json.loads(tc.read_text(encoding="utf-8")).get("chat_template")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
                raise ConfigError(tc, f"cannot parse tokenizer_config.json: {e}") from None
            self.chat_template = t if isinstance(t, str) else None

    def _read_quant_config(self, cfg_path: Path, cfg: dict) -> None:
        if cfg.get("model_type") != "bitnet":
            raise UnsupportedCheckpointError(cfg_path, f"model_type is {cfg.get('model_type')!r}, not 'bitnet'")
        if cfg.get("hidden_act", "relu2") != "relu2":
            raise UnsupportedCheckpointError(cfg_path, f"hidden_act {cfg.get('hidden_act')!r}: only relu2 is "
                                                       "BitNet b1.58's FFN")
        q = cfg.get("quantization_config")
        if not isinstance(q, dict):
            raise UnsupportedCheckpointError(cfg_path, "no quantization_config: transformers would run the "
                                                       "linears as plain float layers")
        if q.get("quant_method") != "bitnet":
            raise UnsupportedCheckpointError(cfg_path, f"unknown quant_method {q.get('quant_method')!r} "
                                                       "(expected 'bitnet')")
        self._linear_class = q.get("linear_class", "bitlinear")  # BitNetQuantConfig's defaults
        self._mode = q.get("quantization_mode", "offline")
        if self._linear_class not in ("bitlinear", "autobitlinear"):
            raise UnsupportedCheckpointError(cfg_path, f"unknown linear_class {self._linear_class!r}")
        if self._mode not in ("offline", "online"):
            raise UnsupportedCheckpointError(cfg_path, f"unknown quantization_mode {self._mode!r}")
        if self._mode == "online" and self._linear_class != "autobitlinear":
            raise UnsupportedCheckpointError(cfg_path, "quantization_mode 'online' needs linear_class "
                                                       "'autobitlinear'")
        if q.get("use_rms_norm"):
            raise UnsupportedCheckpointError(cfg_path, "use_rms_norm (an RMSNorm inside every linear) "
                                                       "is not BitNet b1.58 2B-4T's layout")
        self.format = "hf" if self._mode == "offline" else "hf-bf16"

    def _read_headers(self) -> dict[str, _STensor]:
        index = self.path / "model.safetensors.index.json"
        if index.is_file():
            try:
                wm = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                files = sorted(set(wm.values()))
                if not all(isinstance(f, str) for f in files):
                    raise TypeError("file names must be strings")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
                raise CheckpointFormatError(index, f"cannot parse the shard index: {e}") from None
        else:
            wm, files = None, ["model.safetensors"]
        tensors: dict[str, _STensor] = {}
        for name in files:
            f = self.path / name
            if f.parent != self.path or not f.is_file():
                raise CheckpointFormatError(f, "safetensors file missing")
            for k, t in self._read_safetensors(f).items():
                if k in tensors:
                    raise CheckpointFormatError(f, "tensor stored twice", k)
                tensors[k] = t
        if wm is not None:
            for k, fname in wm.items():
                if k not in tensors or tensors[k].file.name != fname:
                    raise CheckpointFormatError(self.path / fname, "the shard index lists a tensor the "
                                                                   "shard does not hold", k)
        return tensors

    def _read_safetensors(self, f: Path) -> dict[str, _STensor]:
        from safetensors import SafetensorError, safe_open

        try:  # safetensors checks the header, the offsets and that they cover the file
            with safe_open(str(f), framework="numpy") as st:
                info = {k: (st.get_slice(k).get_dtype(), tuple(st.get_slice(k).get_shape())) for k in st.keys()}
        except (SafetensorError, OSError) as e:
            raise CheckpointFormatError(f, f"corrupt or truncated safetensors file: {e}") from None
        with open(f, "rb") as fh:  # the data offsets (not exposed by safe_open)
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        out = {}
        for k, (dtype, shape) in info.items():
            begin, end = header[k]["data_offsets"]
            out[k] = _STensor(f, dtype, shape, 8 + n + int(begin))
        return out

    def _validate(self) -> None:
        c = self.config
        for layer in range(c.layers):
            p = f"model.layers.{layer}."
            for name, mod in _HF_LINEAR.items():
                M, K = c.linear_shape(name)
                key = p + mod + ".weight"
                if self._mode == "offline":
                    if M % 4:
                        raise TensorShapeError(self._file(key), f"{M} output rows do not pack by 4", key)
                    self._expect(key, ("U8",), (M // 4, K))
                    s = self._expect(p + mod + ".weight_scale", _FLOAT_DTYPES, None)
                    if s.shape not in ((), (1,)):
                        raise TensorShapeError(s.file, f"weight_scale must hold one value, has shape {s.shape}",
                                               p + mod + ".weight_scale")
                    self._scale(layer, name)  # validates the value
                else:
                    self._expect(key, _FLOAT_DTYPES, (M, K))
            for name, hf in _HF_VECTOR.items():
                self._expect(p + hf + ".weight", _FLOAT_DTYPES, (c.vector_size(name),))
        self._expect("model.norm.weight", _FLOAT_DTYPES, (c.hidden,))
        self._expect("model.embed_tokens.weight", _FLOAT_DTYPES, (c.vocab, c.hidden))
        if not c.tied:
            self._expect("lm_head.weight", _FLOAT_DTYPES, (c.vocab, c.hidden))

    def _file(self, key: str) -> Path:
        t = self._tensors.get(key)
        return t.file if t else self.path

    def _expect(self, key: str, dtypes: tuple[str, ...], shape: tuple[int, ...] | None) -> _STensor:
        t = self._tensors.get(key)
        if t is None:
            raise MissingTensorError(self.path, "missing tensor", key)
        if t.dtype not in dtypes:
            raise TensorShapeError(t.file, f"dtype {t.dtype}, expected {' or '.join(dtypes)}", key)
        if shape is not None and t.shape != shape:
            raise TensorShapeError(t.file, f"shape {list(t.shape)}, but config.json implies {list(shape)}", key)
        return t

    def _raw(self, key: str) -> np.ndarray:
        t = self._tensors[key]
        mm = self._mmaps.get(t.file)
        if mm is None:
            mm = self._mmaps[t.file] = np.memmap(t.file, mode="r")
        dt = np.dtype(np.uint16 if t.dtype == "BF16" else _ST_DTYPES[t.dtype])
        n = int(np.prod(t.shape, dtype=np.int64))
        return np.ndarray(t.shape, dtype=dt, buffer=mm, offset=t.start) if n else np.zeros(t.shape, dt)

    def _float(self, key: str, rows: np.ndarray | None = None) -> np.ndarray:
        raw = self._raw(key)
        if rows is not None:
            raw = raw[rows]
        if self._tensors[key].dtype == "BF16":
            return _bf16_to_f32(raw)
        return raw.astype(np.float32, copy=False)

    def _scale(self, layer: int, name: str) -> float:
        key = f"model.layers.{layer}.{_HF_LINEAR[name]}.weight_scale"
        ws = float(self._float(key).reshape(-1)[0])
        if not math.isfinite(ws) or ws <= 0:
            raise TernaryValueError(self._file(key), f"weight_scale must be finite and positive, got {ws}", key)
        # autobitlinear multiplies the product by weight_scale; bitlinear divides by it
        return ws if self._linear_class == "autobitlinear" else 1.0 / ws

    def _ternary(self, layer: int, name: str) -> tuple[np.ndarray, float]:
        key = f"model.layers.{layer}.{_HF_LINEAR[name]}.weight"
        if self._mode == "offline":
            return _unpack_hf(self._raw(key), self._file(key), key), self._scale(layer, name)
        # transformers' WeightQuant.forward, in the same float32 operations
        W = self._float(key)
        if not np.all(np.isfinite(W)):
            raise TernaryValueError(self._file(key), "NaN or infinite master weights", key)
        mean = np.float32(np.abs(W).sum(dtype=np.float64) / W.size)
        scale = np.float32(1.0) / max(mean, np.float32(1e-5))
        w = np.clip(np.rint(W * scale), -1, 1).astype(np.int8)
        return w, _check_scale(float(np.float32(1.0) / scale), self._file(key), key)

    def _vector(self, name: str, layer: int | None) -> np.ndarray:
        key = "model.norm.weight" if layer is None else f"model.layers.{layer}.{_HF_VECTOR[name]}.weight"
        return self._float(key)

    def _embedding_key(self) -> str:
        return "model.embed_tokens.weight"

    def _head_key(self) -> str:
        return "lm_head.weight"

    def _maps(self) -> list:
        return list(self._mmaps.values())

    def close(self) -> None:
        self._mmaps.clear()


# --------------------------------------------------------------------------- GGUF

GGML_TYPE_I2_S = 36  # bitnet.cpp (its ggml.h); not a member of gguf-py's GGMLQuantizationType
_GGUF_LINEAR = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
                "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
_GGUF_VECTOR = {"input_norm": "attn_norm", "post_norm": "ffn_norm", "attn_sub_norm": "attn_sub_norm",
                "ffn_sub_norm": "ffn_sub_norm"}
_GGUF_ARCHS = ("bitnet", "bitnet-b1.58")


def _gguf_reader_class():
    """gguf-py's GGUFReader, taught bitnet.cpp's I2_S (the least code: only the per-tensor
    byte count differs) and to refuse tensors that run past the end of the file."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType
    from gguf.gguf_reader import ReaderTensor

    class _Reader(GGUFReader):
        def _get(self, offset, dtype, count=1, override_order=None):
            # gguf-py returns a short array past the end of the file; a corrupt array length
            # then loops on empty reads forever.  Every read must be whole.
            a = super()._get(offset, dtype, count, override_order)
            if a.size != int(count):
                raise ValueError(f"read past the end of the file at byte {offset}")
            return a

        def _get_field_parts(self, orig_offs: int, raw_type: int):
            if raw_type == GGUFValueType.ARRAY:  # refuse an array longer than the rest of the file
                itype = GGUFValueType(int(self._get(orig_offs, np.uint32)[0]))
                alen = int(self._get(orig_offs + 4, np.uint64)[0])
                np_type = self.gguf_scalar_to_np.get(itype)
                item = 8 if itype == GGUFValueType.STRING else np.dtype(np_type).itemsize if np_type else 1
                if alen * item > self.data.size - orig_offs:
                    raise ValueError(f"array of {alen} items at byte {orig_offs} overruns the file")
            return super()._get_field_parts(orig_offs, raw_type)

        def _build_tensors(self, start_offs: int, fields) -> None:
            tensors, names = [], set()
            for field in fields:
                _, name_data, _, dims, raw_dtype, offset_tensor = field.parts
                name = str(bytes(name_data), encoding="utf-8")
                if name in names:
                    raise ValueError(f"duplicated tensor {name!r}")
                names.add(name)
                t = int(raw_dtype[0])
                n = int(np.prod(dims, dtype=np.int64))
                if t == GGML_TYPE_I2_S:
                    qtype, nbytes = t, n // 4 + 32
                else:
                    try:
                        qtype = GGMLQuantizationType(t)
                    except ValueError:
                        raise _UnknownType(name, t) from None
                    block, size = GGML_QUANT_SIZES[qtype]
                    if int(dims[0]) % block:
                        raise ValueError(f"tensor {name!r}: row of {int(dims[0])} is not a multiple of the "
                                         f"{qtype.name} block ({block})")
                    nbytes = n // block * size
                offs = int(start_offs + offset_tensor[0])
                if offs + nbytes > self.data.size:
                    raise _Truncated(name, offs + nbytes, self.data.size)
                tensors.append(ReaderTensor(name=name, tensor_type=qtype, shape=dims, n_elements=n,
                                            n_bytes=nbytes, data_offset=offs,
                                            data=self.data[offs:offs + nbytes], field=field))
            self.tensors = tensors

    return _Reader


class _UnknownType(Exception):
    def __init__(self, tensor: str, t: int):
        self.tensor, self.type = tensor, t


class _Truncated(Exception):
    def __init__(self, tensor: str, end: int, size: int):
        self.tensor, self.end, self.size = tensor, end, size


def _gguf_precheck(path: Path) -> None:
    """Refuse a header whose counts cannot fit the file before gguf-py walks it."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:4] != b"GGUF":
        raise CheckpointFormatError(path, "not a GGUF file (bad magic or shorter than its header)")
    version, n_tensors, n_kv = struct.unpack("<IQQ", head[4:])
    if version not in (2, 3):
        raise CheckpointFormatError(path, f"unsupported GGUF version {version}")
    # a key/value takes >= 13 bytes (length, one char, type), a tensor info >= 33
    if n_kv * 13 + n_tensors * 33 > size:
        raise CheckpointFormatError(path, f"header claims {n_kv} keys and {n_tensors} tensors, more than "
                                          f"{size} bytes can hold")


class _GGUFCheckpoint(Checkpoint):

    def __init__(self, path: Path):
        self.path = path
        _gguf_precheck(path)
        try:
            self._reader = _gguf_reader_class()(str(path), "r")
        except _UnknownType as e:
            raise UnsupportedCheckpointError(path, f"unknown GGUF tensor type {e.type}", e.tensor) from None
        except _Truncated as e:
            raise CheckpointFormatError(path, f"truncated: data ends at byte {e.end}, the file has {e.size}",
                                        e.tensor) from None
        except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeDecodeError,
                MemoryError, struct.error) as e:
            raise CheckpointFormatError(path, f"corrupt GGUF header: {e}") from None
        self._tensors = {t.name: t for t in self._reader.tensors}
        arch = self._str("general.architecture")
        if arch not in _GGUF_ARCHS:
            raise UnsupportedCheckpointError(path, f"architecture {arch!r}, expected one of {_GGUF_ARCHS}")
        keys = {"hidden": "embedding_length", "ffn": "feed_forward_length", "layers": "block_count",
                "heads": "attention.head_count", "kv_heads": "attention.head_count_kv",
                "head_dim": "rope.dimension_count", "vocab": "vocab_size", "rope_theta": "rope.freq_base",
                "eps": "attention.layer_norm_rms_epsilon"}

        def get(key, default=None):
            v = self._scalar(f"{arch}.{keys[key]}")
            if v is None and key == "vocab":
                emb = self._tensors.get("token_embd.weight")
                v = int(emb.shape[1]) if emb is not None and len(emb.shape) == 2 else None
            return default if v is None else v

        self.config = _make_config(path, get, "output.weight" not in self._tensors,
                                   self._scalar("tokenizer.ggml.bos_token_id"),
                                   self._scalar("tokenizer.ggml.eos_token_id"))
        self._validate()
        self.chat_template = self._str("tokenizer.chat_template")

    def _scalar(self, key: str):
        f = self._reader.fields.get(key)
        if f is None:
            return None
        try:
            v = f.contents()
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            raise ConfigError(self.path, f"unreadable metadata {key}: {e}") from None
        return v.item() if isinstance(v, np.generic) else v

    def _str(self, key: str) -> str | None:
        v = self._scalar(key)
        if v is not None and not isinstance(v, str):
            raise ConfigError(self.path, f"metadata {key} must be a string, got {type(v).__name__}")
        return v

    def _expect(self, key: str, types: tuple, shape: tuple[int, ...]):
        t = self._tensors.get(key)
        if t is None:
            raise MissingTensorError(self.path, "missing tensor", key)
        if t.tensor_type not in types:
            raise TensorShapeError(self.path, f"type {_type_name(t.tensor_type)}, expected "
                                              f"{' or '.join(_type_name(x) for x in types)}", key)
        if tuple(int(d) for d in reversed(t.shape)) != shape:
            raise TensorShapeError(self.path, f"shape {[int(d) for d in reversed(t.shape)]}, but the metadata "
                                              f"implies {list(shape)}", key)
        return t

    def _validate(self) -> None:
        from gguf import GGMLQuantizationType as Q

        c, floats = self.config, (Q.F32, Q.F16)
        kinds = set()
        for layer in range(c.layers):
            for name, g in _GGUF_LINEAR.items():
                M, K = c.linear_shape(name)
                key = f"blk.{layer}.{g}.weight"
                t = self._expect(key, (GGML_TYPE_I2_S, Q.TQ2_0, Q.TQ1_0), (M, K))
                if t.tensor_type == GGML_TYPE_I2_S:
                    if (M * K) % 128:
                        raise TensorShapeError(self.path, f"I2_S packs blocks of 128 weights; {M}x{K} does not",
                                               key)
                    _check_scale(float(t.data[M * K // 4: M * K // 4 + 4].view(np.float32)[0]), self.path, key)
                    kinds.add("i2_s")
                else:
                    kinds.add(Q(t.tensor_type).name.lower())
            for name, g in _GGUF_VECTOR.items():
                self._expect(f"blk.{layer}.{g}.weight", floats, (c.vector_size(name),))
        self._expect("output_norm.weight", floats, (c.hidden,))
        self._expect("token_embd.weight", floats, (c.vocab, c.hidden))
        if not c.tied:
            self._expect("output.weight", floats, (c.vocab, c.hidden))
        self.format = f"gguf-{kinds.pop()}" if len(kinds) == 1 else "gguf-mixed"

    def _ternary(self, layer: int, name: str) -> tuple[np.ndarray, float]:
        from gguf import GGMLQuantizationType as Q

        key = f"blk.{layer}.{_GGUF_LINEAR[name]}.weight"
        t = self._tensors[key]
        M, K = self.config.linear_shape(name)
        if t.tensor_type == GGML_TYPE_I2_S:
            w, s = _unpack_i2_s(t.data, M, K, self.path, key)
            return w, _check_scale(s, self.path, key)
        kind = "tq2_0" if t.tensor_type == Q.TQ2_0 else "tq1_0"
        codes, d = _tq_codes(t.data.reshape(M * K // 256, -1), kind, self.path, key)
        s = _check_scale(_block_scale(codes, d, self.path, key), self.path, key)
        w = codes.reshape(M, K).view(np.int8)
        w -= 1
        return w, s

    def _float(self, key: str, rows: np.ndarray | None = None) -> np.ndarray:
        from gguf import GGMLQuantizationType as Q

        t = self._tensors[key]
        shape = tuple(int(d) for d in reversed(t.shape))
        a = t.data.view(np.float32 if t.tensor_type == Q.F32 else np.float16).reshape(shape)
        if rows is not None:
            a = a[rows]
        return a.astype(np.float32, copy=False)

    def _vector(self, name: str, layer: int | None) -> np.ndarray:
        return self._float("output_norm.weight" if layer is None else f"blk.{layer}.{_GGUF_VECTOR[name]}.weight")

    def _embedding_key(self) -> str:
        return "token_embd.weight"

    def _head_key(self) -> str:
        return "output.weight"

    def tokenizer(self):
        """Byte-level BPE from the GGUF metadata (``tokenizer.ggml.model`` "gpt2"), or None."""
        model = self._str("tokenizer.ggml.model")
        if model is None:
            return None
        pre = self._str("tokenizer.ggml.pre") or "default"
        if model != "gpt2" or pre not in _PRE_TOKENIZER_REGEX:
            raise UnsupportedCheckpointError(self.path, f"tokenizer {model!r} with pre-tokenizer {pre!r}: only "
                                                        f"'gpt2' BPE with {sorted(_PRE_TOKENIZER_REGEX)}")
        from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

        tokens = self._scalar("tokenizer.ggml.tokens")
        merges = self._scalar("tokenizer.ggml.merges") or []
        types = self._scalar("tokenizer.ggml.token_type") or []
        if not isinstance(tokens, list) or not all(isinstance(m, str) and " " in m for m in merges):
            raise ConfigError(self.path, "tokenizer.ggml.tokens / merges are malformed")
        vocab = {tok: i for i, tok in enumerate(tokens)}
        tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                                  ignore_merges=pre == "llama-bpe"))
        regex = _PRE_TOKENIZER_REGEX[pre]
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=regex is None)
        tk.pre_tokenizer = byte_level if regex is None else pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(regex), behavior="isolated"), byte_level])
        tk.decoder = decoders.ByteLevel()
        tk.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                               for i, ty in enumerate(types) if ty == 3])  # gguf TokenType.CONTROL
        bos = self.config.bos_id
        if bos is not None and self._scalar("tokenizer.ggml.add_bos_token") is not False and 0 <= bos < len(tokens):
            tk.post_processor = processors.TemplateProcessing(single=f"{tokens[bos]} $A",
                                                              special_tokens=[(tokens[bos], bos)])
        return tk

    def _maps(self) -> list:
        return [self._reader.data] if self._reader is not None else []

    def close(self) -> None:
        self._tensors = {}
        self._reader = None


#: Pre-tokenizer split patterns by ``tokenizer.ggml.pre`` (None: GPT-2's, built into ByteLevel).
_PRE_TOKENIZER_REGEX = {
    "gpt-2": None,
    "default": None,
    # Llama 3 (2B-4T's tokenizer), from its tokenizer.json
    "llama-bpe": (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+"),
}


def _type_name(t) -> str:
    if t == GGML_TYPE_I2_S:
        return "I2_S"
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType(int(t)).name
    except ValueError:
        return str(int(t))


# --------------------------------------------------------------------------- entry point


def open_checkpoint(path: os.PathLike | str) -> Checkpoint:
    """Open a Hugging Face checkpoint directory or a ``.gguf`` file (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        return _HFCheckpoint(p)
    if not p.exists():
        raise CheckpointError(p, "no such file or directory")
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise CheckpointError(p, f"cannot read: {e}") from None
    if magic == b"GGUF" or p.suffix == ".gguf":
        return _GGUFCheckpoint(p)
    if p.name == "config.json" or p.suffix == ".safetensors":
        return _HFCheckpoint(p.parent)
    raise CheckpointFormatError(p, "neither a GGUF file nor a Hugging Face checkpoint directory")

