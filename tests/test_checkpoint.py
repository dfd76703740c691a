"""Checkpoint readers (ryzlab/model/checkpoint.py) on the golden fixtures of tools/make_golden.py.

The fixtures were written and run by transformers; these tests need neither torch nor
transformers: every bad file is built here from the good ones."""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from ryzlab.model.checkpoint import (
    LINEAR_NAMES,
    VECTOR_NAMES,
    CheckpointError,
    CheckpointFormatError,
    ConfigError,
    MissingTensorError,
    TensorShapeError,
    TernaryValueError,
    UnsupportedCheckpointError,
    open_checkpoint,
)
from ryzlab.errors import RyzlabError

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
SOURCES = {  # fixture -> every file of the same weights, with its format
    "tiny96": [("tiny96", "hf"), ("tiny96-bf16", "hf-bf16"), ("tiny96/model-i2_s.gguf", "gguf-i2_s")],
    "small256": [("small256", "hf"), ("small256/model-i2_s.gguf", "gguf-i2_s"),
                 ("small256/model-tq2_0.gguf", "gguf-tq2_0"), ("small256/model-tq1_0.gguf", "gguf-tq1_0")],
}
SHAPES = {"tiny96": dict(hidden=96, ffn=160, layers=2, heads=3, kv_heads=1, head_dim=32, vocab=300),
          "small256": dict(hidden=256, ffn=512, layers=1, heads=4, kv_heads=2, head_dim=64, vocab=200)}


# --------------------------------------------------------------------------- fixtures


