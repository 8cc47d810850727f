"""What a bash command does that a human should approve first, read with :mod:`shlex`.

:func:`command_concerns` parses a command line into its simple commands (quotes and escapes
removed, as bash would: ``\\rm`` and ``r"m"`` are ``rm``) and returns the reasons to ask about
it, in a fixed order: it cannot be parsed; it deletes, moves or overwrites files or discards
git history; it runs inline code or another command; it acts on other processes or the
machine; it names a path outside the workspace; it uses shell syntax the rules cannot follow
(``; & | < > ( ) $ ` { } \\``, a newline, a glob in the command's name), which is every chain,
pipe, redirection, expansion and substitution. A plain command (``python -m pytest -q``,
``ls``, ``cat file.py``, ``git diff``) has none.

These rules are a second layer: the sandbox (:mod:`looplet.sandbox`) is what confines a
command. No rule on a command's text can tell what ``python3 tests.py`` will do once it runs.
"""

from __future__ import annotations

import functools
import os
import re
import shlex

__all__ = [
    "ACTS_ON_SYSTEM",
    "CONCERNS",
    "DESTRUCTIVE",
    "LEAVES_WORKSPACE",
    "RUNS_OTHER_CODE",
    "SHELL_SYNTAX",
    "UNPARSABLE",
    "command_concerns",
]

#: The reasons :func:`command_concerns` gives, in the order it checks them.
UNPARSABLE = "the command cannot be parsed (an unclosed quote, or a NUL byte)"
DESTRUCTIVE = "the command may delete, move or overwrite files, or discard git history"
RUNS_OTHER_CODE = (
    "the command runs inline code or another command (python -c, bash -c, env, xargs, "
    "find -exec, git -c, VAR=value ...)"
)
ACTS_ON_SYSTEM = "the command acts on other processes or on the machine (kill, mount, ...)"
LEAVES_WORKSPACE = "the command names a path outside the workspace"
SHELL_SYNTAX = (
    "the command uses shell syntax the rules cannot follow: a chain, pipe, redirection, "
    "expansion, substitution or escape (; & | < > ( ) $ ` { } \\ or a newline), or a glob "
    "in the command's name"
)
#: Every reason, in the order :func:`command_concerns` checks them.
CONCERNS = (
    UNPARSABLE,
    DESTRUCTIVE,
    RUNS_OTHER_CODE,
    ACTS_ON_SYSTEM,
    LEAVES_WORKSPACE,
    SHELL_SYNTAX,
)

