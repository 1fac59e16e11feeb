"""Fuzz target for the sandbox's static check (`check` in ../python/runtime.py), with atheris.

Run: python3 static_check.py [corpus/] -max_total_time=60   (scripts/test runs it briefly)

Oracles, each an independent reading of the rules:
  * `check` never raises, whatever the input (it is the first thing hostile code meets);
  * code `check` accepts compiles;
  * code `check` accepts has no NAME token starting with '_' (other than '_' itself) when read
    by `tokenize`, a different parser than the `ast` walk the check uses;
  * code `check` accepts has no NAME token that is a forbidden builtin used as a plain name;
  * code `check` accepts has no character that `unicodedata` calls a control (other than tab,
    newline, carriage return), a format character (Cf: bidirectional controls, zero-width
    characters...) or a line or paragraph separator ("Trojan Source").
"""

import io
import os
import sys
import tokenize
import unicodedata

import atheris

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
with atheris.instrument_imports():
    import runtime

MODULES = ["json", "math", "re", "asyncio", "typing", "collections", "urllib.parse", "string"]


def tokens(source):
    try:
        yield from tokenize.generate_tokens(io.StringIO(source).readline)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return


def test_one_input(data):
    source = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(8192)
    errors = runtime.check(source, MODULES)
    if errors:
        for line, col, message in errors:
            assert isinstance(line, int) and isinstance(col, int) and message, errors
        return
    compile(source, "<fuzz>", "exec", dont_inherit=True)
    for char in source:
        category = unicodedata.category(char)
        hidden = category in ("Cf", "Zl", "Zp") or (category == "Cc" and char not in "\t\n\r")
        assert not hidden, f"accepted U+{ord(char):04X}: {source!r}"
    previous = None
    for token in tokens(source):
        if token.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            continue
        if token.type == tokenize.NAME:
            name = token.string
            assert not (name.startswith("_") and name != "_"), f"accepted {name!r}: {source!r}"
            # A forbidden builtin is fine only as an attribute (x.open) or a keyword (f(open=1)).
            if name in runtime.FORBIDDEN_NAMES and previous != ".":
                rest = token.line[token.end[1]:].lstrip()
                assert rest.startswith("=") and not rest.startswith("=="), f"accepted builtin {name!r}: {source!r}"
        previous = token.string


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
