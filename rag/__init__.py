"""Questions in, cited answers out: retrieval, re-scoring, generation and citation checking.

`rag.pipeline.Pipeline` runs the stages. Over the index `rag index build` wrote, with the settings of the
`RAG_*` variables (both models load on first use):

    from rag.pipeline import DoneEvent, Pipeline, TokenEvent
    from rag.settings import Settings
    from rag.types import Turn

    pipeline = Pipeline.from_settings(Settings())
    answer = pipeline.ask("When was the museum founded?")
    if answer.abstained:
        print("no answer:", answer.abstain_reason)
    else:
        print(answer.answer)  # "In 1881 [1]."
        for citation in answer.citations:  # [n] in the answer: the passage and its offsets in the document
            print(citation.n, citation.title, citation.doc_id, citation.start, citation.end)

    history = [Turn(role="user", content="When was the museum founded?"),
               Turn(role="assistant", content=answer.answer)]
    follow_up = pipeline.ask("Who founded it?", history=history)  # rewritten into a standalone question first

    for passage in pipeline.search("museum founding", top_k=3, rescore=False):  # retrieval only: no model call
        print(passage.rank, passage.score, passage.title, passage.text)

    for event in pipeline.stream("When was the museum founded?"):  # status, passages, draft tokens, done
        if isinstance(event, TokenEvent):
            print(event.text, end="")  # a draft: the checked answer comes with DoneEvent
        elif isinstance(event, DoneEvent):
            print()
            print(event.answer.answer)

`Pipeline(settings, index, generator)` takes its parts directly: with an in-memory index
(`index.service.new_index(settings.index_spec())`) and `rag.testing.ScriptedGenerator` (replies from a
list, no generator model), the same calls run in tests.
"""
