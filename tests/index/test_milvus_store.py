"""The passage store on both backends — FAISS and Milvus (Milvus Lite: in this process for a `.db` path,
and a real `milvus-lite server` process for the replica test) — with the real embedder and chunker.

The retrieval tests are parametrised over the two stores. The replica test runs two API servers (each
its own Pipeline and Milvus client, in-process LiveServers) over one Milvus server: what one ingests the
other serves within a second. Its generator is rag.testing.ScriptedGenerator, a fake (no model is
loaded): only search and document routes are used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from index.embedders import Embedder
from index.keywords import bm25_terms
from index.library import Library
from index.loaders import document_from_bytes, load_documents
from index.milvus_store import (
    ID_BYTES,
    SCHEMA_VERSION,
    TERMS_ANALYZER,
    TEXT_BYTES,
    MilvusPassageIndex,
    milvus_term,
    milvus_terms,
)
from index.service import make_spec_embedder, new_index, open_index
from index.store import IndexMismatchError, PassageIndex
from index.types import Document, IndexSpec, StoreKind
from rag.fusion import ConvexFusion, ReciprocalRankFusion
from rag.retrievers import Query, make_retriever
from rag.settings import PROJECT_ROOT, RetrieverKind, Settings
from rag.testing import MilvusLiteServer, ScriptedGenerator, wait_until
from tests.conftest import ARTICLE, LiveServer

DENG_QUESTION = "What did Deng agree in 1979?"
LIGHTHOUSE = (
    "The Harwick lighthouse keeper logged 412 ships in the winter of 1911. "
    "Its lamp burned whale oil until the keeper, Ada Morrow, installed a kerosene burner in 1902."
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return make_spec_embedder(IndexSpec())


@pytest.fixture(scope="module")
def milvus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Milvus Lite `.db` for the module (its in-process server starts once); each test its own collections."""
    return tmp_path_factory.mktemp("milvus") / "store.db"


@pytest.fixture(params=["faiss", "milvus"])
def make_store(
    request: pytest.FixtureRequest, embedder: Embedder, milvus_file: Path, tmp_path: Path
) -> Iterator[Callable[[], Library]]:
    """A factory of empty stores of one kind, each wrapped in the Library every writer uses."""
    opened: list[PassageIndex] = []

    def make() -> Library:
        if request.param == "faiss":
            index = new_index(IndexSpec(), embedder)
            opened.append(index)
            return Library(tmp_path / f"index-{len(opened)}", index)
        prefix = f"t{os.getpid()}_{len(opened)}_{request.node.name.split('[')[0][-20:]}".replace("-", "_")
        spec = IndexSpec(store=StoreKind.MILVUS, milvus_uri=str(milvus_file), milvus_collection=prefix)
        index = new_index(spec, embedder)
        opened.append(index)
        return Library(tmp_path / "unused", index)

    yield make
    for index in opened:
        if isinstance(index, MilvusPassageIndex):
            index._drop()
            index.close()


@pytest.fixture(scope="module")
def article() -> Document:
    return load_documents(ARTICLE)[0]


def top_text(index: PassageIndex, question: str, kind: RetrieverKind = RetrieverKind.DENSE) -> str:
    retriever = make_retriever(kind, index, candidates=20)
    hits = retriever.retrieve(Query(question, index.embedder.embed_query(question)), 3)
    return hits[0].text if hits else ""


def test_offsets_and_documents_round_trip(make_store: Callable[[], Library], article: Document) -> None:
    library = make_store()
    library.add([article])
    stored = library.index.document(article.doc_id)
    assert stored == article  # text, title, byline, date, header_end: every field
    assert stored is not None and stored.sha256 == article.sha256
    chunks = library.index.chunks()
    assert len(chunks) == len(library.index) > 10
    for chunk in chunks:
        assert article.text[chunk.start : chunk.end] == chunk.text
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    info = library.index.document_infos()[0]
    assert (info.doc_id, info.sha256, info.chunk_count) == (article.doc_id, article.sha256, len(chunks))


