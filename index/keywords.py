"""The product's keyword tokens: what BM25 ranks on, in both stores.

The FAISS store's keyword ranking (bm25s in rag.retrievers) and the Milvus store's (Milvus's BM25 over the
`terms` field, index.milvus_store) must see the same tokens, or the two stores rank the same passages
differently; so the tokenizer lives here, below both (rag/ imports index/, never the reverse).
"""

from __future__ import annotations

import re

from bm25s.stopwords import STOPWORDS_EN

# Words and numbers with their inner punctuation: "1,000", "u.s" and "china's" stay one token each.
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,'’][a-z0-9]+)*")
# bm25s's English stop words; question words ("what", "who") are not among them and are kept.
STOP_WORDS: frozenset[str] = frozenset(STOPWORDS_EN)
# bm25s needs at least one token per text, so a text with none gets this one (it matches nothing else).
EMPTY_TOKEN = "∅"


def keyword_tokens(text: str) -> list[str]:
    """Lower-cased words and numbers ("1,000", "u.s" stay whole), stop words included."""
    return _TOKEN.findall(text.lower().replace("’", "'"))


def bm25_terms(text: str) -> list[str]:
    """What BM25 indexes and queries: `keyword_tokens` without the stop words, or [EMPTY_TOKEN] if none is left."""
    return [token for token in keyword_tokens(text) if token not in STOP_WORDS] or [EMPTY_TOKEN]
