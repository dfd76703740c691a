"""Text around the model: chat templates and incremental detokenisation.

The tokenizer itself is a ``tokenizers.Tokenizer`` (``tokenizer.json`` beside a Hugging Face
checkpoint, or rebuilt from a GGUF file's metadata by :meth:`Checkpoint.tokenizer`).
"""

from __future__ import annotations

from ..errors import RyzlabError


class ChatTemplateError(RyzlabError, ValueError):
    """A chat template that cannot be rendered (or none where one is needed)."""


def render_chat(template: str | None, messages: list[dict], *, bos_token: str = "", eos_token: str = "",
                add_generation_prompt: bool = True) -> str:
    """Render a Hugging Face chat template (jinja2) as transformers does: a sandboxed
    environment with ``trim_blocks`` and ``lstrip_blocks``, ``raise_exception`` available."""
    if not template:
        raise ChatTemplateError("the checkpoint has no chat template (tokenizer_config.json "
                                "chat_template or GGUF tokenizer.chat_template)")
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise ChatTemplateError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(messages=messages, bos_token=bos_token, eos_token=eos_token,
                                                add_generation_prompt=add_generation_prompt)
    except jinja2.TemplateError as e:
        raise ChatTemplateError(f"cannot render the chat template: {e}") from None


def special_token(tokenizer, token_id: int | None) -> str:
    """The text of a token id ('' when unknown), e.g. the BOS token a template inserts."""
    if tokenizer is None or token_id is None:
        return ""
    return tokenizer.id_to_token(int(token_id)) or ""


class TextStream:
    """Decode token ids incrementally: :meth:`push` returns the text the new id completes.

    Decoding the whole output each time and emitting the new suffix keeps multi-byte
    characters and merged spaces right; text ending in an incomplete UTF-8 sequence
    (U+FFFD) is held back until the next id completes it."""

    def __init__(self, tokenizer):
        self.tokenizer, self.ids, self.text = tokenizer, [], ""

    def push(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") or not text.startswith(self.text):
            return ""
        new, self.text = text[len(self.text):], text
        return new

    def flush(self) -> str:
        """The text not returned yet (an incomplete character at the end included, as U+FFFD)."""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        new = text[len(self.text):] if text.startswith(self.text) else ""
        self.text = text
        return new
