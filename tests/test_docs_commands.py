"""Every ``molvae`` command the README and the docs show parses with molvae's own argument parser,
and every ``make`` target they name exists, so a renamed flag or verb cannot leave a page that
tells users to type something that fails. Nothing is executed: each command is only parsed, so
the whole file runs in about a second.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from molvae.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
# fences whose lines are never shell commands (program output, code in other languages)
NOT_SHELL = {"text", "txt", "output", "python", "py", "pycon", "yaml", "yml", "toml", "json", "csv"}
# fences of a terminal session: only the lines after a "$ " prompt are commands
SESSION = {"console", "shell-session"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str  # the command as a user would type it, continuations joined, comment removed

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def strip_comment(line: str) -> str:
    """``line`` without a shell comment: a ``#`` outside quotes that starts a word. A ``#``
    inside a word is kept (``N#C`` is a SMILES triple bond, not a comment); shlex's own
    ``comments=True`` would cut it there."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def molvae_args(command: str) -> list[str] | None:
    """The arguments after ``molvae`` if ``command`` runs molvae (``molvae ...``,
    ``VAR=x molvae ...``, ``... -m molvae.cli ...``), else None. Output lines such as
    ``molvae score: error: ...`` are not commands."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: prose or output, not a command
        return None
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if words[:1] == ["molvae"]:
        args = words[1:]
    elif "-m" in words and words[words.index("-m") + 1 :][:1] in (["molvae.cli"], ["molvae"]):
        args = words[words.index("-m") + 2 :]
    else:
        return None
    if args and args[0].endswith(":"):  # "molvae score: error: ..." is what molvae printed
        return None
    return args


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) for each shell line inside a fenced code block of ``text``:
    backslash continuations joined, comments removed, terminal prompts stripped."""
    out: list[tuple[int, str]] = []
    fence = lang = None
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        match = FENCE.match(raw)
        if fence is None:
            if match:
                fence, lang = match.group(1), match.group(2).lower()
            continue
        if raw.strip().startswith(fence[0] * 3) and not raw.strip().strip(fence[0]):
            fence = lang = None
            pending = None
            continue
        if lang in NOT_SHELL:
            continue
        line = raw.strip()
        if pending is None:
            if lang in SESSION:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            start = number
        else:
            start, line = pending[0], f"{pending[1]} {line}"
            pending = None
        if line.endswith("\\"):
            pending = (start, line[:-1].rstrip())
            continue
        line = strip_comment(line)
        if line:
            out.append((start, line))
    return out


def documented_commands() -> list[Command]:
    commands = []
    for page in PAGES:
        for number, line in shell_lines(page.read_text(encoding="utf-8")):
            if molvae_args(line) is not None:
                commands.append(Command(str(page.relative_to(ROOT)), number, line))
    return commands


COMMANDS = documented_commands()


def test_the_pages_show_commands() -> None:
    # guards the extractor: a change that made it find nothing would pass every test below
    readme = [c for c in COMMANDS if c.page == "README.md"]
    verbs = {molvae_args(c.text)[0] for c in readme}
    assert len(COMMANDS) >= 40, len(COMMANDS)
    assert {"train", "sample", "encode", "decode", "reconstruct", "score", "evaluate",
            "optimize", "fit-prior", "fetch-zinc"} <= verbs, verbs  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_documented_command_parses(command: Command) -> None:
    args = molvae_args(command.text)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(args)
    except SystemExit as exc:
        if exc.code not in (0, None):  # 0: --help
            pytest.fail(f"{command}\n  does not parse: {err.getvalue().strip()}")


def test_extractor_handles_continuations_comments_prompts_and_output() -> None:
    page = "\n".join([
        "Prose `molvae nope` is not in a fence.",
        "```bash",
        "molvae score --list   # the built-in objectives",
        "PYTHONPATH=. molvae optimize --objective my:fn \\",
        "    --budget 100 --out c  # continued",
        'molvae score in.smi -C "similarity:N#CC>=0.4" -O qed',
        "molvae score: error: a SMILES file to score is required",
        "torchrun --nproc_per_node 4 -m molvae.cli train --out runs/x",
        "```",
        "```text",
        "molvae optimize --this-is-output",
        "```",
        "```console",
        "$ molvae sample -n 5",
        "molvae sample printed this",
        "```",
    ])  # fmt: skip
    lines = shell_lines(page)
    found = [(n, line) for n, line in lines if molvae_args(line) is not None]
    assert found == [
        (3, "molvae score --list"),
        (4, "PYTHONPATH=. molvae optimize --objective my:fn --budget 100 --out c"),
        (6, 'molvae score in.smi -C "similarity:N#CC>=0.4" -O qed'),
        (8, "torchrun --nproc_per_node 4 -m molvae.cli train --out runs/x"),
        (14, "molvae sample -n 5"),
    ]
    smiles_with_hash = ["score", "in.smi", "-C", "similarity:N#CC>=0.4", "-O", "qed"]
    assert molvae_args(found[2][1]) == smiles_with_hash
    assert molvae_args(found[3][1])[:1] == ["train"]


def test_a_wrong_flag_fails() -> None:
    # the check above would be worthless if parse_args accepted anything
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        build_parser().parse_args(["optimize", "--no-such-flag"])


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z][\w.-]*(?:\s+[A-Za-z][\w.-]*)*)\s*:(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def named_make_targets(text: str) -> set[str]:
    """Targets of ``make ...`` in code: fenced lines and inline code spans (``make demo
    TORCH_SPEC=torch`` names demo; a VAR=value is not a target)."""
    code = [line for _, line in shell_lines(text)] + re.findall(r"`([^`\n]+)`", text)
    targets = set()
    for snippet in code:
        for match in re.finditer(r"(?:^|[\s;&|(])make((?:\s+[\w.=-]+)+)", snippet):
            targets.update(w for w in match.group(1).split() if "=" not in w and w[0] != "-")
    return targets


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_make_targets_named_exist(page: Path) -> None:
    named = named_make_targets(page.read_text(encoding="utf-8"))
    missing = named - makefile_targets()
    assert not missing, f"{page.relative_to(ROOT)} names make targets the Makefile lacks: {missing}"


def test_readme_names_the_main_targets() -> None:
    assert {"demo", "test", "lint", "docs"} <= named_make_targets(
        (ROOT / "README.md").read_text(encoding="utf-8")
    )


def test_score_list_needs_no_input_file(capsys) -> None:
    assert main(["score", "--list"]) == 0
    out = capsys.readouterr().out
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert {"logp", "qed", "sa", "plogp", "plogp_raw"} <= names, out


def test_score_without_input_or_list_is_one_line(capsys) -> None:
    assert main(["score"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("molvae score: error:") and "--list" in err and "\n" not in err
