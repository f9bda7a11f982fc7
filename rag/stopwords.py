"""Words too common to tell one sentence from another, for the word-overlap checks.

Citation repair (`rag.citations`) ignores only the function words; grounding (`rag.grounding`) also ignores
quantifiers and pronouns, because it weighs which sentence states the answer and such words match everywhere.
"""

from __future__ import annotations

# fmt: off
FUNCTION_WORDS = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "did", "do", "does", "for", "from", "had", "has",
    "have", "he", "her", "his", "in", "is", "it", "its", "no", "not", "of", "on", "or", "she", "that", "the",
    "their", "them", "there", "they", "this", "to", "was", "were", "what", "when", "where", "which", "who", "why",
    "will", "with", "would", "yes",
])

STOPWORDS = FUNCTION_WORDS | frozenset([
    "about", "after", "all", "also", "any", "before", "both", "can", "could", "each", "how", "i", "into", "just",
    "less", "many", "more", "most", "much", "only", "other", "our", "over", "per", "same", "so", "some", "such",
    "than", "then", "these", "those", "under", "us", "very", "we", "whom", "whose", "you", "your",
])
# fmt: on
