"""The web app for real: `rag serve` in a subprocess on a free port, the API through httpx, the pages
through a headless Debian Chromium driven by Playwright, and a real reverse proxy for the sub-path.

Expected answers are never hard-coded: the browser checks show what the API returned for the same question.
Screenshots go to $RAG_SCREENSHOTS (or the test's tmp folder): `make screenshots`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.schema import AnswerModel
from tests.app_support import CHROMIUM, PYTHON, ROOT, TOKEN, clean_env, launch_chromium, rag_server, reverse_proxy
from tests.conftest import BUNDLED, DEV_QUESTIONS
from tests.llm_support import model_server, url_of

ORIGIN = "https://wiki.example.org"
XSS_TITLE = "<script>window.__xss = 1</script>Quillfeather lighthouse keepers strike"
XSS_ARTICLE = (
    f"{XSS_TITLE}\n"
    "The Quillfeather lighthouse keepers went on strike on Tuesday over unpaid overtime. "
    'Their union posted a notice reading <img src=x onerror="window.__xss = 2"> on the harbour gate. '
    "The strike at the Quillfeather lighthouse is expected to last two weeks.\n"
)
XSS_QUESTION = "Why did the Quillfeather lighthouse keepers go on strike?"


def _dev_questions(count: int) -> list[str]:
    rows = [json.loads(line) for line in DEV_QUESTIONS.read_text().splitlines() if line.strip()]
    return [row["question"] for row in rows][:count]


def _without_timings(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "timings"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web")
    shutil.copytree(BUNDLED, root / "articles")
    (root / "articles" / "900_xss.txt").write_text(XSS_ARTICLE, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def server(corpus: Path) -> Any:
    """Default settings (no token, no embedding origins), plus a feedback file."""
    with rag_server(corpus / "articles", corpus / "index", corpus, "open", RAG_FEEDBACK_FILE=str(corpus / "feedback.jsonl"),
                    RAG_LLM_PATH=str(corpus / "no-such-model.gguf")) as url:  # llm mode has no model here
        yield url


@pytest.fixture(scope="module")
def limited(corpus: Path, server: str) -> Any:
    """Tight abuse limits: 3 POSTs a minute per client, told apart by the credential they send (no token is
    configured, so any works), bodies up to 2048 bytes."""
    env = {"RAG_RATE_LIMIT": "3", "RAG_RATE_LIMIT_BY": "token", "RAG_MAX_BODY_BYTES": "2048"}
    with rag_server(corpus / "articles", corpus / "index", corpus, "limited", **env) as url:
        yield url


@pytest.fixture(scope="module")
def guarded(corpus: Path, server: str) -> Any:
    """Token, allowed origin and a /rag sub-path, behind a reverse proxy; yields (direct URL, proxied URL)."""
    env = {"RAG_API_TOKEN": TOKEN, "RAG_ALLOWED_ORIGINS": ORIGIN, "RAG_ROOT_PATH": "/rag"}
    with rag_server(corpus / "articles", corpus / "index", corpus, "guarded", **env) as direct:
        with reverse_proxy(direct, "/rag", corpus) as proxied:
            yield direct, proxied


# ---------------------------------------------------------------- the JSON API


def test_health(server: str) -> None:
    reply = httpx.get(f"{server}/api/health")
    assert reply.status_code == 200 and reply.json()["status"] == "ok" and reply.json()["articles"] == 6


def test_api_returns_the_same_json_as_rag_ask(server: str, corpus: Path) -> None:
    question = _dev_questions(1)[0]
    reply = httpx.post(f"{server}/api/ask", json={"question": question}, timeout=60)
    assert reply.status_code == 200
    cli = subprocess.run(
        [PYTHON, "-m", "rag.cli", "ask", "--json", question, "--articles", str(corpus / "articles"), "--index", str(corpus / "index")],
        capture_output=True, text=True, env=clean_env(), cwd=corpus, timeout=300, check=True,
    )
    assert _without_timings(reply.json()) == _without_timings(json.loads(cli.stdout))
    # the server writes the dataclasses without validating them: the declared schema must still hold them exactly
    assert AnswerModel.model_validate(reply.json()).model_dump(mode="json") == reply.json()
    articles = {p.name: p.read_text(encoding="utf-8") for p in (corpus / "articles").iterdir()}
    for quote in reply.json()["quotes"]:
        assert articles[quote["article_id"]][quote["start"]:quote["end"]] == quote["text"]


def test_api_follow_up_uses_history(server: str) -> None:
    first, *_ = _dev_questions(1)
    alone = httpx.post(f"{server}/api/ask", json={"question": "Where is it?"}, timeout=60).json()
    followed = httpx.post(f"{server}/api/ask", json={"question": "Where is it?", "history": [first]}, timeout=60).json()
    assert followed["resolved_question"] != alone["resolved_question"]
    # one question a person would write (issue 20), leaning on the first turn: its words or its answer
    reading = followed["resolved_question"]
    assert reading.count("?") == 1 and first not in reading
    earlier = httpx.post(f"{server}/api/ask", json={"question": first}, timeout=60).json()["text"].split(" [")[0]
    assert any(w in reading.lower() for w in (first + " " + earlier).lower().split() if len(w) > 4), reading


@pytest.mark.parametrize("body", [
    {"question": ""}, {"question": "   "}, {"question": "x" * 5000}, {}, {"question": 3}, {"question": "ok?", "history": "no"},
    {"question": "ok?", "extra": 1},
])
def test_api_rejects_bad_questions_with_422(server: str, body: dict[str, Any]) -> None:
    reply = httpx.post(f"{server}/api/ask", json=body, timeout=60)
    assert reply.status_code == 422
    assert "Traceback" not in reply.text and reply.json()["detail"]


def test_api_too_long_message_is_clear(server: str) -> None:
    reply = httpx.post(f"{server}/api/ask", json={"question": "x" * 5000}, timeout=60)
    assert "too long" in reply.json()["detail"]


def test_default_settings_allow_no_embedding_and_no_cors(server: str) -> None:
    reply = httpx.get(f"{server}/widget/", headers={"Origin": ORIGIN})
    assert reply.headers["content-security-policy"].endswith("; frame-ancestors 'self'")
    api = httpx.post(f"{server}/api/ask", json={"question": "Who?"}, headers={"Origin": ORIGIN}, timeout=60)
    assert "access-control-allow-origin" not in api.headers


def test_article_page_highlights_the_span_and_404s_unknown_ids(server: str) -> None:
    answer = httpx.post(f"{server}/api/ask", json={"question": XSS_QUESTION}, timeout=60).json()
    quote = (answer["quotes"] or answer["related"])[0]
    page = httpx.get(f"{server}/article/{quote['article_id']}", params={"start": quote["start"], "end": quote["end"]})
    assert page.status_code == 200 and "<mark" in page.text
    assert httpx.get(f"{server}/article/nope.txt").status_code == 404


def test_gradio_client_named_endpoint(server: str) -> None:
    from gradio_client import Client

    question = _dev_questions(1)[0]
    client = Client(f"{server}/", verbose=False)
    via_gradio = client.predict(question, [], api_name="/ask")
    via_api = httpx.post(f"{server}/api/ask", json={"question": question}, timeout=60).json()
    assert _without_timings(via_gradio) == _without_timings(via_api)


def test_twenty_concurrent_users_get_the_answers_one_user_gets(server: str) -> None:
    questions = (_dev_questions(5) * 4)[:20]
    expected = {q: _without_timings(httpx.post(f"{server}/api/ask", json={"question": q}, timeout=60).json()) for q in set(questions)}

    def ask(question: str) -> dict[str, Any]:
        return httpx.post(f"{server}/api/ask", json={"question": question}, timeout=120).json()

    with ThreadPoolExecutor(20) as pool:
        got = list(pool.map(ask, questions))
    assert [_without_timings(g) for g in got] == [expected[q] for q in questions]


def test_token_is_required_everywhere_but_health(guarded: tuple[str, str]) -> None:
    direct, proxied = guarded
    for base in (direct, proxied):
        assert httpx.get(f"{base}/api/health").status_code == 200
        for path in ("/", "/widget/", "/article/900_xss.txt"):
            assert httpx.get(f"{base}{path}").status_code == 401, path
        no = httpx.post(f"{base}/api/ask", json={"question": "Who?"})
        assert no.status_code == 401 and "Bearer" in no.json()["detail"]
        wrong = httpx.post(f"{base}/api/ask", json={"question": "Who?"}, headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401
        ok = httpx.post(f"{base}/api/ask", json={"question": XSS_QUESTION}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert ok.status_code == 200 and ok.json()["question"] == XSS_QUESTION


def test_allowed_origin_may_embed_and_call_the_api(guarded: tuple[str, str]) -> None:
    direct, _ = guarded
    headers = {"Authorization": f"Bearer {TOKEN}", "Origin": ORIGIN}
    page = httpx.get(f"{direct}/widget/", headers=headers)
    assert page.headers["content-security-policy"].endswith(f"; frame-ancestors 'self' {ORIGIN}")
    preflight = httpx.options(f"{direct}/api/ask", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.post(f"{direct}/api/ask", json={"question": "Who?"}, headers={**headers, "Origin": "https://evil.example"}, timeout=60)
    assert "access-control-allow-origin" not in other.headers


def _policy(reply: httpx.Response) -> dict[str, str]:
    directives = (d.strip().split(" ", 1) for d in reply.headers["content-security-policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


def test_pages_allow_only_our_own_scripts(server: str) -> None:
    nonces = set()
    for path in ("/", "/widget/"):
        page = httpx.get(f"{server}{path}")
        policy = _policy(page)
        assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'" and policy["base-uri"] == "'self'"
        script_src = policy["script-src"].split()
        assert script_src[0] == "'self'" and len(script_src) == 2 and script_src[1].startswith("'nonce-")
        assert "unsafe-inline" not in policy["script-src"] and "unsafe-eval" not in policy["script-src"]
        nonce = script_src[1][len("'nonce-"):-1]
        tags = re.findall(r"<script[^>]*>", page.text)
        assert tags and all(f'nonce="{nonce}"' in tag for tag in tags)  # every script of the page carries it
        assert int(page.headers["content-length"]) == len(page.content)
        nonces.add(nonce)
    assert len(nonces) == 2  # a new nonce for each response
    api = httpx.get(f"{server}/api/health")
    assert "script-src 'self' 'nonce-" in api.headers["content-security-policy"]


def test_widget_without_slash_redirects_keeping_the_query(server: str, guarded: tuple[str, str]) -> None:
    reply = httpx.get(f"{server}/widget")
    assert reply.status_code == 307 and reply.headers["location"] == "/widget/"
    _, proxied = guarded
    behind = httpx.get(f"{proxied}/widget", params={"token": TOKEN})
    assert behind.status_code == 307 and behind.headers["location"] == f"/rag/widget/?token={TOKEN}"
    followed = httpx.get(f"{proxied}/widget", params={"token": TOKEN}, follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url).endswith("/rag/widget/?token=" + TOKEN)


def test_openapi_declares_the_answer_and_the_mode(server: str) -> None:
    spec = httpx.get(f"{server}/api/openapi.json").json()
    ask = spec["paths"]["/api/ask"]["post"]
    assert ask["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/AnswerModel")
    answer = spec["components"]["schemas"]["AnswerModel"]
    assert {"question", "text", "quotes", "abstained", "conflicts", "mode"} <= set(answer["properties"])
    assert answer["examples"][0]["quotes"][0]["text"]
    request = spec["components"]["schemas"]["AskRequest"]
    assert "mode" in request["properties"] and "llm" in json.dumps(request["properties"]["mode"])
    assert "Answer" in httpx.get(f"{server}/api/docs").text or httpx.get(f"{server}/api/docs").status_code == 200
    question = _dev_questions(1)[0]
    plain = httpx.post(f"{server}/api/ask", json={"question": question}, timeout=60).json()
    chosen = httpx.post(f"{server}/api/ask", json={"question": question, "mode": "extractive"}, timeout=60).json()
    assert _without_timings(chosen) == _without_timings(plain)
    assert httpx.post(f"{server}/api/ask", json={"question": question, "mode": "poetry"}).status_code == 422
    no_model = httpx.post(f"{server}/api/ask", json={"question": question, "mode": "llm"}, timeout=60)
    assert no_model.status_code == 503 and "llm" in no_model.json()["detail"] and "Traceback" not in no_model.text


def test_too_many_requests_get_429_with_retry_after(limited: str) -> None:
    def ask(client: str, question: str = "") -> httpx.Response:
        return httpx.post(f"{limited}/api/ask", json={"question": question},
                          headers={"Authorization": f"Bearer {client}"}, timeout=60)

    replies = [ask("client-a") for _ in range(5)]  # empty questions: refused fast, counted all the same
    assert [r.status_code for r in replies] == [422, 422, 422, 429, 429]
    refused = replies[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 20 and "too many requests" in refused.json()["detail"]
    assert ask("client-b", "Who is the leader of North Korea?").status_code == 200  # another client is not held back
    assert httpx.get(f"{limited}/api/health").status_code == 200  # pages and health are never counted
    assert httpx.get(f"{limited}/").status_code == 200


def test_a_body_over_the_limit_gets_413(limited: str) -> None:
    headers = {"Authorization": "Bearer client-c"}
    big = {"question": "Who?", "history": ["x" * 1000] * 3}
    announced = httpx.post(f"{limited}/api/ask", json=big, headers=headers)
    assert announced.status_code == 413 and "2048 bytes" in announced.json()["detail"]

    def chunks():  # no Content-Length: the body is counted as it streams in
        yield b'{"question": "Who?", "history": ["'
        for _ in range(10):
            yield b"x" * 500
        yield b'"]}'

    streamed = httpx.post(f"{limited}/api/ask", content=chunks(), headers={**headers, "content-type": "application/json"})
    assert streamed.status_code == 413 and "Traceback" not in streamed.text


# ---------------------------------------------------------------- the pages, in a real browser

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Any:
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ["RAG_SCREENSHOTS"]) if os.environ.get("RAG_SCREENSHOTS") else tmp_path_factory.mktemp("shots")
    folder = folder if folder.is_absolute() else ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _ask_in_page(page: Any, question: str, turns: int) -> None:
    """Type a question, press Ask, wait until the chat holds `turns` finished answers."""
    page.fill("#question textarea", question)
    page.click("#ask")
    page.wait_for_function(
        "n => document.querySelectorAll('#chatbot .answer:not(.pending):not(.streaming)').length >= n", arg=turns, timeout=60_000)


def _last_answer(page: Any) -> str:
    return page.locator("#chatbot .answer:not(.pending):not(.streaming)").last.inner_text()


def _send(page: Any, question: str) -> None:
    """Type and send a question the way a person does: the box empties as it is sent, then the next is typed."""
    page.fill("#question textarea", question)
    page.click("#ask")
    page.wait_for_function("() => document.querySelector('#question textarea').value === ''", timeout=30_000)


def _finished(page: Any, count: int, timeout: int = 120_000) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#chatbot .answer:not(.pending):not(.streaming)').length >= n", arg=count, timeout=timeout)


def _watch_policy(page: Any) -> list[str]:
    """Everything the browser reports as refused by the Content-Security-Policy on this page."""
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: refused.append(str(e)) if "Content Security Policy" in str(e) else None)
    return refused


LIKE = "#chatbot button[aria-label='Like' i]"
DISLIKE = "#chatbot button[aria-label='Dislike' i]"


def test_chat_shows_answer_markers_highlighted_quotes_and_titles(server: str, browser: Any, shots: Path) -> None:
    question = _dev_questions(1)[0]
    api = httpx.post(f"{server}/api/ask", json={"question": question}, timeout=60).json()
    assert api["quotes"], "the dev question should be answerable"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused = _watch_policy(page)
    page.goto(f"{server}/")
    _ask_in_page(page, question, 1)
    page.wait_for_selector("#sources mark")
    shown = _last_answer(page)
    assert api["text"].split(" [")[0] in shown and "[1]" in shown
    assert api["mode"] in shown
    sources = page.inner_text("#sources")
    for quote in api["quotes"]:
        assert quote["title"] in sources
    marks = page.locator("#sources mark").all_inner_texts()
    assert [" ".join(m.split()) for m in marks] == [" ".join(q["text"].split()) for q in api["quotes"]]
    page.click("#articles")  # open the article list for the screenshot
    page.screenshot(path=str(shots / "chat.png"), full_page=True)

    # clicking a source opens the whole article with the quote highlighted
    with page.context.expect_page() as opened:
        page.locator("#sources a.source-title").first.click()
    article = opened.value
    article.wait_for_load_state()
    assert " ".join(article.inner_text("mark#quote").split()) == " ".join(api["quotes"][0]["text"].split())
    article.close()

    # a follow-up uses the earlier turn; start over forgets it
    follow = "Where is it?"
    expected = httpx.post(f"{server}/api/ask", json={"question": follow, "history": [question]}, timeout=60).json()
    _ask_in_page(page, follow, 2)
    assert expected["text"].split(" [")[0] in _last_answer(page)
    before = (page.locator("#chatbot .answer").all_inner_texts(), page.locator("#sources mark").all_inner_texts())

    # a reload keeps the conversation and the latest sources (in this browser's storage), and follow-ups go on
    page.reload()
    _finished(page, 2, 30_000)
    page.wait_for_selector("#sources mark")
    assert (page.locator("#chatbot .answer").all_inner_texts(), page.locator("#sources mark").all_inner_texts()) == before
    assert page.locator("#chatbot .user-turn").all_inner_texts() == [question, follow]
    other = browser.new_context().new_page()  # another browser (profile) sees nothing of it
    other.goto(f"{server}/")
    other.wait_for_selector("#question textarea")
    page.wait_for_timeout(1000)
    assert other.locator("#chatbot .answer").count() == 0
    other.context.close()

    page.click("#start-over")
    page.wait_for_function("() => document.querySelectorAll('#chatbot .answer').length === 0", timeout=30_000)
    assert "appear here" in page.inner_text("#sources")
    page.reload()  # start over also cleared the stored copy
    page.wait_for_selector("#question textarea")
    page.wait_for_timeout(1500)
    assert page.locator("#chatbot .answer").count() == 0
    assert refused == []  # Gradio ran under the policy: nothing was refused
    page.close()


def test_chat_answers_three_quick_questions_in_order(server: str, browser: Any, shots: Path) -> None:
    questions = _dev_questions(3)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused = _watch_policy(page)
    page.goto(f"{server}/")
    for question in questions:  # each sent while the previous answer may still be computed
        _send(page, question)
    _finished(page, 3)
    assert page.locator("#chatbot .user-turn").all_inner_texts() == questions
    shown = page.locator("#chatbot .answer").all_inner_texts()
    assert len(shown) == 3
    for n, (question, text) in enumerate(zip(questions, shown, strict=True)):
        expected = httpx.post(f"{server}/api/ask", json={"question": question, "history": questions[:n]}, timeout=60).json()
        assert expected["text"].split(" [")[0] in text
    page.screenshot(path=str(shots / "chat-three-in-order.png"), full_page=True)
    assert refused == []
    page.close()


def test_chat_feedback_round_trip_into_rag_eval(server: str, browser: Any, corpus: Path, shots: Path) -> None:
    feedback = corpus / "feedback.jsonl"
    feedback.unlink(missing_ok=True)
    liked, disliked = _dev_questions(2)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/")
    _send(page, liked)
    _send(page, disliked)
    _finished(page, 2)
    answers = page.locator("#chatbot .answer").all_inner_texts()
    page.locator(LIKE).nth(0).click()
    page.wait_for_function("() => document.querySelector('#feedback-status').innerText.includes('kept as a test question')")
    page.locator(DISLIKE).nth(1).click()
    page.wait_for_selector("#correction textarea", state="visible")
    correction = 'Kim <img src=x onerror="window.__xss = 3"> "quoted"'
    page.fill("#correction textarea", correction)
    page.click("#send-correction")
    page.wait_for_function("() => document.querySelector('#feedback-status').innerText.includes('right answer is kept')")
    page.screenshot(path=str(shots / "chat-feedback.png"), full_page=True)
    assert page.evaluate("() => window.__xss") is None and "onerror" not in page.inner_html("#chatbot")
    page.close()

    lines = [json.loads(line) for line in feedback.read_text().splitlines()]
    assert [(r["question"], r["verdict"]) for r in lines] == [(liked, "up"), (disliked, "down")]
    assert lines[0]["answers"] and lines[0]["answers"][0].split()[0] in answers[0]
    assert lines[1]["answers"] == [correction] and lines[1]["history"] == [liked]
    report = corpus / "feedback-report.json"
    replay = subprocess.run(
        [PYTHON, "-m", "rag.cli", "eval", str(feedback), "--json", str(report),
         "--articles", str(corpus / "articles"), "--index", str(corpus / "index")],
        capture_output=True, text=True, env=clean_env(), cwd=corpus, timeout=600,
    )
    assert replay.returncode == 0, replay.stderr[-2000:]
    replayed = {q["question"]: q for q in json.loads(report.read_text())["questions"]}
    assert replayed[liked]["metrics"]["correct"] is True  # the confirmed answer is what the assistant still says
    assert replayed[disliked]["history"] == [liked]  # replayed the way the chat asked it
    assert replayed[disliked]["gold"]["answers"] == [correction]



def test_bad_questions_get_a_clear_message_in_the_chat(server: str, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{server}/")
    _ask_in_page(page, "", 1)
    assert "the question is empty" in _last_answer(page)
    _ask_in_page(page, "why " * 600, 2)
    assert "too long" in _last_answer(page)
    assert "Traceback" not in page.content()
    page.close()


def test_article_markup_shows_as_text(server: str, browser: Any, shots: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/")
    page.click("#articles")
    _ask_in_page(page, XSS_QUESTION, 1)
    page.wait_for_selector("#sources .source")
    text = page.inner_text("body")
    assert "<script>window.__xss = 1</script>" in text or '<img src=x onerror="window.__xss = 2">' in text
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#sources img, #chatbot img[src='x'], #articles script").count() == 0
    page.screenshot(path=str(shots / "chat-xss.png"), full_page=True)
    page.close()


def test_widget_fits_360px_without_header(server: str, browser: Any, shots: Path) -> None:
    question = _dev_questions(2)[1]
    api = httpx.post(f"{server}/api/ask", json={"question": question}, timeout=60).json()
    page = browser.new_page(viewport={"width": 360, "height": 720})
    page.goto(f"{server}/widget/")
    assert "Ask the news articles" not in page.inner_text("body")
    _ask_in_page(page, question, 1)
    page.wait_for_selector("#sources .source")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    sources = page.inner_text("#sources")
    for quote in api["quotes"] or api["related"]:
        assert quote["title"] in sources
    assert page.locator("#sources mark").count() == len(api["quotes"] or api["related"])
    assert page.locator(LIKE).count() == 1 and page.locator(DISLIKE).count() == 1  # feedback in the widget too
    page.screenshot(path=str(shots / "widget.png"), full_page=True)
    page.close()


def test_widget_in_an_iframe_behind_a_proxy_with_a_token(guarded: tuple[str, str], browser: Any, shots: Path) -> None:
    _, proxied = guarded
    page = browser.new_page(viewport={"width": 420, "height": 800})
    refused = page.goto(f"{proxied}/widget/")
    assert refused.status == 401 and "401" in page.inner_text("body")
    # the wiki page is served by the app's own origin here ('self' may always frame it)
    page.goto(f"{proxied}/api/health")
    # the address a wiki admin types, without the trailing slash: redirected under the proxy's sub-path
    page.set_content(f'<h3>Wiki page</h3><iframe id="w" src="{proxied}/widget?token={TOKEN}" width="360" height="700"></iframe>')
    frame = page.frame_locator("#w")
    frame.locator("#question textarea").fill(XSS_QUESTION)
    frame.locator("#ask").click()
    frame.locator("#sources .source").first.wait_for(timeout=60_000)
    assert frame.locator("#sources mark").count() >= 1
    href = frame.locator("#sources a.source-title").first.get_attribute("href")
    assert href.startswith("/rag/article/")
    page.screenshot(path=str(shots / "widget-iframe.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def llm_served(corpus: Path, server: str) -> Any:
    """`rag serve` in llm mode against the stand-in model server of tests/llm_support.py (no real model server
    can be installed here), model "gated": it streams its first sentence and a word of the next, then waits for
    the test to open `gate`, so the page's intermediate state is observed without relying on timing."""
    with model_server() as stand_in:
        env = {"RAG_ANSWER_MODE": "llm", "RAG_LLM_BASE_URL": url_of(stand_in), "RAG_LLM_MODEL": "gated", "RAG_LLM_TIMEOUT": "90"}
        with rag_server(corpus / "articles", corpus / "index", corpus, "llm", **env) as url:
            yield url, stand_in


