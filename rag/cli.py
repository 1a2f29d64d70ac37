"""The `rag` command: one click group, one command per user verb. Errors become one-line messages here."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rag.config import Settings, load_settings
from rag.errors import QuestionError, RagError, SettingsError
from rag.types import Answer, Turn


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


PLUGIN_GROUP = "rag.commands"  # entry points that add commands: app/ registers `rag serve` here, as llm's plugins do


class _Group(click.Group):
    """Turns library errors into one clean line and an exit code; a bug still says how to see its traceback.

    Commands of other packages (entry points in PLUGIN_GROUP) are loaded only when named or listed, so
    `rag ask` never imports the web app."""

    def _plugins(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self._plugins():
            try:
                command = self._plugins()[cmd_name].load()
            except ImportError as exc:
                _fail(f"the command {cmd_name!r} needs extra packages ({exc.name}); install with: pip install -e '.[app]'", 1)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (QuestionError, SettingsError) as exc:
            _fail(str(exc), 2)
        except RagError as exc:
            _fail(str(exc), 1)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: say so plainly, traceback only on request
            if os.environ.get("RAG_DEBUG"):
                traceback.print_exc()
            _fail(f"internal error ({type(exc).__name__}: {exc}); set RAG_DEBUG=1 to see the traceback", 1)


def settings_for(ctx: click.Context, **overrides: Any) -> Settings:
    base: Settings = ctx.obj
    return base.replace(**overrides)  # replace() ignores the options left unset (None)


def _progress_bar() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    from tqdm import tqdm

    bar: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bar:
            if total == 0:
                return
            click.echo("Embedding new or changed articles…", err=True)
            bar.append(tqdm(total=total, unit="sent", file=sys.stderr, dynamic_ncols=True, mininterval=0.5))
        bar[0].n = done
        bar[0].refresh()

    def close() -> None:
        if bar:
            bar[0].close()

    return update, close


def open_assistant(settings: Settings):  # -> Assistant
    from rag.pipeline import Assistant

    def building(reason: str) -> None:
        where = settings.index_dir if settings.index_backend == "local" else "the database"
        click.echo(f"Building the index in {where} ({reason})…", err=True)

    update, close = _progress_bar()
    try:
        return Assistant.from_settings(settings, progress=update, on_build=building)
    finally:
        close()


articles_option = click.option("--articles", "articles_dir", type=click.Path(path_type=Path), help="Articles folder or file.")
index_option = click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder.")
mode_option = click.option(
    "--mode", type=click.Choice(["auto", "extractive", "llm"]),
    help="Answer by quoting (extractive), with a language model (llm), or auto (default: llm when a model is installed or configured)."
)


@click.group(cls=_Group)
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="Settings file (default: ./rag.toml).")
@click.version_option(package_name="newsrag")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """Answers questions about a collection of news articles with verbatim, cited quotes."""
    try:
        ctx.obj = load_settings(config_file)
    except RagError as exc:
        _fail(str(exc), 2)


@main.group()
def index() -> None:
    """Build and inspect the index."""


@index.command("build")
@articles_option
@index_option
@click.option("--rebuild", is_flag=True, help="Re-embed everything instead of only new or changed articles.")
@click.option("--ray", "ray_address", metavar="auto|HOST:PORT", help="Embed on this Ray cluster (the ray extra).")
@click.pass_context
def index_build(ctx: click.Context, articles_dir: Path | None, index_dir: Path | None, rebuild: bool,
                ray_address: str | None) -> None:
    """Build index/ from the articles; a re-run embeds only new or changed articles."""
    from rag.index.factory import build_search_index

    settings = settings_for(ctx, articles_dir=articles_dir, index_dir=index_dir)
    encoder = None
    if ray_address is not None:
        from rag.index.ray_embed import RayEncoder

        encoder = RayEncoder(ray_address, settings.embed_model, settings.embed_batch_size)
    update, close = _progress_bar()
    try:
        report = build_search_index(settings, encoder, progress=update, rebuild=rebuild)
    finally:
        close()
        if encoder is not None:
            encoder.close()
    for skipped in report.skipped:
        click.echo(f"warning: skipped {skipped.path}: {skipped.reason}", err=True)
    if report.unchanged:
        click.echo(f"Index in {report.path} is up to date: {report.articles} articles, {report.chunks} chunks.")
        return
    click.echo(
        f"Indexed {report.articles} articles ({report.chunks} chunks, {report.sentences} sentences) in "
        f"{report.seconds:.1f} s: embedded {report.embedded} sentences, reused {report.reused}; "
        f"{len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed, "
        f"{len(report.skipped)} skipped."
    )


@index.command("info")
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON.")
@click.pass_context
def index_info(ctx: click.Context, index_dir: Path | None, as_json: bool) -> None:
    """Articles, chunks, model, size and build time of the index."""
    from rag.index.factory import describe_search_index

    described = describe_search_index(settings_for(ctx, index_dir=index_dir))
    manifest, size = described["manifest"], described["size_bytes"]
    info = {
        "path": described["path"],
        "articles_dir": manifest.get("articles_dir"),
        **manifest.get("counts", {}),
        "model": manifest.get("model"),
        "dimension": manifest.get("dimension"),
        "chunking": manifest.get("chunking"),
        "format_version": manifest.get("format_version"),
        "backend": manifest.get("backend"),
        "built_at": manifest.get("built_at"),
        "size_bytes": size,
        "skipped": manifest.get("skipped", []),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    click.echo(f"Index:       {info['path']}")
    click.echo(f"Built from:  {info['articles_dir']}")
    click.echo(f"Articles:    {info.get('articles')}   chunks: {info.get('chunks')}   sentences: {info.get('sentences')}")
    click.echo(f"Model:       {info['model']} ({info['dimension']} dimensions)")
    click.echo(f"Chunking:    {info['chunking']}")
    click.echo(f"Size:        {size / 1024:.0f} KiB")
    click.echo(f"Built at:    {info['built_at']}")
    for skipped in info["skipped"]:
        click.echo(f"Skipped:     {skipped['path']}: {skipped['reason']}")


def render_text(answer: Answer, width: int = 100) -> str:
    """The answer for a terminal: short answer, then each quote with its article and offsets."""
    lines = [answer.text, ""]
    if answer.mode == "llm":
        lines.insert(0, "(written by a language model; every citation and quote checked against the articles)")
    if answer.resolved_question and answer.resolved_question != answer.question:
        lines.insert(0, f"(read with the earlier question: {answer.resolved_question})")
    if answer.conflicts:
        lines.append("Note: the articles disagree on this; each claim is quoted below.")
        lines.append("")
    for quote in answer.quotes:
        lines.append(f"[{quote.n}] {quote.title}  ({quote.article_id}, characters {quote.start}–{quote.end})")
        lines.extend(textwrap.wrap(f"“{quote.text}”", width, initial_indent="    ", subsequent_indent="    "))
    if answer.related:
        lines.append("Related reading (not an answer):")
        for quote in answer.related:
            lines.append(f"  - {quote.title}  ({quote.article_id}, characters {quote.start}–{quote.end})")
            lines.extend(textwrap.wrap(f"“{quote.text}”", width, initial_indent="      ", subsequent_indent="      "))
    for note in answer.notes:
        lines.append(f"Note: {note}")
    return "\n".join(lines).rstrip()


@main.command()
@click.argument("question")
@click.option("--history", multiple=True, help="An earlier question of the same chat (repeat, oldest first).")
@click.option("--json", "as_json", is_flag=True, help="Print the full Answer as JSON.")
@click.option("--top-k", type=int, help="How many passages to retrieve.")
@mode_option
@articles_option
@index_option
@click.pass_context
def ask(ctx: click.Context, question: str, history: tuple[str, ...], as_json: bool, top_k: int | None,
        mode: str | None, articles_dir: Path | None, index_dir: Path | None) -> None:
    """Answer one QUESTION with cited, verbatim quotes."""
    from rag.answer.question import clean_question

    settings = settings_for(ctx, articles_dir=articles_dir, index_dir=index_dir, top_k=top_k, answer_mode=mode)
    clean_question(question, settings.max_question_chars)  # reject bad input before loading anything
    assistant = open_assistant(settings)
    answer = assistant.ask(question, history)
    if as_json:
        click.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(answer))


@main.command()
@mode_option
@articles_option
@index_option
@click.pass_context
def chat(ctx: click.Context, mode: str | None, articles_dir: Path | None, index_dir: Path | None) -> None:
    """A terminal chat; follow-up questions use the earlier turns. /reset starts over, /quit leaves."""
    settings = settings_for(ctx, articles_dir=articles_dir, index_dir=index_dir, answer_mode=mode)
    assistant = open_assistant(settings)
    click.echo(f"Ask about the {assistant.index.num_articles} articles in {settings.articles_dir}. /reset starts over, /quit leaves.")
    history: list[Turn] = []  # the earlier turns with their answers: a follow-up resolves against the answered one
    while True:
        try:
            question = input("\nyou> ")
        except (EOFError, KeyboardInterrupt):
            click.echo("")
            return
        if question.strip() in ("/quit", "/exit"):
            return
        if question.strip() == "/reset":
            history.clear()
            click.echo("Started over.")
            continue
        if not question.strip():
            continue
        try:
            answer = assistant.ask(question, history)
        except QuestionError as exc:
            click.echo(f"error: {exc}", err=True)
            continue
        click.echo(render_text(answer))
        history.append(Turn(question, answer.text, answer.abstained, answer.resolved_question))


# ---------------------------------------------------------------- rag eval


def _threshold_options(func: Callable[..., Any]) -> Callable[..., Any]:
    from rag.eval.run import THRESHOLDS

    for name, keys in reversed(THRESHOLDS.items()):
        func = click.option(f"--min-{name.replace('_', '-')}", f"min_{name}", type=click.FloatRange(0, 1),
                            help=f"Exit with status 1 when {' or '.join(keys)} is below this (0-1).")(func)
    return func


def _reader_config(pairs: tuple[str, ...]):  # -> ReaderConfig
    """ReaderConfig with NAME=VALUE overrides (numbers parsed); a bad name or value is an EvalError."""
    import dataclasses

    from rag.answer.config import ReaderConfig
    from rag.errors import EvalError

    changes: dict[str, Any] = {}
    types = {f.name: f.type for f in dataclasses.fields(ReaderConfig)}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or name not in types or name == "pos_weights":
            raise EvalError(f"--reader-set expects NAME=VALUE with NAME one of {', '.join(n for n in types if n != 'pos_weights')}; got {pair!r}")
        try:
            changes[name] = value.strip() if types[name] == "str" else (int(value) if types[name] == "int" else float(value))
        except ValueError:
            raise EvalError(f"--reader-set {name}: {value!r} is not a number") from None
    try:
        return ReaderConfig(**changes)
    except ValueError as exc:
        raise EvalError(f"--reader-set: {exc}") from None


@main.command("eval")
@click.argument("questions_file", required=False, type=click.Path(path_type=Path))
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the full report as JSON here.")
@click.option("--markdown", "markdown_out", type=click.Path(path_type=Path), help="Write a markdown report here.")
@click.option("--compare", nargs=2, type=click.Path(path_type=Path), metavar="A.json B.json",
              help="Show what changed between two saved JSON reports, question by question (runs nothing).")
@click.option("--top-k", type=int, help="How many passages to retrieve (MultiHop-RAG files default to at least 10).")
@click.option("--reader-set", "reader_set", multiple=True, metavar="NAME=VALUE",
              help="Override one rule-reader threshold (rag.answer.config.ReaderConfig) for this run; repeatable. "
                   "E.g. --reader-set followup_gate=rules --reader-set min_support=0.9.")
@click.option("--as-chat", "as_chat", is_flag=True,
              help="Also ask the set as a chat (each question after the earlier ones of its 'conversation', all of the "
                   "set when no line names one) and report both side by side.")
@articles_option
@index_option
@_threshold_options
@click.pass_context
def eval_command(ctx: click.Context, questions_file: Path | None, json_out: Path | None, markdown_out: Path | None,
                 compare: tuple[Path, Path] | None, top_k: int | None, reader_set: tuple[str, ...], as_chat: bool,
                 articles_dir: Path | None,
                 index_dir: Path | None, **minimums: float | None) -> None:
    """Run a question set (JSONL, or MultiHop-RAG JSON) through the assistant and report quality and speed."""
    from tqdm import tqdm

    from rag.errors import EvalError
    from rag.eval.report import compare_reports, render_comparison, render_markdown, render_table
    from rag.eval.run import MULTIHOP, check_thresholds, evaluate, load_questions, load_report

    try:
        if compare:
            click.echo(render_comparison(compare_reports(load_report(compare[0]), load_report(compare[1]))))
            return
        if questions_file is None:
            raise EvalError("give a question file (or --compare A.json B.json)")
        qset = load_questions(questions_file)
        reader_config = _reader_config(reader_set)
    except EvalError as exc:
        _fail(str(exc), 2)
    settings = settings_for(ctx, articles_dir=articles_dir, index_dir=index_dir, top_k=top_k)
    notes = []
    if qset.format == MULTIHOP and top_k is None and settings.top_k < 10:
        settings = settings.replace(top_k=10)
        notes.append("top_k raised to 10 for this MultiHop-RAG run so Hits@10 and MRR@10 see ten passages")
        click.echo(f"note: {notes[-1]} (pass --top-k to choose)", err=True)
    assistant = open_assistant(settings)
    if reader_set:  # the eval command composes the rule reader itself when a threshold is overridden
        from rag.answer.extractive import RuleReader

        rules = RuleReader(assistant.index.doc_freq, assistant.index.num_chunks, settings.max_quotes, reader_config)
        if settings.reader == "learned":
            from rag.answer.learned import LearnedReader

            assistant.reader = LearnedReader(rules, encoder=assistant.encoder)
        else:
            assistant.reader = rules
    bar = tqdm(total=len(qset.questions), unit="q", file=sys.stderr, dynamic_ncols=True, desc="Evaluating")
    try:
        if as_chat:
            bar.total = 2 * len(qset.questions)
        report = evaluate(assistant, qset, progress=lambda done, total: bar.update(done - bar.n), notes=notes,
                          chat=as_chat)
    finally:
        bar.close()
    data = report.to_dict()
    for path, text in ((json_out, lambda: json.dumps(data, indent=2, ensure_ascii=False)),
                       (markdown_out, lambda: render_markdown(data))):
        if path is not None:
            try:
                path.write_text(text() + ("\n" if path == json_out else ""), encoding="utf-8")
            except OSError as exc:
                _fail(f"cannot write {path}: {exc.strerror or exc}", 2)
    click.echo(render_table(data))
    invalid = report.invalid_quotes()
    if invalid:
        click.secho(f"BUG: {len(invalid)} quote(s) or marker(s) are not verbatim / point nowhere: {', '.join(invalid)}",
                    fg="red", bold=True, err=True)
    wanted = {k.removeprefix("min_"): v for k, v in minimums.items() if v is not None}
    missed = check_thresholds(report.overall, wanted)
    if report.chat is not None:  # the chat face must hold the same minimums
        missed += [f"as chat: {m}" for m in check_thresholds(report.chat.overall, wanted)]
    if missed:
        _fail("threshold missed: " + "; ".join(missed), 1)

if __name__ == "__main__":
    main()