# Characters whose meaning to bash the rules do not follow.
_SHELL_CHARS = frozenset(";&|<>()$`{}\\\n\r")
# Tokens shlex gives for bash's operators (punctuation_chars); a redirection's next word is a
# file name.
_OPERATOR_CHARS = frozenset("();<>|&")
_KEYWORDS = frozenset({"!", "{", "}", "if", "then", "else", "elif", "do", "while", "until"})
_DELETES = frozenset(
    {"rm", "rmdir", "unlink", "shred", "mv", "dd", "truncate", "chmod", "chown", "chgrp"}
    | {"cp", "install", "rsync", "tee", "patch"}  # they write over the files they name
)
_WRAPPERS = frozenset(
    {
        "sudo", "doas", "su", "runuser", "env", "xargs", "nohup", "time", "timeout", "nice",
        "ionice", "stdbuf", "setsid", "chroot", "unshare", "nsenter", "strace", "ltrace",
        "watch", "exec", "eval", "command", "builtin", "source", ".", "busybox", "parallel",
        "script", "flock", "chrt", "taskset", "fakeroot", "sg", "newgrp",
    }
)  # fmt: skip
_SYSTEM = frozenset(
    {
        "kill", "pkill", "killall", "shutdown", "reboot", "halt", "poweroff", "systemctl",
        "service", "mount", "umount", "crontab", "at", "sysctl", "iptables", "modprobe",
        "insmod", "rmmod",
    }
)  # fmt: skip
# Interpreters and the short options that hand them code on the command line.
_INLINE_OPTIONS = {
    "sh": "c", "bash": "c", "dash": "c", "zsh": "c", "ksh": "c", "fish": "c",
    "perl": "eE", "ruby": "e", "php": "r", "node": "ep", "bun": "e",
}  # fmt: skip
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_GIT_GLOBAL_RUNS = ("-c", "--config-env", "--exec-path", "--git-dir", "--work-tree")
_GIT_DISCARDS = frozenset({"reset", "clean", "restore", "rm", "filter-branch", "update-ref"})
# Absolute paths that are not a place outside the workspace.
_DEVICES = frozenset(
    {"/dev/null", "/dev/zero", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/urandom"}
)


def command_concerns(command: object) -> tuple[str, ...]:
    """The reasons to ask a human before running ``command``; ``()`` for a plain command.

    Each reason is one of this module's constants, in the order they are listed there.
    """
    if not isinstance(command, str) or "\0" in command:
        return (UNPARSABLE,)
    return _concerns(command)


@functools.lru_cache(maxsize=512)  # each rule of the engine asks about the same command
def _concerns(command: str) -> tuple[str, ...]:
    try:
        commands, targets = _parse(command)
    except ValueError:  # shlex: an unclosed quote or a trailing escape
        return (UNPARSABLE,)
    found: set[str] = set()
    for words in commands:
        name, args = _split_name(words, found)
        if name is None:
            continue
        found |= _concerns_of(name, args)
        if any(ch in name for ch in "*?["):
            found.add(SHELL_SYNTAX)
        if "/" in name and _outside(name):
            found.add(LEAVES_WORKSPACE)
        if any(_outside(arg) for arg in args):
            found.add(LEAVES_WORKSPACE)
    if any(_outside(target) for target in targets):
        found.add(LEAVES_WORKSPACE)
    if _SHELL_CHARS.intersection(command):
        found.add(SHELL_SYNTAX)
    order = (UNPARSABLE, DESTRUCTIVE, RUNS_OTHER_CODE, ACTS_ON_SYSTEM, LEAVES_WORKSPACE)
    return tuple(reason for reason in (*order, SHELL_SYNTAX) if reason in found)


def _parse(command: str) -> tuple[list[list[str]], list[str]]:
    """The simple commands' words, and the redirections' file names."""
    # Newlines and backticks separate commands to bash; shlex would read them as spaces.
    text = command.replace("\n", " ; ").replace("\r", " ; ").replace("`", " ; ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands: list[list[str]] = [[]]
    targets: list[str] = []
    redirected = False
    for token in lexer:
        if token and _OPERATOR_CHARS.issuperset(token):
            redirected = "<" in token or ">" in token
            if not redirected:
                commands.append([])
            continue
        if redirected:
            targets.append(token)
            redirected = False
        else:
            commands[-1].append(token)
    return [words for words in commands if words], targets


def _split_name(words: list[str], found: set[str]) -> tuple[str | None, list[str]]:
    """The command's name (keywords and ``VAR=value`` prefixes skipped) and its arguments."""
    for i, word in enumerate(words):
        if word in _KEYWORDS:
            continue
        if _ASSIGNMENT.match(word):  # VAR=value before a command changes what it runs
            found.add(RUNS_OTHER_CODE)
            continue
        return word, words[i + 1 :]
    return None, []


def _overwrites(name: str, args: list[str]) -> bool:
    """Whether ``name`` with ``args`` writes over files: tar extracting, sort -o, awk -i
    inplace, ln -f (their other forms only read, or create)."""
    if name in ("tar", "bsdtar", "gtar"):
        first = args[0] if args else ""
        bundled = first[:1] != "-" and "x" in first  # tar xf: the first word's letters
        return bundled or any(a in ("--extract", "--get") or _short_flag(a, "x") for a in args)
    if name == "sort":
        return any(a.startswith("--output") or _short_flag(a, "o") for a in args)
    if name in ("awk", "gawk"):
        return "inplace" in args or any(a.startswith("--in-place") for a in args)
    if name == "ln":
        return any(a.startswith("--force") or _short_flag(a, "f") for a in args)
    return False


def _concerns_of(path: str, args: list[str]) -> set[str]:
    """What the command named ``path`` does with ``args``."""
    name = os.path.basename(path)
    if name in _DELETES or name.startswith("mkfs"):
        return {DESTRUCTIVE}
    if name in _WRAPPERS:
        return {RUNS_OTHER_CODE}
    if name in _SYSTEM:
        return {ACTS_ON_SYSTEM}
    if name == "git":
        return _git(args)
    if name == "find":
        found: set[str] = set()
        if {"-delete", "-fprint", "-fprint0", "-fprintf", "-fls"}.intersection(args):
            found.add(DESTRUCTIVE)
        if {"-exec", "-execdir", "-ok", "-okdir"}.intersection(args):
            found.add(RUNS_OTHER_CODE)
        return found
    if name == "sed" and any(_short_flag(a, "i") or a.startswith("--in-place") for a in args):
        return {DESTRUCTIVE}
    if _overwrites(name, args):
        return {DESTRUCTIVE}
    if _is_python(name):
        return {RUNS_OTHER_CODE} if _python_inline(args) else set()
    flags = _INLINE_OPTIONS.get(name)
    if flags is not None and any(
        a.startswith(("--eval", "--print", "--command")) or any(_short_flag(a, f) for f in flags)
        for a in args
    ):
        return {RUNS_OTHER_CODE}
    if name == "deno" and args[:1] == ["eval"]:
        return {RUNS_OTHER_CODE}
    return set()


def _git(args: list[str]) -> set[str]:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        option = args[i]
        if option.split("=")[0] in _GIT_GLOBAL_RUNS:
            return {RUNS_OTHER_CODE}
        i += 2 if option in ("-C", "--namespace") else 1
    if i >= len(args):
        return set()
    sub, rest = args[i], args[i + 1 :]
    discards = (
        sub in _GIT_DISCARDS
        or (sub == "checkout" and bool({"--", ".", "-f", "--force"}.intersection(rest)))
        or (sub == "switch" and bool({"-f", "--force", "--discard-changes"}.intersection(rest)))
        or (sub == "branch" and bool({"-D", "-f", "--force", "-M"}.intersection(rest)))
        or (
            sub in ("stash", "reflog") and rest[:1] in (["drop"], ["clear"], ["expire"], ["delete"])
        )
        or (
            sub == "push"
            and any(
                a in ("-f", "--delete", "-d", "--mirror", "--prune")
                or a.startswith(("--force", "+"))
                or (a.startswith(":") and len(a) > 1)
                for a in rest
            )
        )
    )
    return {DESTRUCTIVE} if discards else set()


def _is_python(name: str) -> bool:
    return name.startswith(("python", "pypy")) and name.rstrip("0123456789.") in (
        "python",
        "pypy",
    )


def _python_inline(args: list[str]) -> bool:
    """Whether python's options (those before the script or ``-m``) include ``-c``."""
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if not arg.startswith("-") or arg in ("-", "--"):  # the script, stdin, or the end
            return False
        if arg.startswith("--"):
            continue
        for j, flag in enumerate(arg[1:], 1):
            if flag == "c":
                return True
            if flag == "m":
                return False
            if flag in "WX":  # takes a value: the rest of the word, or the next word
                skip = j == len(arg) - 1
                break
    return False


def _short_flag(arg: str, flag: str) -> bool:
    """Whether ``arg`` is a cluster of short options (``-xc``) holding ``flag``."""
    return bool(flag) and arg.startswith("-") and not arg.startswith("--") and flag in arg[1:]


def _outside(word: str) -> bool:
    """Whether ``word`` (or a ``name=value``, ``a:b`` or ``-Ivalue`` part) leaves the folder."""
    parts = [word, *word.split("=")[1:]]
    if "://" not in word:
        parts += word.split(":")[1:]
    if word.startswith("-") and not word.startswith("--") and len(word) > 2:
        parts.append(word[2:])
    return any(_leaves(part) for part in parts)


def _leaves(path: str) -> bool:
    if path.startswith("~"):
        return True
    if path.startswith("/") and path not in _DEVICES:
        return True
    return ".." in path.split("/")