def test_chat_shows_a_language_model_answer_sentence_by_sentence(llm_served: tuple[str, Any], browser: Any, shots: Path) -> None:
    """The extractive answer at once, then the model's checked sentences replacing it, the final label; a second
    question waits visibly while the model is busy; meanwhile extractive answers for others are not held up."""
    url, stand_in = llm_served
    question, second = _dev_questions(2)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused = _watch_policy(page)
    page.goto(f"{url}/")
    _send(page, question)
    try:
        page.wait_for_selector("#chatbot .answer.streaming.drafted", timeout=60_000)  # the model's first sentence
        draft = page.locator("#chatbot .answer.streaming").last.inner_text()
        page.wait_for_selector("#sources mark", timeout=30_000)
        draft_marks = page.locator("#sources mark").count()
        assert page.locator("#chatbot .answer:not(.pending):not(.streaming)").count() == 0
        _send(page, second)  # sent while the model is still writing: it waits, and says so
        page.wait_for_selector("#chatbot .answer.queued", timeout=30_000)
        waiting = page.locator("#chatbot .answer.queued").inner_text()
        page.screenshot(path=str(shots / "chat-streaming.png"), full_page=True)
        started = time.monotonic()  # another user's extractive answer while this model is busy
        other = httpx.post(f"{url}/api/ask", json={"question": second, "mode": "extractive"}, timeout=60)
        other_s = time.monotonic() - started
        assert other.status_code == 200 and other.json()["mode"] == "extractive" and not stand_in.gate.is_set()
    finally:
        stand_in.gate.set()  # let the model finish
    print(f"extractive answer while the model was busy: {other_s:.2f} s")
    assert "[1]" in draft and "writing" in draft and "Another says" not in draft
    assert draft_marks >= 1  # the sources of the verified sentence(s) so far
    assert "Waiting" in waiting
    _finished(page, 2)
    final = page.locator("#chatbot .answer").all_inner_texts()[0]
    api = httpx.post(f"{url}/api/ask", json={"question": question}, timeout=120).json()
    assert api["mode"] == "llm" and api["text"].split(" [")[0] in final and "writing" not in final
    assert "written by the language model" in final  # the label says whose answer this is
    assert draft.split(" [")[0] in final  # the sentence shown early is the start of the final answer
    assert page.locator("#chatbot .user-turn").all_inner_texts() == [question, second]
    assert refused == []
    page.screenshot(path=str(shots / "chat-llm-final.png"), full_page=True)
    page.close()