def test_incremental_add_and_remove_by_sha256(make_store: Callable[[], Library], article: Document) -> None:
    library = make_store()
    first = library.add([article])
    assert first.added == [article.doc_id] and first.passages_embedded == len(library.index)
    generation = library.index.generation

    again = library.add([article])
    assert again.unchanged == [article.doc_id] and again.passages_embedded == 0
    assert library.index.generation == generation  # nothing written, nothing for caches to rebuild

    note = document_from_bytes("lighthouse.txt", LIGHTHOUSE.encode(), source="upload:lighthouse.txt")
    added = library.add([note])
    assert added.added == [note.doc_id] and library.index.generation != generation
    assert "Ada Morrow" in top_text(library.index, "Who installed the kerosene burner?")

    changed = document_from_bytes(
        "lighthouse.txt", LIGHTHOUSE.replace("Ada Morrow", "Ruth Penhale").encode(), source="upload:lighthouse.txt"
    )
    replaced = library.add([changed])
    assert replaced.replaced == [changed.doc_id]
    assert {d.doc_id for d in library.index.documents} == {article.doc_id, changed.doc_id}
    assert not any("Ada Morrow" in c.text for c in library.index.chunks())

    assert library.remove(changed.doc_id)
    assert not library.remove(changed.doc_id)
    assert library.index.document(changed.doc_id) is None
    assert "Penhale" not in top_text(library.index, "Who installed the kerosene burner?")
    assert [d.doc_id for d in library.index.documents] == [article.doc_id]


def test_dense_search_finds_the_deng_passage(make_store: Callable[[], Library], article: Document) -> None:
    library = make_store()
    library.add([article])
    text = top_text(library.index, DENG_QUESTION)
    assert "Deng" in text and "1979" in text
    hits = library.index.search(library.index.embedder.embed_query(DENG_QUESTION), 5)
    scores = [score for _, score in hits]
    assert len(hits) == 5 and scores == sorted(scores, reverse=True) and 0.3 < scores[0] <= 1.0
    vectors = library.index.vectors_for([hits[0][0].chunk_id, "no-such-passage"])
    assert abs(float(vectors[0] @ library.index.embedder.embed_query(DENG_QUESTION)) - scores[0]) < 1e-3
    assert not vectors[1].any()


def test_hybrid_ranking_fuses_dense_and_keyword(make_store: Callable[[], Library], article: Document) -> None:
    library = make_store()
    library.add([article])
    index = library.index
    query = Query(DENG_QUESTION, index.embedder.embed_query(DENG_QUESTION))
    dense = make_retriever(RetrieverKind.DENSE, index, 20).retrieve(query, 20)
    keyword = make_retriever(RetrieverKind.BM25, index, 20).retrieve(query, 20)
    hybrid = make_retriever(RetrieverKind.HYBRID, index, 20, ConvexFusion(0.85)).retrieve(query, 5)
    assert keyword and "Deng" in keyword[0].text
    # Convex fusion: 0.85 × cosine + 0.15 × BM25 / the best BM25, the cosine read from the stored vector.
    cosine = {
        p.chunk_id: float(v @ query.vector)
        for p, v in zip(keyword, index.vectors_for([p.chunk_id for p in keyword]), strict=True)
    }
    cosine |= {p.chunk_id: p.score for p in dense}
    bm25 = {p.chunk_id: p.score / keyword[0].score for p in keyword}
    expected = {c: 0.85 * cosine[c] + 0.15 * bm25.get(c, 0.0) for c in cosine}
    assert [h.chunk_id for h in hybrid] == sorted(expected, key=lambda c: -expected[c])[:5]
    for hit in hybrid:
        assert hit.score == pytest.approx(expected[hit.chunk_id], abs=1e-4)
        assert hit.relevance == pytest.approx(cosine[hit.chunk_id], abs=1e-4)
    assert hybrid[0].chunk_id == dense[0].chunk_id == keyword[0].chunk_id
    # Reciprocal-rank fusion, the other choice: the sum of 1/(60 + rank) over the rankings a passage is in.
    by_rank = make_retriever(RetrieverKind.HYBRID, index, 20, ReciprocalRankFusion(60)).retrieve(query, 5)
    ranks = [{hit.chunk_id: n for n, hit in enumerate(ranking, start=1)} for ranking in (dense, keyword)]
    for hit in by_rank:
        assert hit.score == pytest.approx(sum(1.0 / (60 + r[hit.chunk_id]) for r in ranks if hit.chunk_id in r))
    # A passage only the keywords find still reaches the fused list when nothing ranks above it.
    rare = make_retriever(RetrieverKind.HYBRID, index, 20).retrieve(
        Query("Afghanistan Reagan", index.embedder.embed_query("Afghanistan Reagan")), 3
    )
    assert any("Afghan" in hit.text for hit in rare)


