"""Copy a FAISS index directory into the Milvus store, vectors included (nothing is re-embedded).

    python -m index.migrate --from var/index --to http://host:19530

`--to` defaults to RAG_MILVUS_URI and `--collection` to RAG_MILVUS_COLLECTION, as `rag serve` reads them.
Documents whose content (sha256) Milvus already has are left alone, so a second run changes nothing.
A Milvus index of an older schema version (milvus_store.SCHEMA_VERSION), which this version cannot read, is
replaced.
The FAISS directory is only read.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

from index.errors import UserError
from index.milvus_store import SCHEMA_VERSION, MilvusPassageIndex
from index.service import make_spec_embedder, new_index, open_index
from index.store import Embedded, IngestReport, PassageIndex, embedding_key
from index.types import IndexSpec, StoreKind


def migrate(source: PassageIndex, target: MilvusPassageIndex) -> IngestReport:
    """Every document of `source` with its passages and stored vectors, added to `target` — or, if `target`
    is of an older schema version (which nothing in this version reads or writes), replacing it."""
    state = source.snapshot()
    embedded: dict[tuple[str, str], Embedded] = {}
    for doc_id, document in state.documents.items():
        ids = state.ids_by_doc.get(doc_id, ())
        vectors = np.zeros((len(ids), target.embedder.dimension), dtype=np.float32)
        for row, faiss_id in enumerate(ids):
            vectors[row] = state.vectors.reconstruct(faiss_id)
        embedded[embedding_key(document)] = Embedded([state.chunks[i] for i in ids], vectors)
    documents = list(state.documents.values())
    if target.built_schema != SCHEMA_VERSION:
        return target.rebuild(documents, embedded=embedded)
    return target.add(documents, replace_same_source=False, embedded=embedded)


def main(argv: list[str] | None = None) -> int:
    """The command line: one line on success, one `error:` line (exit 1) on a problem the user can fix."""
    defaults = IndexSpec()
    parser = argparse.ArgumentParser(prog="python -m index.migrate", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, default=Path(os.environ.get("RAG_INDEX_DIR", "var/index")))
    parser.add_argument("--to", default=os.environ.get("RAG_MILVUS_URI", defaults.milvus_uri))
    parser.add_argument("--collection", default=os.environ.get("RAG_MILVUS_COLLECTION", defaults.milvus_collection))
    args = parser.parse_args(argv)
    spec = dataclasses.replace(defaults, milvus_uri=args.to, milvus_collection=args.collection)
    try:
        embedder = make_spec_embedder(spec)
        source = open_index(args.source, spec, embedder)
        target = new_index(dataclasses.replace(spec, store=StoreKind.MILVUS), embedder)
        if not isinstance(target, MilvusPassageIndex):
            raise TypeError("new_index did not open a Milvus store")
        layout = target.built_schema
        report = migrate(source, target)
        target.close()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    replaced = f" (replaced its index of schema version {layout}, which this version does not read)"
    print(
        f"copied {len(report.added)} document(s) and {report.passages_embedded} passages from {args.source} "
        f"to {args.to}; {len(report.unchanged)} already there{replaced if layout != SCHEMA_VERSION else ''}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
