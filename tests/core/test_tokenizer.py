"""Tokenizers: the word tokenizer built from a dataset, and a real SentencePiece model from a local file."""

import numpy as np
import pytest
import sentencepiece

from core.tokenizer import (
    InstructionTooLongError,
    SentencePieceTokenizer,
    WordTokenizer,
    load_tokenizer,
    tokenize,
)

INSTRUCTIONS = ["Pick up the red cube.", "push the cube to the goal", "pick up the green cube"]


def test_word_tokenizer_builds_encodes_and_round_trips(tmp_path):
    tok = WordTokenizer.build(INSTRUCTIONS, max_vocab=64)
    ids = tok.encode("pick up the red cube")
    assert ids[0] == WordTokenizer.BOS and WordTokenizer.UNK not in ids
    assert tok.encode("pick up the purple cube")[4] == WordTokenizer.UNK
    assert tok.encode("PICK   up") == tok.encode("pick up")
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, WordTokenizer) and again.vocab == tok.vocab


def test_tokenize_pads_and_refuses_to_cut():
    tok = WordTokenizer.build(INSTRUCTIONS, max_vocab=64)
    tokens, mask = tokenize(tok, ["pick up the red cube", "push"], max_len=8)
    assert tokens.shape == (2, 8) and tokens.dtype == np.int64
    assert mask.sum(1).tolist() == [6, 2] and (tokens[~mask] == 0).all()
    with pytest.raises(InstructionTooLongError, match="max_token_len=4"):
        tokenize(tok, ["pick up the red cube"], max_len=4)


def test_sentencepiece_model_from_a_local_path(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(INSTRUCTIONS * 20 + ["open the drawer", "close the top drawer of the cabinet"] * 20))
    sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=30,
                                             model_type="unigram", bos_id=2, eos_id=1, pad_id=0, unk_id=3,
                                             minloglevel=2)
    tok = SentencePieceTokenizer(tmp_path / "sp.model")
    assert tok.vocab_size == 30
    ids = tok.encode("pick up the red cube")
    assert ids[0] == 2 and len(ids) > 3
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    tok.save(ckpt)
    assert load_tokenizer(ckpt).encode("pick up the red cube") == ids
    with pytest.raises(FileNotFoundError, match="SentencePiece model not found"):
        SentencePieceTokenizer(tmp_path / "missing.model")


def test_missing_tokenizer_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer in"):
        load_tokenizer(tmp_path)


def test_pi05_state_prompts_discretise_like_openpi():
    from core.tokenizer import state_prompts

    state = np.array([[-1.0, 0.0, 0.999, 1.0, -1.5, -0.9921875]])
    # np.digitize over 256 bins of [-1, 1) minus 1 (openpi / LeRobot): -1 -> 0, 0 -> 128, >= 1 - 2/256 -> 255,
    # below -1 -> -1 (not clipped, as there); -1 + 2/256 opens bin 1
    assert state_prompts(["pick_up the cube\n"], state) == ["Task: pick up the cube , State: 0 128 255 255 -1 1;\n"
                                                              "Action: ".replace(" ,", ",")]