def test_both_stores_rank_alike(embedder: Embedder, milvus_file: Path, article: Document, tmp_path: Path) -> None:
    """The same passages, the same vectors, exact inner product on both: the same dense top 5."""
    faiss_index = new_index(IndexSpec(), embedder)
    faiss_index.add([article])
    spec = IndexSpec(store=StoreKind.MILVUS, milvus_uri=str(milvus_file), milvus_collection=f"alike{os.getpid()}")
    milvus_index = new_index(spec, embedder)
    assert isinstance(milvus_index, MilvusPassageIndex)
    try:
        Library(tmp_path, milvus_index).rebuild([article])
        for question in (DENG_QUESTION, "Who wrote the article?", "What is the no limits partnership?"):
            vector = embedder.embed_query(question)
            assert [c.chunk_id for c, _ in faiss_index.search(vector, 5)] == [
                c.chunk_id for c, _ in milvus_index.search(vector, 5)
            ]
    finally:
        milvus_index._drop()
        milvus_index.close()


def test_gold_hit_at_k_is_the_same_on_both_stores(
    embedder: Embedder, milvus_file: Path, article: Document, tmp_path: Path, record_property: Callable[..., None]
) -> None:
    """hit@1/3/5 exactly as `rag eval` scores them (eval.runner.score_item over the pipeline's search with the
    default retriever, candidates and fusion) for every article question with evidence: at most one item apart.
    Measured: 92/110/120 of 125 on both (Milvus scored 92/113/118 while its BM25 tokenized `text` itself)."""
    from eval.gold import ARTICLE_GOLD, load_gold
    from eval.runner import score_item
    from eval.targets import InProcessTarget
    from rag.pipeline import Pipeline

    settings = Settings()
    items = [item for item in load_gold(ARTICLE_GOLD) if item.evidence]
    faiss_index = new_index(settings.index_spec(), embedder)
    faiss_index.add([article])
    spec = dataclasses.replace(
        settings.index_spec(),
        store=StoreKind.MILVUS,
        milvus_uri=str(milvus_file),
        milvus_collection=f"gold{os.getpid()}",
    )
    milvus = milvus_index(spec, embedder)
    hits: dict[str, dict[str, int]] = {}
    try:
        Library(tmp_path, milvus).rebuild([article])
        for name, index in (("faiss", faiss_index), ("milvus", milvus)):
            # Pipeline.search is what the eval's in-process target calls; the generator is never used.
            target = InProcessTarget(Pipeline(settings, index, ScriptedGenerator()))
            scores = [score_item(item, target, retrieval_only=True).scores for item in items]
            hits[name] = {k: round(sum(s[k] or 0.0 for s in scores)) for k in ("hit@1", "hit@3", "hit@5")}
    finally:
        milvus._drop()
        milvus.close()
    record_property("gold_hits", hits)
    print(f"{len(items)} questions, {settings.retriever.value} retriever: {hits}")
    for k in ("hit@1", "hit@3", "hit@5"):
        assert abs(hits["faiss"][k] - hits["milvus"][k]) <= 1, (k, hits)


def test_milvus_terms_are_the_product_terms_one_word_each() -> None:
    """Milvus's BM25 reads `terms`, each of the product's terms spelt so that its tokenizer keeps it whole."""
    from milvus_lite.analyzer import create_analyzer

    analyzer = create_analyzer(TERMS_ANALYZER)  # what Milvus Lite runs on `terms` and on a query
    text = "China’s and Russia's U.S. trade of 1,000,000 tons in 2024: the café in İstanbul, snake_case"
    terms = bm25_terms(text)
    assert {"china's", "russia's", "u.s", "1,000,000", "2024"} <= set(terms) and not {"the", "and", "of"} & set(terms)
    assert analyzer.tokenize(milvus_terms(text)) == [milvus_term(t) for t in terms]
    assert milvus_terms("the of and") == milvus_term("∅")  # bm25s's placeholder for a text with no terms
    # Any token, not only the product's ASCII ones: one word under Milvus Lite's \w+ and under a Milvus
    # server's split at every character that is not a letter or digit (`_` included), unchanged by
    # lowercasing, and no two tokens spelt alike.
    tokens = [
        "china's",
        "u.s",
        "1,000",
        "∅",
        "a_b",
        "aǂ5fǂb",
        "a_5f_b",
        "café",
        "İstanbul",
        "i̇stanbul",
        "١٢٣",
        "x²",
        "_",
    ]
    spelt = [milvus_term(token) for token in tokens]
    assert len(set(spelt)) == len(tokens)
    for word in spelt:
        assert analyzer.tokenize(word) == [word]
        assert [part for part in re.split(r"[\W_]+", word) if part] == [word]
        assert word.lower() == word
    assert len(milvus_terms("a.b " * 20_000).encode()) <= TEXT_BYTES  # a VARCHAR's limit holds


