"""Instruction tokenizers. Both save into a checkpoint directory and load from it.

- `WordTokenizer`: built from the instructions of a (tiny) dataset; a JSON vocabulary.
- `SentencePieceTokenizer`: a SentencePiece model read from a local path (PaliGemma's, for the pi0
  presets); nothing is downloaded.

Instructions longer than the model's `max_token_len` are an error naming the limit, never a silent cut.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

_WORD_RE = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


class InstructionTooLongError(ValueError):
    pass


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def encode_prompt(self, prompt: str) -> list[int]: ...

    def save(self, directory: Path) -> None: ...


class WordTokenizer:
    """Lower-cased words and punctuation; ids 0..2 are <pad>, <unk>, <bos>."""

    SPECIALS = ("<pad>", "<unk>", "<bos>")
    PAD, UNK, BOS = 0, 1, 2
    FILENAME = "tokenizer.json"

    def __init__(self, vocab: list[str]):
        if tuple(vocab[:3]) != self.SPECIALS:
            raise ValueError(f"word vocabulary must start with {self.SPECIALS}, got {vocab[:3]}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @staticmethod
    def split(text: str) -> list[str]:
        return _WORD_RE.findall(text.lower())

    @classmethod
    def build(cls, instructions: Iterable[str], max_vocab: int) -> "WordTokenizer":
        counts = Counter(w for text in instructions for w in cls.split(text))
        words = sorted(counts, key=lambda w: (-counts[w], w))[: max_vocab - len(cls.SPECIALS)]
        return cls([*cls.SPECIALS, *words])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.BOS] + [self.index.get(w, self.UNK) for w in self.split(text)]

    def encode_prompt(self, prompt: str) -> list[int]:
        return self.encode(prompt)

    def save(self, directory: Path) -> None:
        (Path(directory) / self.FILENAME).write_text(json.dumps({"type": "word", "vocab": self.vocab}, indent=1))

    @classmethod
    def load(cls, directory: Path) -> "WordTokenizer":
        path = Path(directory) / cls.FILENAME
        data = json.loads(path.read_text())
        if data.get("type") != "word" or not isinstance(data.get("vocab"), list):
            raise ValueError(f"{path}: not a word tokenizer file (expected {{'type': 'word', 'vocab': [...]}})")
        return cls(data["vocab"])


class SentencePieceTokenizer:
    """A local SentencePiece model, PaliGemma-style prompt: <bos> + text + newline."""

    FILENAME = "tokenizer.model"

    def __init__(self, model_path: str | Path):
        import sentencepiece

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"SentencePiece model not found at {self.model_path}; pass the path to a "
                                    "local tokenizer.model (e.g. PaliGemma's)")
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(self.model_path))

    @property
    def vocab_size(self) -> int:
        return int(self.sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        cleaned = text.strip().replace("_", " ").replace("\n", " ")
        return self.encode_prompt(cleaned + "\n")

    def encode_prompt(self, prompt: str) -> list[int]:
        """<bos> + the prompt as given (pi0.5's state prompts carry their own format)."""
        bos = self.sp.bos_id()
        return ([bos] if bos >= 0 else []) + self.sp.encode(prompt)

    def save(self, directory: Path) -> None:
        shutil.copyfile(self.model_path, Path(directory) / self.FILENAME)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    directory = Path(directory)
    if (directory / WordTokenizer.FILENAME).is_file():
        return WordTokenizer.load(directory)
    if (directory / SentencePieceTokenizer.FILENAME).is_file():
        return SentencePieceTokenizer(directory / SentencePieceTokenizer.FILENAME)
    raise FileNotFoundError(f"no tokenizer in {directory}: expected {WordTokenizer.FILENAME} or "
                            f"{SentencePieceTokenizer.FILENAME}")


STATE_BINS = 256


def state_prompts(instructions: list[str], state: np.ndarray) -> list[str]:
    """pi0.5's prompts (openpi `PaligemmaTokenizer`, LeRobot `Pi05PrepareStateTokenizerProcessorStep`): the
    normalized, padded state (N, S), expected in [-1, 1], discretised into 256 bins and written after the task.
        "Task: pick up the cube, State: 128 140 97 ...;\nAction: "
    """
    bins = np.digitize(np.asarray(state, np.float64), bins=np.linspace(-1, 1, STATE_BINS + 1)[:-1]) - 1
    prompts = []
    for text, row in zip(instructions, bins, strict=True):
        cleaned = text.strip().replace("_", " ").replace("\n", " ")
        prompts.append(f"Task: {cleaned}, State: {' '.join(map(str, row))};\nAction: ")
    return prompts


def tokenize(tokenizer: Tokenizer, instructions: list[str], max_len: int,
             state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-> tokens int64 (N, max_len) right-padded with 0, mask bool (N, max_len). With `state` (normalized and
    padded, (N, S)) the prompts are pi0.5's, the state written into them (`state_prompts`)."""
    tokens = np.zeros((len(instructions), max_len), dtype=np.int64)
    mask = np.zeros((len(instructions), max_len), dtype=bool)
    for i, text in enumerate(instructions):
        if not isinstance(text, str):
            raise TypeError(f"instruction {i} must be a str, got {type(text).__name__}")
    prompts = state_prompts(instructions, state) if state is not None else None
    for i, text in enumerate(instructions):
        ids = tokenizer.encode_prompt(prompts[i]) if prompts is not None else tokenizer.encode(text)
        if len(ids) > max_len:
            raise InstructionTooLongError(
                f"instruction {i} is {len(ids)} tokens, over the model's limit max_token_len={max_len}: "
                f"{text!r}. Shorten it or use a model configured with a larger max_token_len.")
        tokens[i, : len(ids)] = ids
        mask[i, : len(ids)] = True
    return tokens, mask
