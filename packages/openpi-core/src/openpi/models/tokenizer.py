"""PaliGemma prompt tokenizer (sentencepiece), formats identical to upstream openpi.

pi0:   encode(cleaned, add_bos=True) + encode("\\n"), padded to max_len (48).
pi0.5: encode(f"Task: {cleaned}, State: {bins};\\nAction: ", add_bos=True) where bins = the state discretized into 256
       bins over [-1, 1] (np.digitize(state, linspace(-1, 1, 257)[:-1]) - 1), padded to max_len (200).
Cleaning: strip, "_" -> " ", "\\n" -> " ". Pad id 0 with mask False; overlong prompts are truncated with a warning.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger("openpi.tokenizer")

PALIGEMMA_TOKENIZER_URL = "gs://big_vision/paligemma_tokenizer.model"


def clean_prompt(prompt: str) -> str:
    return prompt.strip().replace("_", " ").replace("\n", " ")


def discretize_state(state) -> np.ndarray:
    return np.digitize(np.asarray(state), bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1


class PaligemmaTokenizer:
    def __init__(self, max_len: int = 48, model_path: str | None = None):
        import sentencepiece

        self._max_len = max_len
        if model_path is None:
            from openpi.shared import download

            model_path = download.maybe_download(PALIGEMMA_TOKENIZER_URL)
        with open(model_path, "rb") as f:
            self._tokenizer = sentencepiece.SentencePieceProcessor(model_proto=f.read())

    @property
    def max_len(self) -> int:
        return self._max_len

    def tokenize(self, prompt: str, state=None) -> tuple[np.ndarray, np.ndarray]:
        cleaned = clean_prompt(prompt)
        if state is not None:
            bins = " ".join(map(str, discretize_state(state)))
            tokens = self._tokenizer.encode(f"Task: {cleaned}, State: {bins};\nAction: ", add_bos=True)
        else:
            tokens = self._tokenizer.encode(cleaned, add_bos=True) + self._tokenizer.encode("\n")
        n = len(tokens)
        if n < self._max_len:
            mask = [True] * n + [False] * (self._max_len - n)
            tokens = tokens + [0] * (self._max_len - n)
        else:
            if n > self._max_len:
                logger.warning(
                    "Prompt of %d tokens truncated to max_token_len=%d (raise max_token_len in the model config): %r",
                    n,
                    self._max_len,
                    cleaned,
                )
            tokens = tokens[: self._max_len]
            mask = [True] * self._max_len
        return np.asarray(tokens, dtype=np.int64), np.asarray(mask, dtype=bool)


class LazyPaligemmaTokenizer:
    """Creates the PaligemmaTokenizer (which may download the sentencepiece model) on first use, so building a data
    config never touches the network."""

    def __init__(self, max_len: int = 48, model_path: str | None = None):
        self._max_len, self._model_path = max_len, model_path
        self._tok: PaligemmaTokenizer | None = None

    @property
    def max_len(self) -> int:
        return self._max_len

    def tokenize(self, prompt: str, state=None):
        if self._tok is None:
            self._tok = PaligemmaTokenizer(self._max_len, self._model_path)
        return self._tok.tokenize(prompt, state)