def test_keyword_ranking_is_the_same_on_both_stores(
    embedder: Embedder, milvus_file: Path, article: Document, tmp_path: Path
) -> None:
    """For every article question: the same passages with proportional BM25 scores (Milvus keeps Lucene's
    (k1 + 1) factor, which bm25s drops: 2.5 at k1 = 1.5), which takes the same terms, lengths and IDF on
    both. Only passages with equal scores may come in another order (bm25s leaves ties unordered)."""
    from eval.gold import ARTICLE_GOLD, load_gold

    faiss_index = new_index(IndexSpec(), embedder)
    faiss_index.add([article])
    spec = IndexSpec(store=StoreKind.MILVUS, milvus_uri=str(milvus_file), milvus_collection=f"bm25{os.getpid()}")
    milvus = milvus_index(spec, embedder)
    try:
        Library(tmp_path, milvus).rebuild([article])
        questions = [item.question for item in load_gold(ARTICLE_GOLD)]
        assert any("'s " in question for question in questions) and any("U.S." in q for q in questions)
        for question in questions:
            query = Query(question, embedder.embed_query(question))
            rankings = [
                {hit.chunk_id: hit.score for hit in make_retriever(RetrieverKind.BM25, index, 20).retrieve(query, 1000)}
                for index in (faiss_index, milvus)
            ]
            assert rankings[0].keys() == rankings[1].keys(), question
            for chunk_id, score in rankings[0].items():
                assert rankings[1][chunk_id] == pytest.approx(2.5 * score, rel=1e-4), (question, chunk_id)
    finally:
        milvus._drop()
        milvus.close()


