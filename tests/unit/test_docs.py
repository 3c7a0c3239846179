"""The docs stay true: their commands run, their paths exist, their links resolve, and the
Russian translations stay in step with the English pages.

Docs checked: ``README.md`` and every ``*.md`` under ``docs/`` (recursively). Only the files on
disk are read; the only subprocesses are ``make -n`` and read-only ``git`` queries (no network).
Every check is one parametrized case per doc item, so a failure names the doc, the line and the
item.

Rules
-----

``test_make_command`` -- commands run.
    Taken: every line of a fenced code block with no language or with ``sh``, ``bash``,
    ``shell`` or ``console`` (a leading ``$ `` prompt is dropped) that starts with ``make ``,
    and every inline code span that is a whole ``make ...`` command (the README's tables).
    The line is split as the shell would (``shlex``, a trailing ``# comment`` dropped), each
    ``<placeholder>`` is replaced from ``PLACEHOLDER_VALUES`` (``<name>`` -> ``smtp2go``; a
    placeholder without a value fails the case), and ``make -n <the same arguments>`` runs from
    the repository root (``MAKEFLAGS``/``MAKELEVEL`` cleared, 30 s timeout) and must exit 0: a
    removed target fails. Every goal on the line must also be a real rule, i.e. have a recipe or
    prerequisites in make's database (``make -pnq``): a goal that only survives as a name
    (``.PHONY``, a target-specific variable such as ``docs-check: export ...``) makes ``make -n``
    say "Nothing to be done" and exit 0, so this is what catches a renamed target. Each
    ``VAR=value`` argument's value must also appear in the dry run's output: make accepts any
    variable on its command line, so this is what catches a renamed variable (e.g.
    ``PYTEST_ARGS``) that no recipe reads any more.

``test_repo_path`` -- paths exist.
    Taken: every whitespace-separated word of every inline code span outside fenced blocks
    (surrounding quotes/brackets stripped) whose first path segment is a top-level entry of the
    repository, i.e. of ``git ls-files --cached --others --exclude-standard`` (tracked files and
    new files that are not ignored). So ``roles/...``, ``plugins/...``, ``tests/...``,
    ``docs/...``, ``README.md`` are checked; absolute paths, ``~/...``, URLs, module names and
    generated trees that git ignores as a whole (``.venv/``, ``build/``) are not repository
    paths and are not taken.
    Skipped: a path git ignores (``git check-ignore``), e.g. ``tests/output/``: a build output,
    documented but not part of the repository.
    Must exist: the file or directory, relative to the repository root.
    Role-relative: a path whose first segment is ``meta`` (a folder both of the collection and of
    every role, ``ROLE_LAYOUT_DIRS``), as in "a role's ``meta/argument_specs.yml``", must exist
    either at the top level (``meta/runtime.yml``) or in at least one role (``roles/*/meta/...``).
    Templates: ``<name>`` is the provider's name and ``smtp2go`` is the docs' worked example, so
    ``<name>`` is replaced by ``smtp2go`` and that instance must exist. Any other placeholder
    (``<object>``, ...) and ``*`` stand for any text inside one path segment: at least one
    existing file must match (``plugins/modules/smtp2go_<object>.py`` ->
    ``plugins/modules/smtp2go_*.py``). One exception, for files no example can keep: a template
    under ``changelogs/fragments/`` only needs that directory, because antsibull-changelog
    removes fragments at release.
    Absence claims: a path written right after "there is no" / "no" is one the doc says does
    not exist (README: "there is no ``tests/sanity/ignore-2.19.txt``"); the case checks that it
    does not.
    Known doc errors: ``KNOWN_DOC_ERRORS`` maps a path as written to why it is wrong; those cases
    are strict xfails, so they stay visible in the output and, once the doc is fixed, XPASS
    fails the run until the entry is removed.

``test_link`` -- links resolve.
    Every markdown link and image (inline or reference-style) outside code whose target is not
    a URL (``scheme:``) resolves, relative to the doc's folder, to an existing file or
    directory; a ``#fragment`` pointing into a markdown file (or the same doc) must name one of
    its headings (GitHub's heading ids).

``test_translation`` -- English and Russian pages in step.
    Every ``docs/<path>.md`` outside ``docs/ru/`` has ``docs/ru/<path>.md`` and vice versa,
    and the two have: the same sequence of heading levels; the same fenced code blocks
    (language and text identical, so commands are identical); the same tables (rows x columns,
    in order); the same set of inline code spans (identifiers, paths and commands are not
    translated); the same link targets apart from the link of each page to the other, which both
    must have.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS_DIR = REPO / "docs"
RU = "ru"

# Values for the placeholders of commands and paths. smtp2go is the docs' worked example.
PLACEHOLDER_VALUES = {"name": "smtp2go"}

SHELL_LANGUAGES = {"", "sh", "bash", "shell", "console"}
MAKE_TIMEOUT = 30

# Path as written in the doc -> why it is wrong. Strict xfail: fixing the doc makes the case
# XPASS, which fails, so the entry has to go at the same time.
KNOWN_DOC_ERRORS = {}

# First path segments that are both a top-level folder of the collection and a folder of
# Ansible's role layout: `meta/argument_specs.yml` in "a role's `meta/argument_specs.yml`" is
# role-relative. Such a path must exist at the top level or in at least one role (roles/*/).
ROLE_LAYOUT_DIRS = {"meta"}

PLACEHOLDER_RE = re.compile(r"<([A-Za-z_][A-Za-z0-9_-]*)>")
FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)")
HEADING_RE = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN_RE = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.DOTALL)  # not across paragraphs
INLINE_LINK_RE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK_RE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
ABSENCE_RE = re.compile(r"(?:\bthere (?:is|are) no|\bno|\bнет)\s+$", re.IGNORECASE)


# ---------------------------------------------------------------------------- parsing


@dataclass
class Doc:
    path: Path
    rel: str
    # (language, first line number of the content, content lines)
    blocks: list = field(default_factory=list)
    # the text with every fenced block's lines blanked (line numbers kept)
    prose: str = ""
    # (level, text, line)
    headings: list = field(default_factory=list)
    # (rows, columns) per table
    tables: list = field(default_factory=list)
    # (text, line, text before it on its paragraph)
    spans: list = field(default_factory=list)
    # (target, line)
    links: list = field(default_factory=list)


def _line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def parse(path):
    text = path.read_text(encoding="utf-8")
    doc = Doc(path=path, rel=path.relative_to(REPO).as_posix())
    prose_lines = []
    fence = None  # (char, length, language, start line, lines)
    for number, line in enumerate(text.split("\n"), start=1):
        match = FENCE_RE.match(line)
        if fence is None:
            if match:
                marker, language = match.groups()
                fence = (marker[0], len(marker), language.lower(), number + 1, [])
                prose_lines.append("")
            else:
                prose_lines.append(line)
            continue
        prose_lines.append("")
        stripped = line.strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= fence[1]:
            doc.blocks.append((fence[2], fence[3], fence[4]))
            fence = None
        else:
            fence[4].append(line)
    assert fence is None, f"{doc.rel}: the code block opened on line {fence[3] - 1} is never closed"
    doc.prose = "\n".join(prose_lines)

    table_rows = table_columns = 0
    for number, line in enumerate(prose_lines + [""], start=1):
        heading = HEADING_RE.match(line)
        if heading:
            doc.headings.append((len(heading.group(1)), heading.group(2), number))
        if line.lstrip().startswith("|"):
            if not table_rows:
                cells = CODE_SPAN_RE.sub("x", line).strip().strip("|").split("|")
                table_columns = len(cells)
            table_rows += 1
        elif table_rows:
            doc.tables.append((table_rows, table_columns))
            table_rows = 0

    for match in CODE_SPAN_RE.finditer(doc.prose):
        blank = doc.prose.rfind("\n\n", 0, match.start())
        paragraph_start = blank + 2 if blank >= 0 else 0
        before = doc.prose[max(paragraph_start, doc.prose.rfind("|", 0, match.start()) + 1) : match.start()]
        doc.spans.append((" ".join(match.group(2).split()), _line_of(doc.prose, match.start()), before))

    no_code = CODE_SPAN_RE.sub(lambda m: " " * len(m.group(0)), doc.prose)
    for regex in (INLINE_LINK_RE, REF_LINK_RE):
        for match in regex.finditer(no_code):
            doc.links.append((match.group(1), _line_of(no_code, match.start())))
    return doc


def github_anchors(doc):
    """Heading ids as GitHub makes them (lower case, punctuation dropped, spaces -> '-')."""
    anchors, seen = set(), {}
    for _level, text, _line in doc.headings:
        text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", text)
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if not count else f"{slug}-{count}")
    return anchors


def doc_paths():
    paths = [REPO / "README.md"] + sorted(DOCS_DIR.rglob("*.md"))
    return [path for path in paths if path.is_file()]


@functools.lru_cache(maxsize=None)
def parsed(path):
    return parse(path)


DOCS = [parsed(path) for path in doc_paths()]


# ---------------------------------------------------------------------------- the repository


def _git(*args, stdin=None):
    return subprocess.run(
        ["git", *args], cwd=REPO, input=stdin, capture_output=True, text=True, timeout=30, check=False
    )


@functools.lru_cache(maxsize=None)
def top_level_entries():
    listing = _git("ls-files", "--cached", "--others", "--exclude-standard", "-z")
    assert listing.returncode == 0, f"git ls-files failed: {listing.stderr}"
    return frozenset(name.split("/", 1)[0] for name in listing.stdout.split("\0") if name)


def git_ignored(paths):
    """The subset of ``paths`` that git ignores (a directory pattern also for a missing dir)."""
    paths = sorted(set(paths))
    if not paths:
        return set()
    queries = {}
    for path in paths:
        queries.setdefault(path, path)
        queries.setdefault(path.rstrip("/") + "/", path)
    result = _git("check-ignore", "--stdin", stdin="\n".join(queries) + "\n")
    assert result.returncode in (0, 1), f"git check-ignore failed: {result.stderr}"
    return {queries[line] for line in result.stdout.splitlines() if line in queries}


# ---------------------------------------------------------------------------- commands


def substitute(text):
    missing = sorted({m.group(1) for m in PLACEHOLDER_RE.finditer(text)} - set(PLACEHOLDER_VALUES))
    assert not missing, f"no value for the placeholder(s) {missing}: add them to PLACEHOLDER_VALUES"
    return PLACEHOLDER_RE.sub(lambda m: PLACEHOLDER_VALUES[m.group(1)], text)


def make_commands():
    for doc in DOCS:
        for language, start, lines in doc.blocks:
            if language not in SHELL_LANGUAGES:
                continue
            for offset, line in enumerate(lines):
                line = line.strip()
                if line.startswith("$ "):
                    line = line[2:].lstrip()
                if line.startswith("make "):
                    yield pytest.param(line, id=f"{doc.rel}:{start + offset}:{line}")
        for text, line, _before in doc.spans:
            if text.startswith("make "):
                yield pytest.param(text, id=f"{doc.rel}:{line}:`{text}`")


@functools.lru_cache(maxsize=None)
def make_dry_run(args):
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}}
    return subprocess.run(
        ["make", "-n", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=MAKE_TIMEOUT, check=False
    )


# make options whose argument may be the next word (it is not a goal then).
MAKE_OPTIONS_WITH_ARGUMENT = {"-C", "-f", "-I", "-j", "-l", "-o", "-W", "--file", "--makefile", "--directory"}
MAKE_RULE_RE = re.compile(r"^([^\s#][^:=]*?)::?(?!=)\s*(.*)$")


@functools.lru_cache(maxsize=None)
def make_rules():
    """Target -> whether it is a real rule (has a recipe or prerequisites), from `make -pnq`."""
    database = make_dry_run(("-p", "-q")).stdout  # -q: exit status 1 only means "not up to date"
    rules, current = {}, None
    for line in database.splitlines():
        match = MAKE_RULE_RE.match(line)
        if match and "=" not in match.group(2):
            current = match.group(1)
            rules[current] = rules.get(current, False) or bool(match.group(2).split())
        elif not line.strip():
            current = None
        elif current and line.startswith("#  recipe to execute"):
            rules[current] = True
    assert rules, f"no rules in `make -pnq` output:\n{database[:2000]}"
    return rules


def make_goals(arguments):
    goals, skip = [], False
    for word in arguments:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in MAKE_OPTIONS_WITH_ARGUMENT
        elif "=" not in word:
            goals.append(word)
    return goals


@pytest.mark.parametrize("command", list(make_commands()))
def test_make_command(command):
    words = shlex.split(substitute(command), comments=True)
    assert words[0] == "make", command
    result = make_dry_run(tuple(words[1:]))
    assert result.returncode == 0, (
        f"`make -n {shlex.join(words[1:])}` exited {result.returncode}:\n{result.stderr}{result.stdout}"
    )
    for goal in make_goals(words[1:]):
        is_rule = make_rules().get(goal, False)
        assert is_rule, f"`{command}`: `{goal}` is no rule of the Makefile (no recipe, no prerequisites)"
    for word in words[1:]:
        name, equals, value = word.partition("=")
        if equals and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and value.strip():
            assert value in result.stdout, (
                f"{name}={value!r} does not reach any recipe of `{command}` (is {name} still a "
                f"Makefile variable?); dry run:\n{result.stdout}"
            )


# ---------------------------------------------------------------------------- paths


def _path_words(span):
    for word in span.split():
        word = word.strip("\"'()[]{},;:")
        if not word or URL_RE.match(word) or word.startswith(("/", "~", "-", "$")):
            continue
        if word.split("/", 1)[0] in top_level_entries():
            yield word


def repo_paths():
    cases = []
    for doc in DOCS:
        for text, line, before in doc.spans:
            for index, word in enumerate(_path_words(text)):
                absent = index == 0 and text.split()[0].strip("\"'()[]{},;:") == word and ABSENCE_RE.search(before)
                cases.append((doc.rel, line, word, bool(absent)))
    ignored = git_ignored(PLACEHOLDER_RE.sub("x", word) for _doc, _line, word, _absent in cases)
    for rel, line, word, absent in cases:
        if PLACEHOLDER_RE.sub("x", word) in ignored:
            continue
        marks = ()
        if word in KNOWN_DOC_ERRORS:
            marks = pytest.mark.xfail(reason=f"doc error: {KNOWN_DOC_ERRORS[word]}", strict=True)
        yield pytest.param(word, absent, id=f"{rel}:{line}:{word}", marks=marks)


def resolve_template(word):
    """The glob of existing files ``word`` stands for, and whether it is a template."""
    template = bool(PLACEHOLDER_RE.search(word)) or "*" in word
    pattern = PLACEHOLDER_RE.sub(lambda m: PLACEHOLDER_VALUES.get(m.group(1), "*"), word)
    if template and fnmatch.fnmatch(word, "changelogs/fragments/*"):
        pattern = "changelogs/fragments/"
    return pattern, template


@pytest.mark.parametrize(("word", "absent"), list(repo_paths()))
def test_repo_path(word, absent):
    pattern, template = resolve_template(word)
    matches = glob.glob(pattern, root_dir=REPO) if template else ([pattern] if (REPO / pattern).exists() else [])
    if not matches and pattern.split("/", 1)[0] in ROLE_LAYOUT_DIRS:
        matches = glob.glob(f"roles/*/{pattern}", root_dir=REPO)
    if absent:
        assert not matches, f"the doc says there is no `{word}`, but the repository has {matches}"
    elif template:
        assert matches, f"`{word}`: no file matches {pattern!r} (smtp2go is the worked example of <name>)"
    else:
        assert matches, f"`{word}` does not exist in the repository"


# ---------------------------------------------------------------------------- links


def links():
    for doc in DOCS:
        for target, line in doc.links:
            if not URL_RE.match(target):
                yield pytest.param(doc, target, id=f"{doc.rel}:{line}:{target}")


def resolve_link(doc, target):
    path, _hash, _fragment = target.partition("#")
    return (doc.path.parent / path).resolve() if path else doc.path


@pytest.mark.parametrize(("doc", "target"), list(links()))
def test_link(doc, target):
    path, _hash, fragment = target.partition("#")
    resolved = resolve_link(doc, target)
    assert resolved.exists(), f"{doc.rel}: link `{target}` -> {resolved} does not exist"
    assert resolved == REPO or REPO in resolved.parents, f"{doc.rel}: link `{target}` leaves the repository"
    if fragment and resolved.suffix == ".md":
        anchors = github_anchors(parsed(resolved))
        assert fragment in anchors, f"{doc.rel}: `{target}`: no heading #{fragment} in {resolved.name}: {sorted(anchors)}"


# ---------------------------------------------------------------------------- translations


def translation_pairs():
    english = {p.relative_to(DOCS_DIR) for p in DOCS_DIR.rglob("*.md") if p.relative_to(DOCS_DIR).parts[0] != RU}
    russian = {p.relative_to(DOCS_DIR / RU) for p in (DOCS_DIR / RU).rglob("*.md")}
    for rel in sorted(english | russian):
        yield pytest.param(DOCS_DIR / rel, DOCS_DIR / RU / rel, id=rel.as_posix())


@pytest.mark.parametrize(("english_path", "russian_path"), list(translation_pairs()))
def test_translation(english_path, russian_path):
    assert english_path.is_file(), f"{russian_path.relative_to(REPO)} has no English original {english_path.relative_to(REPO)}"
    assert russian_path.is_file(), f"{english_path.relative_to(REPO)} has no Russian version {russian_path.relative_to(REPO)}"
    en, ru = parsed(english_path), parsed(russian_path)
    problems = []

    en_levels = [level for level, _text, _line in en.headings]
    ru_levels = [level for level, _text, _line in ru.headings]
    if en_levels != ru_levels:
        problems.append(f"heading levels differ: {en_levels} vs {ru_levels}")

    en_blocks = [(language, "\n".join(lines)) for language, _start, lines in en.blocks]
    ru_blocks = [(language, "\n".join(lines)) for language, _start, lines in ru.blocks]
    if en_blocks != ru_blocks:
        if len(en_blocks) != len(ru_blocks):
            problems.append(f"{len(en_blocks)} code blocks vs {len(ru_blocks)}")
        for index, (a, b) in enumerate(zip(en_blocks, ru_blocks), start=1):
            if a != b:
                problems.append(f"code block {index} differs:\n{a[0]}\n{a[1]}\n--- vs ---\n{b[0]}\n{b[1]}")

    if en.tables != ru.tables:
        problems.append(f"tables (rows, columns) differ: {en.tables} vs {ru.tables}")

    en_spans = {text for text, _line, _before in en.spans}
    ru_spans = {text for text, _line, _before in ru.spans}
    if en_spans != ru_spans:
        problems.append(
            f"inline code only in English: {sorted(en_spans - ru_spans)}; only in Russian: {sorted(ru_spans - en_spans)}"
        )

    en_targets = {resolve_link(en, target) for target, _line in en.links if not URL_RE.match(target)}
    ru_targets = {resolve_link(ru, target) for target, _line in ru.links if not URL_RE.match(target)}
    if russian_path.resolve() not in en_targets:
        problems.append(f"{en.rel} does not link to its Russian version {ru.rel}")
    if english_path.resolve() not in ru_targets:
        problems.append(f"{ru.rel} does not link back to its English original {en.rel}")
    en_targets.discard(russian_path.resolve())
    ru_targets.discard(english_path.resolve())
    # A Russian page links the Russian version of another page where the English one links the English.
    ru_root = (DOCS_DIR / RU).resolve()
    ru_targets = {DOCS_DIR.resolve() / target.relative_to(ru_root) if ru_root in target.parents else target
                  for target in ru_targets}
    if en_targets != ru_targets:
        problems.append(f"link targets differ: {sorted(map(str, en_targets ^ ru_targets))}")

    assert not problems, "\n".join(problems)
