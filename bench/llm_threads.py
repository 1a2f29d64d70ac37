"""Usage: PYTHONPATH=. python bench/llm_threads.py 1,2 INDEX_DIR (the bundled articles' index).

Prompt reading and generation speed by llama.cpp thread count, on real windows vs whole chunks (prints JSON)."""
import json
import os
import sys
import time
from pathlib import Path

from rag.answer import llm_judge
from rag.answer.llm import LlmReader, format_passages
from rag.answer.local_model import LlamaCppChat, packaged_gguf
from rag.config import PROJECT_ROOT, load_settings
from rag.pipeline import Assistant

settings = load_settings(articles_dir=PROJECT_ROOT / "articles", index_dir=Path(sys.argv[2]), answer_mode="llm")
a = Assistant.from_settings(settings)
qs = ["How many North Korean troops have been killed or wounded?", "Which think tank assessed the integration of North Korean troops?"]
for threads in [int(t) for t in sys.argv[1].split(",")]:
    chat = LlamaCppChat(packaged_gguf(), threads=threads)
    reader = LlmReader(settings, llm=chat, judge=a.reader)
    for i, q in enumerate(qs):
        query, _ = a._read_question(q, ())
        passages = a._retrieve(query.resolved)
        for label, shown in (("windows", llm_judge.windows(query, passages, 3)), ("chunks", passages[:3]))[: 1 if i == 0 else 2]:
            user = reader.prompt.fill(passages=format_passages(shown), question=query.resolved)
            msgs = reader._messages(user, example=True)
            ptoks = len(chat.model.tokenize(json.dumps(msgs).encode()))
            t0, c0 = time.perf_counter(), time.process_time()
            first, n = None, 0
            with chat.lock:
                for _piece in chat.stream(msgs, 24, time.monotonic() + 900):
                    first = first or time.perf_counter() - t0
                    n += 1
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(json.dumps({"threads": threads, "q": i, "read": label, "prompt_tokens~": ptoks, "first_token_s": round(first, 1),
                              "total_s": round(wall, 1), "cpu_s": round(cpu, 1), "pieces": n,
                              "gen_tok_s": round((n - 1) / (wall - first), 2) if wall > first else None,
                              "load": os.getloadavg()[0]}), flush=True)
    del chat, reader