def make_schema_1(index: MilvusPassageIndex) -> None:
    """Make a fresh store what the previous version created (schema version 1): Milvus's BM25 over `text`
    through its own tokenizer, no `terms` field, and a spec record without "schema"."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    index.client.drop_collection(index.passages_name)
    passages = MilvusClient.create_schema(auto_id=False)
    passages.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=ID_BYTES)
    passages.add_field("doc_id", DataType.VARCHAR, max_length=ID_BYTES)
    analyzer = {"tokenizer": "standard", "filter": ["lowercase"]}
    passages.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES, enable_analyzer=True, analyzer_params=analyzer)
    passages.add_field("start", DataType.INT64)
    passages.add_field("end", DataType.INT64)
    passages.add_field("vector", DataType.FLOAT_VECTOR, dim=index.embedder.dimension)
    passages.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    passages.add_function(
        Function(
            name="text_bm25",
            function_type=FunctionType.BM25,
            input_field_names=["text"],
            output_field_names=["sparse"],
        )
    )
    indexes = index.client.prepare_index_params()
    indexes.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
    indexes.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    index.client.create_collection(index.passages_name, schema=passages, index_params=indexes)
    record = index._spec_record()
    del record["schema"]
    index._put_meta("spec", json.dumps(record))


def passage_fields(index: MilvusPassageIndex) -> set[str]:
    return {field["name"] for field in index.client.describe_collection(index.passages_name)["fields"]}


def test_an_index_of_the_previous_schema_is_refused_in_one_line_and_rebuilt(
    embedder: Embedder, milvus_file: Path, article: Document, tmp_path: Path
) -> None:
    spec = IndexSpec(store=StoreKind.MILVUS, milvus_uri=str(milvus_file), milvus_collection=f"old{os.getpid()}")
    old = milvus_index(spec, embedder)
    make_schema_1(old)
    old.close()
    with pytest.raises(IndexMismatchError) as refused:
        open_index(tmp_path, spec, embedder)  # what `rag serve`, `rag ask`, `rag index add` do
    message = str(refused.value)
    assert "\n" not in message and "schema version 1" in message, message
    assert "`rag index build`" in message and "`python -m index.migrate`" in message, message
    # `rag index build` opens it with new_index, which leaves it to the rebuild: anything else is refused.
    index = milvus_index(spec, embedder)
    try:
        assert index.built_schema == 1 and "terms" not in passage_fields(index)
        for attempt in (
            lambda: index.add([article]),
            lambda: index.keyword_search("China", 3),
            lambda: index.search(embedder.embed_query("China"), 3),
            lambda: index.document_infos(),
        ):
            with pytest.raises(IndexMismatchError, match="schema version 1"):
                attempt()
        Library(tmp_path, index).rebuild([article])
        assert index.built_schema == SCHEMA_VERSION and "terms" in passage_fields(index)
        reopened = open_index(tmp_path, spec, embedder)
        assert isinstance(reopened, MilvusPassageIndex) and len(reopened) == len(index) > 10
        assert "China’s" in reopened.keyword_search("China's", 1)[0][0].text  # the article's apostrophe is ’
        reopened.close()
    finally:
        index._drop()
        index.close()


def test_migrate_replaces_an_index_of_the_previous_schema(
    embedder: Embedder, milvus_file: Path, article: Document
) -> None:
    from index.migrate import migrate

    source = new_index(IndexSpec(), embedder)
    source.add([article])
    spec = IndexSpec(store=StoreKind.MILVUS, milvus_uri=str(milvus_file), milvus_collection=f"oldmig{os.getpid()}")
    old = milvus_index(spec, embedder)
    make_schema_1(old)
    old.close()
    target = milvus_index(spec, embedder)
    try:
        report = migrate(source, target)
        assert report.added == [article.doc_id] and report.passages_embedded == len(source) == len(target)
        assert target.built_schema == SCHEMA_VERSION and "terms" in passage_fields(target)
        ids = [c.chunk_id for c in source.chunks()]
        assert np.allclose(target.vectors_for(ids), source.vectors_for(ids), atol=1e-6)  # copied, not re-embedded
    finally:
        target._drop()
        target.close()


def test_rag_index_info_on_the_previous_schema_is_one_line(embedder: Embedder, tmp_path: Path) -> None:
    from milvus_lite.server_manager import server_manager_instance

    path = (tmp_path / "old.db").resolve()
    spec = IndexSpec(store=StoreKind.MILVUS, milvus_uri=str(path), milvus_collection="old")
    old = milvus_index(spec, embedder)
    make_schema_1(old)
    old.close()
    server_manager_instance.release_server(str(path))  # a Milvus Lite file serves one process: let the CLI have it
    env = {
        **os.environ,
        "RAG_STORE": "milvus",
        "RAG_MILVUS_URI": str(path),
        "RAG_MILVUS_COLLECTION": "old",
        "HF_HUB_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "index", "info"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert "schema version 1" in lines[0] and "rag index build" in lines[0], lines[0]


def test_migrate_copies_a_faiss_index_with_its_vectors(
    embedder: Embedder, milvus_file: Path, article: Document
) -> None:
    from index.migrate import migrate

    note = document_from_bytes("lighthouse.txt", LIGHTHOUSE.encode(), source="upload:lighthouse.txt")
    source = new_index(IndexSpec(), embedder)
    source.add([article, note])
    spec = IndexSpec(store=StoreKind.MILVUS, milvus_uri=str(milvus_file), milvus_collection=f"moved{os.getpid()}")
    target = milvus_index(spec, embedder)
    try:
        report = migrate(source, target)
        assert sorted(report.added) == sorted([article.doc_id, note.doc_id])
        assert report.passages_embedded == len(source) == len(target)
        assert target.documents == source.documents
        assert target.chunks() == source.chunks()
        ids = [c.chunk_id for c in source.chunks()]
        assert np.allclose(target.vectors_for(ids), source.vectors_for(ids), atol=1e-6)
        again = migrate(source, target)
        assert sorted(again.unchanged) == sorted(report.added) and again.passages_embedded == 0
    finally:
        target._drop()
        target.close()


def test_migrate_command_and_reopening_a_db_file_in_a_new_process(
    embedder: Embedder, article: Document, tmp_path: Path
) -> None:
    """Each run is a new process opening the `.db` Milvus Lite wrote before: its collections must be loaded."""
    source = new_index(IndexSpec(), embedder)
    source.add([article])
    source.save(tmp_path / "faiss")
    command = [sys.executable, "-m", "index.migrate", "--from", str(tmp_path / "faiss"), "--to", str(tmp_path / "m.db")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    runs = [
        subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=90) for _ in "12"
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert f"copied 1 document(s) and {len(source)} passages" in runs[0].stdout
    assert "copied 0 document(s)" in runs[1].stdout and "1 already there" in runs[1].stdout


def test_a_db_file_open_in_another_process_is_a_one_line_error(milvus_file: Path, embedder: Embedder) -> None:
    spec = IndexSpec(store=StoreKind.MILVUS, milvus_uri=str(milvus_file), milvus_collection=f"busy{os.getpid()}")
    index = milvus_index(spec, embedder)  # this process now holds the file
    try:
        env = {**os.environ, "RAG_STORE": "milvus", "RAG_MILVUS_URI": str(milvus_file), "HF_HUB_OFFLINE": "1"}
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "index", "add", str(ARTICLE)],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 1, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
        assert "open in another process" in lines[0] and "milvus-lite server" in lines[0]
    finally:
        index.close()


# ---- replicas over one Milvus server ---------------------------------------------------------------
@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `milvus-lite server` process on a free loopback port."""
    with MilvusLiteServer(tmp_path_factory.mktemp("milvus-server")) as server:
        yield server.uri


