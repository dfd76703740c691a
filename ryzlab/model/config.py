"""Shapes of BitNet b1.58 decoders: :class:`Config` and the named ones in :data:`CONFIGS`."""

from __future__ import annotations

from dataclasses import dataclass

#: RMSNorm epsilon of BitNet b1.58 2B-4T (``rms_norm_eps``).
NORM_EPS = 1e-5


@dataclass(frozen=True)
class Config:
    """Shape of a BitNet b1.58 decoder."""

    name: str
    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    rope_theta: float = 500000.0
    norm_eps: float = NORM_EPS

    def __post_init__(self) -> None:
        for f in ("hidden", "ffn", "layers", "heads", "kv_heads", "head_dim", "vocab"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Config.{f} must be a positive int, got {v!r}")
        if self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {self.head_dim}")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")

    @property
    def q_out(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_out(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def group(self) -> int:
        """Query heads per KV head."""
        return self.heads // self.kv_heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """The four ternary matrices of one layer as packed (out x in), fused where fused."""
        return {
            "qkv": (self.q_out + 2 * self.kv_out, self.hidden),
            "o": (self.hidden, self.q_out),
            "gate_up": (2 * self.ffn, self.hidden),
            "down": (self.hidden, self.ffn),
        }

    @property
    def ternary_weights(self) -> int:
        """Ternary weights in all layers."""
        return self.layers * sum(m * k for m, k in self.linear_shapes().values())

    def kv_bytes_per_position(self) -> int:
        """Float32 KV-cache bytes one position occupies over all layers (keys and values)."""
        return self.layers * 2 * self.kv_out * 4


CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config("bitnet-2b-4t", hidden=2560, ffn=6912, layers=30, heads=20, kv_heads=5, head_dim=128,
               vocab=128256, rope_theta=500000.0),
        # The two 1bitLLM reproductions are Llama-shaped (RoPE theta 10000).
        Config("bitnet-3b", hidden=3200, ffn=8640, layers=26, heads=32, kv_heads=32, head_dim=100,
               vocab=32002, rope_theta=10000.0),
        Config("bitnet-large", hidden=1536, ffn=4096, layers=24, heads=16, kv_heads=16, head_dim=96,
               vocab=32002, rope_theta=10000.0),
        # Test size: no K (200, 330, 50) is a multiple of 64, 128 or 256.
        Config("tiny", hidden=200, ffn=330, layers=2, heads=4, kv_heads=2, head_dim=50, vocab=1000,
               rope_theta=500000.0),
    )
}


def get_config(config: Config | str) -> Config:
    """A :class:`Config`, or the one named in :data:`CONFIGS`."""
    if isinstance(config, Config):
        return config
    if isinstance(config, str) and config in CONFIGS:
        return CONFIGS[config]
    raise ValueError(f"unknown model {config!r}; choose one of: {', '.join(CONFIGS)}")
