"""The CLIP BPE tokenizer, built offline from the vocabulary that open_clip ships.

OpenAI's CLIP, open_clip's ``SimpleTokenizer`` and Hugging Face's ``CLIPTokenizer`` share one
vocabulary: the 256 byte symbols, the same with the end-of-word marker, 48,894 merges, then
``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407). This module turns open_clip's
``bpe_simple_vocab_16e6.txt.gz`` into the ``vocab`` / ``merges`` that ``CLIPTokenizer`` takes,
so a Hugging Face model folder can be given a real tokenizer without any download.
"""

from __future__ import annotations

import gzip
from functools import lru_cache

from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import CLIPTokenizer

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
CONTEXT_LENGTH = 77
# OpenAI's vocabulary keeps the first 48,894 merges of the file (after its header line).
_N_MERGES = 49152 - 256 - 2


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The OpenAI CLIP vocabulary (token -> id) and BPE merges, from open_clip's file."""
    with gzip.open(default_bpe()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(merge) for merge in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_hf_tokenizer(context_length: int = CONTEXT_LENGTH) -> CLIPTokenizer:
    """A Hugging Face ``CLIPTokenizer`` identical to OpenAI's, made without network access."""
    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=context_length)