def milvus_index(spec: IndexSpec, embedder: Embedder) -> MilvusPassageIndex:
    index = new_index(spec, embedder)
    assert isinstance(index, MilvusPassageIndex)
    return index


def test_two_replicas_share_one_milvus_server(
    milvus_server: str, embedder: Embedder, article: Document, tmp_path: Path
) -> None:
    from api.app import create_app
    from rag.pipeline import Pipeline

    settings = Settings().with_overrides(
        store="milvus",
        milvus_uri=milvus_server,
        milvus_collection=f"replicas{os.getpid()}",
        admin_token="test-token",
        index_dir=tmp_path / "unused",
        feedback_path=tmp_path / "feedback.jsonl",
    )
    first_index = milvus_index(settings.index_spec(), embedder)
    Library(settings.index_dir, first_index).rebuild([article])
    second_index = milvus_index(settings.index_spec(), embedder)  # its own client and caches: another replica
    one = Pipeline.from_settings(settings, ScriptedGenerator(), first_index)
    two = Pipeline.from_settings(settings, ScriptedGenerator(), second_index)
    auth = {"Authorization": "Bearer test-token"}
    question = {"query": "Who installed the kerosene burner in the lighthouse?", "top_k": 3}
    try:
        with LiveServer(create_app(settings, one)) as a, LiveServer(create_app(settings, two)) as b:
            assert (
                "Deng" in httpx.post(f"{b.url}/api/search", json={"query": DENG_QUESTION}).json()["passages"][0]["text"]
            )

            upload = httpx.post(
                f"{a.url}/api/documents", files={"file": ("lighthouse.txt", LIGHTHOUSE.encode())}, headers=auth
            )
            assert upload.status_code == 201, upload.text
            doc_id = upload.json()["doc_id"]

            def served_by_b() -> bool:
                passages = httpx.post(f"{b.url}/api/search", json=question).json()["passages"]
                return any(p["doc_id"] == doc_id for p in passages)

            wait_until(served_by_b, 1.0, "the upload served by the other replica")
            assert doc_id in {d["doc_id"] for d in httpx.get(f"{b.url}/api/documents").json()}
            assert httpx.get(f"{b.url}/api/documents/{doc_id}").status_code == 200

            assert httpx.delete(f"{a.url}/api/documents/{doc_id}", headers=auth).status_code == 200
            wait_until(lambda: not served_by_b(), 1.0, "the delete seen by the other replica")
            wait_until(
                lambda: httpx.get(f"{b.url}/api/documents/{doc_id}").status_code == 404, 1.0, "the document gone"
            )
            assert httpx.delete(f"{b.url}/api/documents/{doc_id}", headers=auth).status_code == 404
    finally:
        first_index._drop()
        first_index.close()
        second_index.close()