def test_fixtures_exist_and_are_small():
    files = [f for f in GOLDEN.rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    assert total <= 2 * 1024 * 1024, f"golden fixtures take {total:,} bytes"
    for d in ("tiny96", "tiny96-bf16", "small256"):
        for name in ("config.json", "model.safetensors", "expected.npz", "expected.json"):
            assert (GOLDEN / d / name).is_file(), f"{d}/{name}"
    for srcs in SOURCES.values():
        for rel, _ in srcs:
            assert (GOLDEN / rel).exists(), rel


@pytest.mark.parametrize("name", ["tiny96", "tiny96-bf16", "small256"])
def test_expected_outputs_are_consistent(name):
    d = GOLDEN / name
    e = np.load(d / "expected.npz")
    meta = json.loads((d / "expected.json").read_text())
    cfg = json.loads((d / "config.json").read_text())
    ids = e["input_ids"]
    assert 8 <= ids.size <= 12 and meta["input_ids"] == ids.tolist()
    assert e["logits"].shape == (ids.size, cfg["vocab_size"]) and e["logits"].dtype == np.float32
    assert e["greedy"].shape == (16,) and meta["greedy"] == e["greedy"].tolist()
    assert np.all(np.isfinite(e["logits"]))
    assert cfg["quantization_config"] == {
        "quant_method": "bitnet", "linear_class": "autobitlinear",
        "quantization_mode": "online" if name.endswith("bf16") else "offline"}


# --------------------------------------------------------------------------- every format agrees


@pytest.mark.parametrize("fixture", list(SOURCES))
def test_every_format_gives_identical_weights(fixture):
    cks = [(open_checkpoint(GOLDEN / rel), fmt) for rel, fmt in SOURCES[fixture]]
    ref = cks[0][0]
    shape = SHAPES[fixture]
    for ck, fmt in cks:
        assert ck.format == fmt
        for k, v in shape.items():
            assert getattr(ck.config, k) == v, (fmt, k)
        assert ck.config.tied and ck.config.rope_theta == 500000.0
        assert np.float32(ck.config.eps) == np.float32(1e-5)  # GGUF stores it as float32
    for layer in range(ref.config.layers):
        for name in LINEAR_NAMES:
            w0, s0 = ref.ternary(layer, name)
            assert w0.dtype == np.int8 and w0.shape == ref.config.linear_shape(name)
            assert set(np.unique(w0).tolist()) == {-1, 0, 1}
            for ck, fmt in cks[1:]:
                w, s = ck.ternary(layer, name)
                assert w.dtype == np.int8 and np.array_equal(w, w0), (fmt, layer, name)
                assert s == s0, (fmt, layer, name, s, s0)  # the fixtures' scales are exact everywhere
        for name in VECTOR_NAMES[:-1]:
            for ck, fmt in cks[1:]:
                assert np.array_equal(ck.vector(name, layer), ref.vector(name, layer)), (fmt, name)
    for ck, fmt in cks[1:]:
        assert np.array_equal(ck.vector("final_norm"), ref.vector("final_norm"))
        e = ck.embedding()
        assert e.dtype == np.float32 and np.array_equal(e, ref.embedding()), fmt
        assert np.array_equal(ck.head(), e)
        assert np.array_equal(ck.embedding_rows([3, 0, 3]), e[[3, 0, 3]])


def test_hf_scale_is_weight_scale_for_autobitlinear(tmp_path):
    """autobitlinear multiplies by weight_scale; bitlinear (the class default) divides."""
    ws = _st_read(GOLDEN / "tiny96" / "model.safetensors")["model.layers.0.self_attn.q_proj.weight_scale"]
    weight_scale = float(_bf16(np.frombuffer(ws[2], np.uint16))[0])
    assert open_checkpoint(GOLDEN / "tiny96").ternary(0, "q")[1] == weight_scale
    d = _copy(tmp_path, "tiny96")
    _edit_config(d, lambda c: c["quantization_config"].update(linear_class="bitlinear"))
    assert open_checkpoint(d).ternary(0, "q")[1] == 1.0 / weight_scale


@pytest.mark.parametrize("rel", ["tiny96", "tiny96-bf16", "small256", "small256/model-tq1_0.gguf"])
def test_numpy_forward_reproduces_transformers_logits(rel):
    """transformers' float32 BitNet forward, written from its source in numpy over the reader's
    weights: checks the reader's scale semantics against what transformers computed (the
    difference is float32 summation order, ~1e-6)."""
    ck = open_checkpoint(GOLDEN / rel)
    e = np.load(GOLDEN / rel.split("/")[0] / "expected.npz")
    logits = _transformers_forward(ck, e["input_ids"])
    ref = e["logits"]
    err = np.abs(logits - ref).max() / np.abs(ref).max()
    assert err < 1e-5, err
    assert np.array_equal(np.argmax(logits, -1), np.argmax(ref, -1))


def _transformers_forward(ck, ids):
    c = ck.config
    f32 = np.float32

    def rms(x, w):
        return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + f32(c.eps)))

    def lin(x, layer, name):  # AutoBitLinear: ActQuant (per-token absmax fake-quant), then * weight_scale
        w, s = ck.ternary(layer, name)
        sc = f32(127) / np.maximum(np.abs(x).max(-1, keepdims=True), f32(1e-5))
        xq = np.clip(np.rint(x * sc), -128, 127) / sc
        return (xq @ w.T.astype(f32)) * f32(s)

    T, hd = len(ids), c.head_dim
    inv = 1.0 / (c.rope_theta ** (np.arange(0, hd, 2) / hd))
    ang = np.arange(T)[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)).astype(f32), np.sin(np.concatenate([ang, ang], -1)).astype(f32)

    def rope(x):  # (heads, T, hd), rotate-half
        rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos + rot * sin

    h = ck.embedding_rows(ids)
    mask = np.triu(np.full((T, T), -np.inf, f32), 1)
    for L in range(c.layers):
        x = rms(h, ck.vector("input_norm", L))
        q = rope(lin(x, L, "q").reshape(T, c.heads, hd).transpose(1, 0, 2))
        k = rope(lin(x, L, "k").reshape(T, c.kv_heads, hd).transpose(1, 0, 2))
        v = lin(x, L, "v").reshape(T, c.kv_heads, hd).transpose(1, 0, 2)
        g = c.heads // c.kv_heads
        k, v = np.repeat(k, g, 0), np.repeat(v, g, 0)
        s = q @ k.transpose(0, 2, 1) * f32(hd ** -0.5) + mask
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        a = (p @ v).transpose(1, 0, 2).reshape(T, c.heads * hd)
        h = h + lin(rms(a, ck.vector("attn_sub_norm", L)), L, "o")
        x = rms(h, ck.vector("post_norm", L))
        f = np.maximum(lin(x, L, "gate"), 0) ** 2 * lin(x, L, "up")
        h = h + lin(rms(f, ck.vector("ffn_sub_norm", L)), L, "down")
    return rms(h, ck.vector("final_norm")) @ ck.head().T  # the head is not quantised


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_and_chat_template():
    meta = json.loads((GOLDEN / "tiny96" / "expected.json").read_text())
    hf, gg = open_checkpoint(GOLDEN / "tiny96"), open_checkpoint(GOLDEN / "tiny96" / "model-i2_s.gguf")
    assert hf.tokenizer_path == GOLDEN / "tiny96" / "tokenizer.json"
    for ck in (hf, gg):
        tok = ck.tokenizer()
        assert tok.encode(meta["prompt_text"]).ids == meta["input_ids"]
        assert tok.decode(meta["input_ids"], skip_special_tokens=True) == meta["prompt_text"]
        assert ck.config.bos_id == meta["input_ids"][0]
    assert hf.chat_template and hf.chat_template == gg.chat_template
    import jinja2

    text = jinja2.Template(hf.chat_template).render(messages=[{"role": "user", "content": "Hi"}],
                                                    add_generation_prompt=True, bos_token="<|begin_of_text|>")
    assert text == "<|begin_of_text|>User: Hi<|eot_id|>Assistant: "
    assert open_checkpoint(GOLDEN / "small256" / "model-tq2_0.gguf").tokenizer() is None


# --------------------------------------------------------------------------- sharded HF


def test_sharded_hf_checkpoint(tmp_path):
    d = _copy(tmp_path, "tiny96")
    tensors = _st_read(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for fname, keys in shards.items():
        _st_write(d / fname, {k: tensors[k] for k in keys})
    index = {"metadata": {}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    ck, ref = open_checkpoint(d), open_checkpoint(GOLDEN / "tiny96")
    for name in LINEAR_NAMES:
        w, s = ck.ternary(1, name)
        w0, s0 = ref.ternary(1, name)
        assert np.array_equal(w, w0) and s == s0
    (d / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointFormatError, match="model-00002-of-00002"):
        open_checkpoint(d)


# --------------------------------------------------------------------------- bad files: HF


def _raises(exc, fn, path, tensor=None):
    with pytest.raises(exc) as info:
        fn()
    err = info.value
    assert isinstance(err, CheckpointError) and isinstance(err, RyzlabError)
    assert str(path) in str(err), str(err)
    if tensor is not None:
        assert tensor in str(err), str(err)
    return err


def test_directory_without_config(tmp_path):
    _raises(ConfigError, lambda: open_checkpoint(tmp_path), tmp_path)
    _raises(CheckpointError, lambda: open_checkpoint(tmp_path / "nothing"), tmp_path / "nothing")


def test_truncated_safetensors(tmp_path):
    d = _copy(tmp_path, "tiny96")
    f = d / "model.safetensors"
    data = f.read_bytes()
    for n in (len(data) - 100, 200, 5):
        f.write_bytes(data[:n])
        _raises(CheckpointFormatError, lambda: open_checkpoint(d), f)


def test_corrupt_safetensors_header(tmp_path):
    d = _copy(tmp_path, "tiny96")
    f = d / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[10:30] = b"\xff" * 20
    f.write_bytes(bytes(data))
    _raises(CheckpointFormatError, lambda: open_checkpoint(d), f)
    f.write_bytes(b"\xff" * 8 + bytes(data[8:]))  # absurd header length
    _raises(CheckpointFormatError, lambda: open_checkpoint(d), f)


def test_corrupt_config_json(tmp_path):
    d = _copy(tmp_path, "tiny96")
    (d / "config.json").write_text("{not json")
    _raises(ConfigError, lambda: open_checkpoint(d), d / "config.json")


KEY_Q = "model.layers.1.self_attn.q_proj.weight"
KEY_UP = "model.layers.1.mlp.up_proj.weight"


def test_missing_tensor(tmp_path):
    d = _copy(tmp_path, "tiny96")
    _edit_tensors(d, lambda t: t.pop(KEY_UP))
    _raises(MissingTensorError, lambda: open_checkpoint(d), d, KEY_UP)
    d = _copy(tmp_path / "b", "tiny96")
    _edit_tensors(d, lambda t: t.pop(KEY_Q + "_scale"))
    _raises(MissingTensorError, lambda: open_checkpoint(d), d, KEY_Q + "_scale")


def test_wrong_shape_and_dtype(tmp_path):
    d = _copy(tmp_path, "tiny96")

    def drop_row(t):
        dt, shape, raw = t[KEY_Q]
        t[KEY_Q] = (dt, [shape[0] - 1, shape[1]], raw[: (shape[0] - 1) * shape[1]])

    _edit_tensors(d, drop_row)
    _raises(TensorShapeError, lambda: open_checkpoint(d), d / "model.safetensors", KEY_Q)
    d = _copy(tmp_path / "b", "tiny96")
    _edit_tensors(d, lambda t: t.update({KEY_Q: ("I8",) + tuple(t[KEY_Q][1:])}))
    err = _raises(TensorShapeError, lambda: open_checkpoint(d), d / "model.safetensors", KEY_Q)
    assert "I8" in str(err)


def test_config_sizes_disagree_with_tensors(tmp_path):
    d = _copy(tmp_path, "tiny96")
    _edit_config(d, lambda c: c.update(intermediate_size=168))
    err = _raises(TensorShapeError, lambda: open_checkpoint(d), d / "model.safetensors")
    assert "config.json" in str(err)
    d = _copy(tmp_path / "b", "tiny96")
    _edit_config(d, lambda c: c.update(vocab_size=301))
    _raises(TensorShapeError, lambda: open_checkpoint(d), d, "model.embed_tokens.weight")
    d = _copy(tmp_path / "c", "tiny96")
    _edit_config(d, lambda c: c.update(num_key_value_heads=2))  # 3 heads: not a multiple
    _raises(ConfigError, lambda: open_checkpoint(d), d / "config.json")
    d = _copy(tmp_path / "d", "tiny96")
    _edit_config(d, lambda c: c.update(num_hidden_layers=0))
    _raises(ConfigError, lambda: open_checkpoint(d), d / "config.json")


@pytest.mark.parametrize("edit", [
    lambda c: c["quantization_config"].update(quant_method="gptq"),
    lambda c: c.pop("quantization_config"),
    lambda c: c["quantization_config"].update(linear_class="fancylinear"),
    lambda c: c.update(model_type="llama"),
    lambda c: c.update(hidden_act="silu"),
])
def test_unknown_quantization(tmp_path, edit):
    d = _copy(tmp_path, "tiny96")
    _edit_config(d, edit)
    _raises(UnsupportedCheckpointError, lambda: open_checkpoint(d), d / "config.json")


def test_packed_code_3_is_refused(tmp_path):
    d = _copy(tmp_path, "tiny96")

    def poison(t):
        dt, shape, raw = t[KEY_Q]
        t[KEY_Q] = (dt, shape, raw[:7] + bytes([0b11 << 4]) + raw[8:])

    _edit_tensors(d, poison)
    ck = open_checkpoint(d)  # the structure is fine; the values are checked on unpacking
    _raises(TernaryValueError, lambda: ck.ternary(1, "q"), d / "model.safetensors", KEY_Q)
    assert ck.ternary(1, "k")[0].shape == (32, 96)


@pytest.mark.parametrize("value", [float("nan"), 0.0, -0.5, float("inf")])
def test_bad_weight_scale(tmp_path, value):
    d = _copy(tmp_path, "tiny96")
    key = KEY_Q + "_scale"
    bf = (np.array([value], np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    _edit_tensors(d, lambda t: t.update({key: ("BF16", [1], bf)}))
    _raises(TernaryValueError, lambda: open_checkpoint(d), d / "model.safetensors", key)


def test_nan_master_weight(tmp_path):
    d = _copy(tmp_path, "tiny96-bf16")

    def poison(t):
        dt, shape, raw = t[KEY_Q]
        t[KEY_Q] = (dt, shape, b"\xc0\x7f" + raw[2:])  # bf16 NaN

    _edit_tensors(d, poison)
    ck = open_checkpoint(d)
    _raises(TernaryValueError, lambda: ck.ternary(1, "q"), d / "model.safetensors", KEY_Q)


# --------------------------------------------------------------------------- bad files: GGUF


def _gguf(tmp_path, rel):
    f = tmp_path / Path(rel).name
    shutil.copy(GOLDEN / rel, f)
    return f


@pytest.mark.parametrize("rel", ["tiny96/model-i2_s.gguf", "small256/model-tq2_0.gguf"])
def test_truncated_gguf(tmp_path, rel):
    f = _gguf(tmp_path, rel)
    data = f.read_bytes()
    for n in (len(data) - 1, len(data) // 2, 3000, 100, 23, 3):
        f.write_bytes(data[:n])
        _raises(CheckpointFormatError, lambda: open_checkpoint(f), f)


def test_corrupt_gguf_header_never_crashes(tmp_path):
    f = _gguf(tmp_path, "tiny96/model-i2_s.gguf")
    good = f.read_bytes()
    rng = np.random.default_rng(0)
    header_end = good.index(b"blk.1.ffn_sub_norm.weight") + 64
    outcomes = set()
    for trial in range(60):
        data = bytearray(good)
        at = int(rng.integers(4, header_end))
        data[at:at + 4] = bytes(rng.integers(0, 256, 4, dtype=np.uint8)) if trial % 2 else b"\xff\xff\xff\x7f"
        f.write_bytes(bytes(data))
        try:
            ck = open_checkpoint(f)
            ck.ternary(0, "q")
            outcomes.add("opened")
        except CheckpointError as e:
            assert str(f) in str(e)
            outcomes.add(type(e).__name__)
    assert len(outcomes) > 1, outcomes
    f.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 2**40) + good[24:])
    _raises(CheckpointFormatError, lambda: open_checkpoint(f), f)
    f.write_bytes(b"GGUX" + good[4:])
    _raises(CheckpointFormatError, lambda: open_checkpoint(f), f)


def test_corrupt_gguf_array_length(tmp_path):
    """gguf-py walks a metadata array item by item: a huge length must fail, not loop."""
    f = _gguf(tmp_path, "tiny96/model-i2_s.gguf")
    data = bytearray(f.read_bytes())
    key = b"tokenizer.ggml.token_type"
    at = data.index(struct.pack("<Q", len(key)) + key) + 8 + len(key) + 4 + 4  # skip ARRAY, item type
    for n in (2**40, 2**63, 10**6):
        struct.pack_into("<Q", data, at, n)
        f.write_bytes(bytes(data))
        _raises(CheckpointFormatError, lambda: open_checkpoint(f), f)


def _tensor_info_offset(data: bytes, name: str) -> int:
    """Offset of the type field in the tensor info of ``name`` (2-D tensors)."""
    at = data.index(struct.pack("<Q", len(name)) + name.encode())
    at += 8 + len(name)
    (n_dims,) = struct.unpack_from("<I", data, at)
    return at + 4 + 8 * n_dims


def test_unknown_gguf_type(tmp_path):
    f = _gguf(tmp_path, "small256/model-tq2_0.gguf")
    data = bytearray(f.read_bytes())
    name = "blk.0.ffn_up.weight"
    struct.pack_into("<I", data, _tensor_info_offset(bytes(data), name), 99)
    f.write_bytes(bytes(data))
    err = _raises(UnsupportedCheckpointError, lambda: open_checkpoint(f), f, name)
    assert "99" in str(err)
    struct.pack_into("<I", data, _tensor_info_offset(bytes(data), name), 8)  # Q8_0: known, not ternary
    f.write_bytes(bytes(data))
    _raises(CheckpointError, lambda: open_checkpoint(f), f, name)


def test_missing_gguf_tensor_and_wrong_metadata(tmp_path):
    f = _gguf(tmp_path, "small256/model-i2_s.gguf")
    good = f.read_bytes()
    f.write_bytes(good.replace(b"blk.0.ffn_up.weight", b"blk.0.ffn_uq.weight", 1))
    _raises(MissingTensorError, lambda: open_checkpoint(f), f, "blk.0.ffn_up.weight")
    f.write_bytes(good.replace(b"bitnet.feed_forward_length", b"bitnet.feed_forward_lengtx", 1))
    _raises(ConfigError, lambda: open_checkpoint(f), f)
    # feed_forward_length 512 -> 768: the tensors disagree
    at = good.index(b"bitnet.feed_forward_length") + len(b"bitnet.feed_forward_length")
    data = bytearray(good)
    struct.pack_into("<I", data, at + 4, 768)
    f.write_bytes(bytes(data))
    _raises(TensorShapeError, lambda: open_checkpoint(f), f, "blk.0.ffn_gate.weight")
    f.write_bytes(good.replace(b"bitnet", b"llamaa"))
    _raises(UnsupportedCheckpointError, lambda: open_checkpoint(f), f)


def _tensor_data(ck, name):
    return ck._tensors[name]


def test_i2_s_bad_values(tmp_path):
    f = _gguf(tmp_path, "small256/model-i2_s.gguf")
    ck = open_checkpoint(f)
    name = "blk.0.attn_k.weight"
    t = _tensor_data(ck, name)
    off, n = t.data_offset, t.n_elements
    ck.close()
    good = f.read_bytes()
    data = bytearray(good)
    data[off + 5] = 0xFF  # four codes of 3
    f.write_bytes(bytes(data))
    _raises(TernaryValueError, lambda: open_checkpoint(f).ternary(0, "k"), f, name)
    for value in (float("nan"), 0.0, -1.0):
        data = bytearray(good)
        struct.pack_into("<f", data, off + n // 4, value)
        f.write_bytes(bytes(data))
        _raises(TernaryValueError, lambda: open_checkpoint(f), f, name)


def test_tq_bad_values(tmp_path):
    f = _gguf(tmp_path, "small256/model-tq2_0.gguf")
    ck = open_checkpoint(f)
    name = "blk.0.attn_v.weight"
    off = _tensor_data(ck, name).data_offset
    ck.close()
    good = f.read_bytes()
    cases = [(off + 3, b"\xff", "3"),                        # codes of 3
             (off + 64, np.float16(np.nan).tobytes(), "NaN"),  # block scale NaN
             (off + 66 + 64, np.float16(0.5).tobytes(), "differ")]  # second block's scale differs
    for at, patch, words in cases:
        data = bytearray(good)
        data[at:at + len(patch)] = patch
        f.write_bytes(bytes(data))
        err = _raises(TernaryValueError, lambda: open_checkpoint(f).ternary(0, "v"), f, name)
        assert words in str(err)


def test_tq1_0_all_zero_blocks_need_no_scale(tmp_path):
    """A block of zeros may carry any scale (ggml writes 0); the others must agree."""
    f = _gguf(tmp_path, "small256/model-tq1_0.gguf")
    ck = open_checkpoint(f)
    w0, s0 = ck.ternary(0, "q")
    t = _tensor_data(ck, "blk.0.attn_q.weight")
    off = t.data_offset
    ck.close()
    data = bytearray(f.read_bytes())
    # block 0: all codes 1 (zero weights): every trit 1 -> byte value sum(3^k) scaled as ggml does
    trits5 = (121 * 256 + 242) // 243  # 11111 in base 3 = 121
    trits4 = (40 * 3 * 256 + 242) // 243  # 1111 in base 3 = 40, shifted to 5 digits
    data[off:off + 48] = bytes([trits5]) * 48
    data[off + 48:off + 52] = bytes([trits4]) * 4
    data[off + 52:off + 54] = np.float16(0).tobytes()
    f.write_bytes(bytes(data))
    w, s = open_checkpoint(f).ternary(0, "q")
    assert s == s0 and not w.reshape(-1)[:256].any()
    assert np.array_equal(w.reshape(-1)[256:], w0.reshape(-1)[256:])


# --------------------------------------------------------------------------- API edges


def test_api_arguments():
    ck = open_checkpoint(GOLDEN / "tiny96")
    with pytest.raises(ValueError):
        ck.ternary(2, "q")
    with pytest.raises(ValueError):
        ck.ternary(0, "qkv")
    with pytest.raises(ValueError):
        ck.vector("final_norm", 0)
    with pytest.raises(ValueError):
        ck.vector("input_norm")
    with pytest.raises(ValueError):
        ck.embedding_rows([300])
    assert "tiny96" in repr(ck)
    with open_checkpoint(GOLDEN / "tiny96" / "config.json") as ck2:
        assert ck2.format == "hf"


# --------------------------------------------------------------------------- helpers


def _copy(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    shutil.copytree(GOLDEN / name, d)
    return d


def _edit_config(d: Path, fn) -> None:
    c = json.loads((d / "config.json").read_text())
    fn(c)
    (d / "config.json").write_text(json.dumps(c))


def _st_read(path: Path) -> dict:
    """name -> (dtype, shape, raw bytes) of a safetensors file, parsed by hand."""
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]])
            for k, v in header.items()}


def _st_write(path: Path, tensors: dict) -> None:
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k, (dt, shape, raw) in tensors.items():
        header[k] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def _edit_tensors(d: Path, fn) -> None:
    t = _st_read(d / "model.safetensors")
    fn(t)
    _st_write(d / "model.safetensors", t)


def _bf16(u16: np.ndarray) -> np.ndarray:
    return (u16.astype(np.uint32) << 16).view(np.float32)


def test_helpers_round_trip(tmp_path):
    d = _copy(tmp_path, "small256")
    _edit_tensors(d, lambda t: None)
    a, b = open_checkpoint(d), open_checkpoint(GOLDEN / "small256")
    assert np.array_equal(a.ternary(0, "down")[0], b.ternary(0, "down")[0])
    assert math.isfinite(a.ternary(0, "down")[1])
