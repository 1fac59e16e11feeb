"""MCPbox sandbox runtime: loaded once into the zygote, before any tool code exists.

Three jobs, each a layer of the sandbox (see ARCHITECTURE.md):
  * check(source, modules): the static check on CPython's own `ast`, with line-numbered errors;
  * describe(source): `main`'s docstring, the input JSON Schema derived from its signature and
    the output schema from its return annotation;
  * run(...): the restricted runtime: restricted builtins, imports only from an allowlist and
    only through proxy modules that expose public non-module attributes.

Tool code never sees this module: it gets a fresh globals dict whose builtins are a curated
dict, and nothing in it refers back here except through closures (whose `__closure__` is a
dunder, which the static check refuses). The result is serialised by Rust, not here.
"""

import ast
import asyncio
import bisect
import re
import select
import selectors
import socket
import types

# ---------------------------------------------------------------------------------------------
# Static check
# ---------------------------------------------------------------------------------------------

# Builtins that do not exist for tools; named here so the check can say so with a line number.
FORBIDDEN_NAMES = frozenset({
    "eval", "exec", "compile", "open", "input", "breakpoint", "help", "exit", "quit",
    "getattr", "setattr", "delattr", "hasattr", "globals", "locals", "vars", "dir",
    "memoryview", "type", "object", "super", "id", "classmethod", "staticmethod", "property",
    "copyright", "credits", "license",
})

# Attribute names that reach interpreter internals without a leading underscore: frames, code
# objects, generator/coroutine state, event loops, and string formatting that can walk
# attributes ("{0.__globals__}".format(f)).
FORBIDDEN_ATTRIBUTES = frozenset({
    "format", "format_map", "get_loop", "get_coro", "get_stack", "print_stack", "mro",
    "func_globals", "func_code", "im_func", "im_self", "register",
})
FORBIDDEN_ATTRIBUTE_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_")

MAX_NODES = 50_000

# Characters refused anywhere in the source, strings and comments included (that is where
# "Trojan Source", CVE-2021-42574, hides them): each is invisible, or reorders the text around
# it when displayed, so a reviewer's browser can show other code than Python runs. The same
# table as `contract::sandbox::HIDDEN_CHARACTERS` (sandbox/tests/supervisor.rs runs every
# character of that one through `check`): controls other than tab, newline and carriage
# return; Unicode's format characters (Cf: bidirectional controls, zero-width characters,
# tags...); the line and paragraph separators; the Hangul fillers. (first, last, name).
HIDDEN_CHARACTERS = (
    (0x00, 0x08, "CONTROL CHARACTER"),
    (0x0B, 0x0C, "CONTROL CHARACTER"),
    (0x0E, 0x1F, "CONTROL CHARACTER"),
    (0x7F, 0x9F, "CONTROL CHARACTER"),
    (0xAD, 0xAD, "SOFT HYPHEN"),
    (0x0600, 0x0605, "ARABIC NUMBER SIGN (FORMAT CHARACTER)"),
    (0x061C, 0x061C, "ARABIC LETTER MARK"),
    (0x06DD, 0x06DD, "ARABIC END OF AYAH (FORMAT CHARACTER)"),
    (0x070F, 0x070F, "SYRIAC ABBREVIATION MARK (FORMAT CHARACTER)"),
    (0x0890, 0x0891, "ARABIC POUND MARK (FORMAT CHARACTER)"),
    (0x08E2, 0x08E2, "ARABIC DISPUTED END OF AYAH (FORMAT CHARACTER)"),
    (0x115F, 0x1160, "HANGUL FILLER"),
    (0x180E, 0x180E, "MONGOLIAN VOWEL SEPARATOR"),
    (0x200B, 0x200B, "ZERO WIDTH SPACE"),
    (0x200C, 0x200C, "ZERO WIDTH NON-JOINER"),
    (0x200D, 0x200D, "ZERO WIDTH JOINER"),
    (0x200E, 0x200E, "LEFT-TO-RIGHT MARK"),
    (0x200F, 0x200F, "RIGHT-TO-LEFT MARK"),
    (0x2028, 0x2028, "LINE SEPARATOR"),
    (0x2029, 0x2029, "PARAGRAPH SEPARATOR"),
    (0x202A, 0x202A, "LEFT-TO-RIGHT EMBEDDING"),
    (0x202B, 0x202B, "RIGHT-TO-LEFT EMBEDDING"),
    (0x202C, 0x202C, "POP DIRECTIONAL FORMATTING"),
    (0x202D, 0x202D, "LEFT-TO-RIGHT OVERRIDE"),
    (0x202E, 0x202E, "RIGHT-TO-LEFT OVERRIDE"),
    (0x2060, 0x2060, "WORD JOINER"),
    (0x2061, 0x2064, "INVISIBLE MATHEMATICAL OPERATOR"),
    (0x2066, 0x2066, "LEFT-TO-RIGHT ISOLATE"),
    (0x2067, 0x2067, "RIGHT-TO-LEFT ISOLATE"),
    (0x2068, 0x2068, "FIRST STRONG ISOLATE"),
    (0x2069, 0x2069, "POP DIRECTIONAL ISOLATE"),
    (0x206A, 0x206F, "DEPRECATED FORMAT CHARACTER"),
    (0x3164, 0x3164, "HANGUL FILLER"),
    (0xFEFF, 0xFEFF, "ZERO WIDTH NO-BREAK SPACE"),
    (0xFFA0, 0xFFA0, "HALFWIDTH HANGUL FILLER"),
    (0xFFF9, 0xFFFB, "INTERLINEAR ANNOTATION CHARACTER"),
    (0x110BD, 0x110BD, "KAITHI NUMBER SIGN (FORMAT CHARACTER)"),
    (0x110CD, 0x110CD, "KAITHI NUMBER SIGN ABOVE (FORMAT CHARACTER)"),
    (0x13430, 0x1343F, "EGYPTIAN HIEROGLYPH FORMAT CONTROL"),
    (0x1BCA0, 0x1BCA3, "SHORTHAND FORMAT CONTROL"),
    (0x1D173, 0x1D17A, "MUSICAL SYMBOL FORMAT CONTROL"),
    (0xE0001, 0xE0001, "LANGUAGE TAG"),
    (0xE0020, 0xE007F, "TAG CHARACTER"),
)
_HIDDEN = re.compile(
    "[" + "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last, _ in HIDDEN_CHARACTERS) + "]"
)
# Python's own line ends (the tokenizer's): a form feed or U+2028 does not end a line.
_LINE_END = re.compile("\r\n?|\n")
# Lines reported at most: enough to fix them, bounded however many there are.
MAX_HIDDEN_LINES = 20

# Modules no allowlist can enable: each would hand tools a way around the restricted runtime
# (attribute getters by string, code/frame objects, raw file descriptors, processes, sockets)
# or is pointless under the OS layers. Matched on the first dotted component.
NEVER_IMPORTABLE = frozenset({
    "os", "sys", "builtins", "importlib", "ctypes", "gc", "inspect", "types", "code", "codeop",
    "operator", "pickle", "marshal", "shelve", "copyreg", "subprocess", "socket", "ssl",
    "select", "selectors", "threading", "multiprocessing", "concurrent", "signal", "pty", "tty",
    "termios", "resource", "posix", "pwd", "grp", "io", "mmap", "fcntl", "shutil", "tempfile",
    "pathlib", "glob", "fileinput", "zipimport", "pkgutil", "runpy", "site", "sysconfig",
    "platform", "traceback", "linecache", "tracemalloc", "faulthandler", "pdb", "bdb", "trace",
    "warnings", "weakref", "atexit", "http", "ftplib", "smtplib", "telnetlib",
    "xmlrpc", "webbrowser", "ensurepip", "venv", "distutils", "setuptools", "pip", "getpass",
    "zipfile", "tarfile", "sqlite3", "dbm",
})


def _bad_name(name):
    """Why a name is refused, or None."""
    if name.startswith("_") and name != "_":
        return f"names starting with '_' are not allowed: {name!r}"
    return None


def _bad_attribute(name):
    if name.startswith("_"):
        return f"attributes starting with '_' are not allowed: .{name}"
    if name in FORBIDDEN_ATTRIBUTES:
        return f"the attribute .{name} is not allowed in tools"
    if name.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES):
        return f"the attribute .{name} reaches interpreter internals and is not allowed"
    return None


def _module_allowed(name, modules):
    return name in modules and name.split(".")[0] not in NEVER_IMPORTABLE


class _Checker(ast.NodeVisitor):
    def __init__(self, modules):
        self.modules = modules
        self.errors = []
        self.in_literal = 0

    def error(self, node, message):
        self.errors.append((getattr(node, "lineno", 1) or 1, (getattr(node, "col_offset", 0) or 0) + 1, message))

    # Names and attributes -----------------------------------------------------------------
    def visit_Name(self, node):
        reason = _bad_name(node.id)
        if reason:
            self.error(node, reason)
        elif node.id in FORBIDDEN_NAMES:
            self.error(node, f"{node.id}() is not available in tools")
        self.generic_visit(node)

    def visit_Attribute(self, node):
        reason = _bad_attribute(node.attr)
        if reason:
            self.error(node, reason)
        self.generic_visit(node)

    def visit_arg(self, node):
        reason = _bad_name(node.arg)
        if reason:
            self.error(node, reason)
        self._check_annotation(node.annotation)
        # Not generic_visit: the annotation was checked by _check_annotation.

    def visit_keyword(self, node):
        if node.arg is not None:
            reason = _bad_name(node.arg)
            if reason:
                self.error(node, reason)
        self.generic_visit(node)

    def _check_function(self, node):
        reason = _bad_name(node.name)
        if reason:
            self.error(node, reason)
        self._check_annotation(node.returns)
        for child in (*node.decorator_list, node.args):
            self.visit(child)
        for statement in node.body:
            self.visit(statement)

    def visit_FunctionDef(self, node):
        self._check_function(node)

    def visit_AsyncFunctionDef(self, node):
        self._check_function(node)

    def visit_ClassDef(self, node):
        reason = _bad_name(node.name)
        if reason:
            self.error(node, reason)
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                self.error(keyword, "metaclasses are not allowed in tools")
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._check_annotation(node.annotation)
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def _check_annotation(self, annotation):
        # String annotations are code that typing helpers would eval() later, past this check.
        if annotation is None:
            return
        for child in ast.walk(annotation):
            if isinstance(child, ast.Subscript) and isinstance(child.value, ast.Name) and child.value.id == "Literal":
                continue
            if isinstance(child, ast.Constant) and isinstance(child.value, str) and not self._inside_literal(annotation, child):
                self.error(child, "string annotations are not allowed (write the type itself)")
        self.visit(annotation)

    @staticmethod
    def _inside_literal(root, target):
        for child in ast.walk(root):
            if isinstance(child, ast.Subscript) and isinstance(child.value, (ast.Name, ast.Attribute)):
                name = child.value.id if isinstance(child.value, ast.Name) else child.value.attr
                if name == "Literal" and any(n is target for n in ast.walk(child.slice)):
                    return True
        return False

    # Imports ------------------------------------------------------------------------------
    def visit_Import(self, node):
        for alias in node.names:
            if any(part.startswith("_") for part in alias.name.split(".")):
                self.error(node, f"importing {alias.name!r} is not allowed")
            elif not _module_allowed(alias.name, self.modules):
                self.error(node, f"the module {alias.name!r} is not in this tool's allowed modules")
            if alias.asname:
                reason = _bad_name(alias.asname)
                if reason:
                    self.error(node, reason)

    def visit_ImportFrom(self, node):
        if node.level:
            self.error(node, "relative imports are not allowed")
            return
        module = node.module or ""
        if any(part.startswith("_") for part in module.split(".")):
            self.error(node, f"importing from {module!r} is not allowed")
            return
        for alias in node.names:
            if alias.name == "*":
                self.error(node, "'from … import *' is not allowed")
                continue
            reason = _bad_name(alias.name) or (alias.asname and _bad_name(alias.asname))
            if reason:
                self.error(node, reason)
            full = f"{module}.{alias.name}"
            if not (_module_allowed(module, self.modules) or _module_allowed(full, self.modules)):
                self.error(node, f"the module {module!r} is not in this tool's allowed modules")

    # Patterns ----------------------------------------------------------------------------
    def visit_MatchClass(self, node):
        for name in node.kwd_attrs:
            reason = _bad_attribute(name)
            if reason:
                self.error(node, f"match pattern: {reason}")
        self.generic_visit(node)

    def visit_MatchAs(self, node):
        if node.name:
            reason = _bad_name(node.name)
            if reason:
                self.error(node, reason)
        self.generic_visit(node)

    def visit_MatchStar(self, node):
        if node.name:
            reason = _bad_name(node.name)
            if reason:
                self.error(node, reason)

    def visit_MatchMapping(self, node):
        if node.rest:
            reason = _bad_name(node.rest)
            if reason:
                self.error(node, reason)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node):
        if node.name:
            reason = _bad_name(node.name)
            if reason:
                self.error(node, reason)
        self.generic_visit(node)

    def visit_Global(self, node):
        for name in node.names:
            reason = _bad_name(name)
            if reason:
                self.error(node, reason)

    visit_Nonlocal = visit_Global


def _hidden_characters(source):
    """[(line, col, message)] for the first hidden character on each line that has one."""
    errors = []
    starts = None
    last_line = 0
    for found in _HIDDEN.finditer(source):
        if starts is None:
            starts = [0] + [end.end() for end in _LINE_END.finditer(source)]
        position = found.start()
        line = bisect.bisect_right(starts, position)
        if line == last_line:
            continue
        last_line = line
        code = ord(found.group())
        name = next(name for first, last, name in HIDDEN_CHARACTERS if first <= code <= last)
        escape = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
        errors.append((line, position - starts[line - 1] + 1,
                       f"the invisible character U+{code:04X} {name} is not allowed anywhere in "
                       f"tool code, strings and comments included: it can make the code read "
                       f"differently from how it runs; in a string, write it as {escape}"))
        if len(errors) == MAX_HIDDEN_LINES:
            break
    return errors


def check(source, modules):
    """Static check. Returns [(line, col, message)], empty when the code may run."""
    hidden = _hidden_characters(source)
    if hidden:
        return hidden
    try:
        tree = ast.parse(source, filename="<tool>", mode="exec")
    except SyntaxError as err:
        return [(err.lineno or 1, err.offset or 1, f"syntax error: {err.msg}")]
    except (ValueError, MemoryError, RecursionError) as err:
        return [(1, 1, f"the code cannot be parsed: {type(err).__name__}")]
    # The parser accepts some code the compiler refuses ('return' outside a function, a bare
    # starred expression...): compile too, so "valid" means it will load. (Found by fuzzing.)
    try:
        compile(tree, "<tool>", "exec", dont_inherit=True)
    except SyntaxError as err:
        return [(err.lineno or 1, err.offset or 1, f"syntax error: {err.msg}")]
    except (ValueError, MemoryError, RecursionError) as err:
        return [(1, 1, f"the code cannot be compiled: {type(err).__name__}")]
    count = 0
    for _node in ast.walk(tree):
        count += 1
        if count > MAX_NODES:
            return [(1, 1, f"the code is too large (more than {MAX_NODES} syntax nodes)")]
    checker = _Checker(frozenset(modules))
    try:
        checker.visit(tree)
    except RecursionError:
        return [(1, 1, "the code is nested too deeply")]
    checker.errors.sort()
    return checker.errors


# ---------------------------------------------------------------------------------------------
# Schema derivation
# ---------------------------------------------------------------------------------------------

_SIMPLE_TYPES = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "dict": {"type": "object"},
    "Dict": {"type": "object"},
    "list": {"type": "array"},
    "List": {"type": "array"},
    "tuple": {"type": "array"},
    "Tuple": {"type": "array"},
    "set": {"type": "array", "uniqueItems": True},
    "Set": {"type": "array", "uniqueItems": True},
    "Any": {},
    "None": {"type": "null"},
}


def _name_of(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    return None


def _is_none(node):
    return isinstance(node, ast.Constant) and node.value is None or _name_of(node) == "None"


def _schema_for(annotation):
    """(schema, optional) for an annotation node."""
    if annotation is None:
        return {}, False
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        parts = _union_parts(annotation)
        return _union(parts)
    if isinstance(annotation, ast.Subscript):
        head = _name_of(annotation.value)
        args = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        if head == "Optional":
            schema, _ = _schema_for(args[0])
            return schema, True
        if head == "Union":
            return _union(args)
        if head == "Literal":
            values = [a.value for a in args if isinstance(a, ast.Constant)]
            schema = {"enum": values}
            kinds = {type(v) for v in values}
            if len(kinds) == 1:
                kind = kinds.pop()
                mapped = {str: "string", int: "integer", float: "number", bool: "boolean"}.get(kind)
                if mapped:
                    schema["type"] = mapped
            return schema, False
        if head in ("list", "List", "set", "Set", "Sequence", "Iterable"):
            items, _ = _schema_for(args[0])
            schema = {"type": "array"}
            if items:
                schema["items"] = items
            return schema, False
        if head in ("dict", "Dict", "Mapping"):
            schema = {"type": "object"}
            if len(args) == 2:
                values, _ = _schema_for(args[1])
                if values:
                    schema["additionalProperties"] = values
            return schema, False
        if head in ("tuple", "Tuple"):
            return {"type": "array"}, False
        if head == "Annotated":
            return _schema_for(args[0])
    name = _name_of(annotation)
    return dict(_SIMPLE_TYPES.get(name, {})), False


def _union_parts(node):
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union_parts(node.left) + _union_parts(node.right)
    return [node]


def _union(parts):
    optional = any(_is_none(p) for p in parts)
    schemas = [_schema_for(p)[0] for p in parts if not _is_none(p)]
    if len(schemas) == 1:
        return schemas[0], optional
    if any(not s for s in schemas):
        return {}, optional
    return {"anyOf": schemas}, optional


def _literal_default(node):
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
    if isinstance(value, (str, int, float, bool, type(None), list, dict)):
        return True, value
    return False, None


def _param_docs(doc):
    """Descriptions from a Google-style 'Args:' section."""
    found = {}
    if not doc:
        return found
    in_args = False
    current = None
    for raw in doc.splitlines():
        line = raw.strip()
        if line.lower() in ("args:", "arguments:", "parameters:", "params:"):
            in_args = True
            continue
        if in_args:
            if not line:
                current = None
                continue
            if line.endswith(":") and " " not in line:
                break
            head, sep, rest = line.partition(":")
            name = head.split("(")[0].strip()
            if sep and name.isidentifier():
                current = name
                found[name] = rest.strip()
            elif current:
                found[current] = (found[current] + " " + line).strip()
    return found


# Marks an output schema that wraps a non-object return type as `{"result": ...}` (what the MCP
# Python SDK's FastMCP does): the origin wraps the value the same way before checking it.
WRAP_RESULT = "x-mcpbox-wrap-result"


def _output_schema(returns):
    """MCP's outputSchema for `main`'s return annotation (None without one, or when it says
    nothing checkable: `Any`, `None`, an unknown class). MCP requires `type: object`; any other
    type is wrapped as `{"result": <schema>}`."""
    if returns is None or _is_none(returns):
        return None
    schema, optional = _schema_for(returns)
    if not schema:
        return None
    if schema.get("type") == "object" and not optional:
        return schema
    if optional:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return {
        "type": "object",
        "properties": {"result": schema},
        "required": ["result"],
        WRAP_RESULT: True,
    }


def describe(source):
    """(has_main, description, schema, output_schema) from the code's top-level `main`."""
    try:
        tree = ast.parse(source, filename="<tool>", mode="exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False, None, None, None
    main = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main":
            main = node
    if main is None:
        return False, None, None, None
    doc = ast.get_docstring(main)
    docs = _param_docs(doc)
    args = main.args
    properties = {}
    required = []
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    for arg, default in params:
        if arg.arg in ("self", "cls"):
            continue
        schema, optional = _schema_for(arg.annotation)
        if default is not None:
            ok, value = _literal_default(default)
            if ok:
                schema["default"] = value
        if arg.arg in docs and docs[arg.arg]:
            schema["description"] = docs[arg.arg]
        properties[arg.arg] = schema
        if default is None and not optional:
            required.append(arg.arg)
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if args.kwarg is None:
        schema["additionalProperties"] = False
    description = None
    if doc:
        # The summary: the docstring up to its Args section.
        lines = []
        for line in doc.splitlines():
            if line.strip().lower() in ("args:", "arguments:", "parameters:", "params:", "returns:"):
                break
            lines.append(line)
        description = "\n".join(lines).strip() or None
    return True, description, schema, _output_schema(main.returns)


# ---------------------------------------------------------------------------------------------
# Restricted runtime
# ---------------------------------------------------------------------------------------------

_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "frozenset", "hash", "hex",
    "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "oct", "ord", "pow", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str",
    "sum", "tuple", "zip", "aiter", "anext", "format",
    "True", "False", "None", "Ellipsis", "NotImplemented",
    "BaseException", "Exception", "ArithmeticError", "AssertionError", "AttributeError",
    "EOFError", "FloatingPointError", "IndexError", "KeyError", "LookupError", "MemoryError",
    "NameError", "NotImplementedError", "OverflowError", "RecursionError", "RuntimeError",
    "StopAsyncIteration", "StopIteration", "TimeoutError", "TypeError", "UnboundLocalError",
    "UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError", "ValueError",
    "ZeroDivisionError", "ConnectionError", "PermissionError", "LookupError",
)

# Per-module attribute rules. Modules not listed expose every public, non-module attribute.
# Listed modules expose only the given names (curated), or everything but the excluded names.
_MODULE_ONLY = {
    # The event loop, subprocesses, sockets and threads stay out of reach.
    "asyncio": (
        "sleep", "gather", "wait_for", "wait", "as_completed", "shield", "timeout",
        "create_task", "TimeoutError", "CancelledError", "Queue", "Event", "Lock",
        "Semaphore", "BoundedSemaphore", "Condition", "QueueEmpty", "QueueFull",
        "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED", "iscoroutine",
        "iscoroutinefunction",
    ),
    # Only what annotations need: get_type_hints and ForwardRef would eval() strings.
    "typing": (
        "Any", "Optional", "Union", "List", "Dict", "Tuple", "Set", "FrozenSet", "Literal",
        "Callable", "Iterable", "Iterator", "Sequence", "Mapping", "MutableMapping",
        "Annotated", "TypedDict", "NamedTuple", "cast", "AsyncIterator", "Awaitable",
        "Coroutine", "Generator", "AsyncGenerator", "DefaultDict", "Counter", "Deque",
    ),
}
_MODULE_EXCLUDE = {
    "string": ("Formatter",),
    # singledispatch evaluates string annotations through get_type_hints.
    "functools": ("singledispatch", "singledispatchmethod"),
}


def _public_attributes(module, name):
    only = _MODULE_ONLY.get(name)
    exclude = _MODULE_EXCLUDE.get(name, ())
    names = only if only is not None else [n for n in dir(module) if not n.startswith("_")]
    result = {}
    for attr in names:
        if attr in exclude or attr.startswith("_"):
            continue
        try:
            value = getattr(module, attr)
        except AttributeError:
            continue
        if isinstance(value, types.ModuleType):
            continue
        result[attr] = value
    return result


# ---------------------------------------------------------------------------------------------
# Installed packages (PyPI). The supervisor grants a call some package directories; the worker
# adds them to the import path for that call only (it is single-use), after the standard
# library so a package cannot shadow it. Their modules go through the same proxies as the
# standard library's, with one more rule: a package's attributes never hand a tool something
# of a never-importable module (`six.exec_` is the real `exec`, `six.get_function_globals` an
# `operator.attrgetter("__globals__")`, a module's `os` or `sys`). What a package's own code
# does with those inside stays the OS layers' business (no writes, no exec, no network).
# ---------------------------------------------------------------------------------------------

_PACKAGE_PATHS = []

# Package entry points that run arbitrary Python from data, hidden on top of the general rule.
_PACKAGE_EXCLUDE = {
    "yaml": (
        "unsafe_load", "unsafe_load_all", "full_load", "full_load_all", "Loader", "FullLoader",
        "UnsafeLoader", "CLoader", "CFullLoader", "CUnsafeLoader", "Constructor",
        "FullConstructor", "UnsafeConstructor",
    ),
}


def add_package_paths(paths):
    """Called in a worker before the tool loads, with the directories the supervisor granted."""
    import sys as _sys
    for path in paths:
        if path not in _sys.path:
            _sys.path.append(path)
            _PACKAGE_PATHS.append(path.rstrip("/") + "/")


def _is_package_module(module):
    origin = getattr(module, "__file__", None) or ""
    return any(origin.startswith(path) for path in _PACKAGE_PATHS)


def _unsafe_value(value, depth=0):
    """Whether a package attribute would give a tool a builtin it does not have, or an object
    of a never-importable module (its functions, classes or instances); containers are looked
    into one level deep (`six.class_types` holds `type`)."""
    import builtins as _builtins
    if isinstance(value, types.ModuleType):
        return True
    name = getattr(_builtins, getattr(value, "__name__", None) or "", None)
    if name is value and getattr(value, "__name__", None) not in _SAFE_BUILTIN_NAMES:
        return True
    try:
        owner = getattr(value, "__module__", None)
    except Exception:
        return True
    if isinstance(owner, str):
        top = owner.split(".")[0].lstrip("_")
        if top == "builtins":
            if not _is_safe_builtin(value):
                return True
        elif top in NEVER_IMPORTABLE:
            return True
    if depth == 0 and isinstance(value, (tuple, list, set, frozenset)):
        return any(_unsafe_value(item, 1) for item in value)
    if depth == 0 and isinstance(value, dict):
        return any(_unsafe_value(item, 1) for item in value.values())
    return False


def _is_safe_builtin(value):
    """Builtins tools already have (`str`), and plain data whose class is a builtin type."""
    import builtins as _builtins
    if isinstance(value, (str, bytes, int, float, complex, bool, tuple, list, dict, set,
                          frozenset, bytearray, range, slice, type(None))):
        return True
    return any(getattr(_builtins, n, None) is value for n in _SAFE_BUILTIN_NAMES)


def _exposed_attributes(module, name):
    """The attributes a proxy of `module` carries: `_public_attributes`, less what a package
    must not hand out."""
    attributes = _public_attributes(module, name)
    if not _is_package_module(module):
        return attributes
    exclude = _PACKAGE_EXCLUDE.get(name, ())
    return {attr: value for attr, value in attributes.items()
            if attr not in exclude and not _unsafe_value(value)}


# Proxies built in the zygote (by `configure`) and inherited by every worker. Keyed by module
# and the allowed submodules it exposes, since those are part of the proxy.
_PROXY_CACHE = {}


class ModuleTable:
    """Builds proxy modules for an allowlist. Created per call, inside the worker; proxies
    already built in the zygote are reused (each worker is single-use, so a tool that changes a
    proxy changes only its own copy)."""

    def __init__(self, allowed, importer):
        self.allowed = frozenset(m for m in allowed if m.split(".")[0] not in NEVER_IMPORTABLE)
        self.importer = importer  # real import (from Rust: importlib.import_module or our `re`)
        self.cache = {}

    def proxy(self, name):
        """The proxy for `name` (a dotted path whose every prefix is allowed or a package)."""
        if name in self.cache:
            return self.cache[name]
        prefix = name + "."
        children = tuple(sorted({m[len(prefix):].split(".")[0] for m in self.allowed if m.startswith(prefix)}))
        key = (name, name in self.allowed, children)
        shared = _PROXY_CACHE.get(key)
        if shared is not None:
            self.cache[name] = shared
            return shared
        proxy = types.ModuleType(name)
        if name in self.allowed:
            real = self.importer(name)
            for attr, value in _exposed_attributes(real, name).items():
                setattr(proxy, attr, value)
        prefix = name + "."
        for other in self.allowed:
            if other.startswith(prefix):
                child = other[len(prefix):].split(".")[0]
                setattr(proxy, child, self.proxy(prefix + child))
        self.cache[name] = proxy
        _PROXY_CACHE[key] = proxy
        return proxy

    def import_(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level != 0:
            raise ImportError("relative imports are not allowed")
        if not isinstance(name, str) or name.split(".")[0] in NEVER_IMPORTABLE:
            raise ImportError(f"the module {name!r} can never be imported by tools")
        allowed_here = name in self.allowed or any(m.startswith(name + ".") for m in self.allowed)
        if fromlist:
            for item in fromlist:
                if item.startswith("_"):
                    raise ImportError(f"cannot import {item!r} from {name!r}")
            if not allowed_here and not any(f"{name}.{i}" in self.allowed for i in fromlist):
                raise ImportError(f"the module {name!r} is not in this tool's allowed modules")
            return self.proxy(name)
        if not allowed_here:
            raise ImportError(f"the module {name!r} is not in this tool's allowed modules")
        # `import a.b` binds `a`.
        return self.proxy(name.split(".")[0])


class Response:
    """What `await http.get(...)` returns: an httpx-like response."""

    __slots__ = ("status_code", "headers", "content", "url")

    def __init__(self, status_code, headers, content, url):
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def text(self):
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        import json as _json
        return _json.loads(self.content)

    @property
    def is_success(self):
        return 200 <= self.status_code < 300

    @property
    def ok(self):
        return self.is_success

    def raise_for_status(self):
        if not self.is_success:
            raise HTTPStatusError(f"HTTP {self.status_code} for {self.url}")
        return self

    def __repr__(self):
        return f"<Response [{self.status_code}]>"


class HTTPStatusError(Exception):
    pass


class HTTPError(Exception):
    pass


class Headers(dict):
    """Case-insensitive header lookup for responses."""

    def __getitem__(self, key):
        return dict.__getitem__(self, key.lower())

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default)

    def __contains__(self, key):
        return dict.__contains__(self, key.lower())


def make_http(send):
    """The `http` global. `send(dict) -> dict` is the Rust broker call (blocking on the
    supervisor socket); it is reachable only through these closures."""
    import base64 as _b64
    import json as _json
    import urllib.parse as _parse

    class Client:
        __slots__ = ()

        async def request(self, method, url, *, params=None, headers=None, json=None, data=None,
                          content=None, timeout=None, follow_redirects=True):
            if not isinstance(url, str):
                raise TypeError("url must be a string")
            if params:
                query = _parse.urlencode(params, doseq=True)
                url = url + ("&" if "?" in url else "?") + query
            header_list = [[str(k), str(v)] for k, v in (headers or {}).items()]
            body = b""
            if json is not None:
                body = _json.dumps(json).encode()
                if not any(k.lower() == "content-type" for k, _ in header_list):
                    header_list.append(["content-type", "application/json"])
            elif data is not None:
                if isinstance(data, dict):
                    body = _parse.urlencode(data, doseq=True).encode()
                    if not any(k.lower() == "content-type" for k, _ in header_list):
                        header_list.append(["content-type", "application/x-www-form-urlencoded"])
                else:
                    body = data.encode() if isinstance(data, str) else bytes(data)
            elif content is not None:
                body = content.encode() if isinstance(content, str) else bytes(content)
            reply = send({
                "method": str(method).upper(),
                "url": url,
                "headers": header_list,
                "body": _b64.b64encode(body).decode(),
                "timeout_ms": int(timeout * 1000) if timeout else None,
                "follow_redirects": bool(follow_redirects),
            })
            if "error" in reply:
                raise HTTPError(reply["error"])
            return Response(
                reply["status"],
                Headers((k.lower(), v) for k, v in reply["headers"]),
                _b64.b64decode(reply["body"]),
                reply["url"],
            )

        async def get(self, url, **kwargs):
            return await self.request("GET", url, **kwargs)

        async def post(self, url, **kwargs):
            return await self.request("POST", url, **kwargs)

        async def put(self, url, **kwargs):
            return await self.request("PUT", url, **kwargs)

        async def patch(self, url, **kwargs):
            return await self.request("PATCH", url, **kwargs)

        async def delete(self, url, **kwargs):
            return await self.request("DELETE", url, **kwargs)

        async def head(self, url, **kwargs):
            return await self.request("HEAD", url, **kwargs)

        async def options(self, url, **kwargs):
            return await self.request("OPTIONS", url, **kwargs)

    return Client()


class TCPError(Exception):
    pass


def make_tcp(send):
    """The `tcp` global: raw TCP to approved `host:port` targets. The broker owns the sockets;
    each method is one message to it (`protocol::TcpRequest`), so the tool never holds one."""
    import base64 as _b64

    def _call(message):
        reply = send(message)
        if "error" in reply:
            raise TCPError(reply["error"])
        return reply

    def _bytes(data):
        if isinstance(data, str):
            return data.encode()
        if isinstance(data, (bytes, bytearray, memoryview)):
            return bytes(data)
        raise TypeError("data must be bytes or str")

    def _ms(timeout):
        return None if timeout is None else max(1, int(float(timeout) * 1000))

    class Stream:
        """A broker-owned TCP stream. Closed when the tool's call ends, whatever happens."""

        __slots__ = ("_id", "peer", "_closed")

        def __init__(self, id_, peer):
            self._id = id_
            self.peer = peer
            self._closed = False

        async def send(self, data):
            return _call({"op": "send", "stream": self._id,
                          "data": _b64.b64encode(_bytes(data)).decode()})["sent"]

        async def sendall(self, data):
            await self.send(data)

        async def recv(self, max=65536, timeout=None):
            """Up to `max` bytes as they arrive; b"" at the end of the stream."""
            reply = _call({"op": "recv", "stream": self._id, "max": int(max), "until": None,
                           "timeout_ms": _ms(timeout)})
            return _b64.b64decode(reply["data"])

        async def recv_until(self, delimiter=b"\n", max=65536, timeout=None):
            """Bytes up to and including `delimiter` (or `max` bytes, or what came before the
            end of the stream)."""
            reply = _call({"op": "recv", "stream": self._id, "max": int(max),
                           "until": _b64.b64encode(_bytes(delimiter)).decode(),
                           "timeout_ms": _ms(timeout)})
            return _b64.b64decode(reply["data"])

        async def recv_exactly(self, n, timeout=None):
            """Exactly `n` bytes, or TCPError if the stream ends first."""
            out = b""
            while len(out) < n:
                chunk = await self.recv(n - len(out), timeout=timeout)
                if not chunk:
                    raise TCPError(f"the stream ended after {len(out)} of {n} bytes")
                out += chunk
            return out

        def _close(self):
            if not self._closed:
                self._closed = True
                _call({"op": "close", "stream": self._id})

        async def close(self):
            self._close()

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            self._close()
            return False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._close()
            return False

        def __repr__(self):
            return f"<tcp.Stream {self.peer}>"

    class TCP:
        __slots__ = ()

        async def connect(self, host, port, timeout=None):
            """A stream to an approved `host:port` (an approved LAN host, or a public host
            approved with that port)."""
            if not isinstance(host, str):
                raise TypeError("host must be a string")
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise TypeError("port must be an integer from 1 to 65535")
            reply = _call({"op": "connect", "host": host, "port": port,
                           "timeout_ms": _ms(timeout)})
            return Stream(reply["stream"], reply["peer"])

    return TCP()


def make_print(write):
    """`print` for tools: text goes to the capped capture buffer in Rust, never to a real fd."""

    def print(*values, sep=" ", end="\n", file=None, flush=False):
        if sep is None:
            sep = " "
        if end is None:
            end = "\n"
        write(str(sep).join(str(v) for v in values) + str(end))

    return print


# Pieces every run shares, built once in the zygote by `configure` (see python.rs `preload`).
_SHARED = {}


def configure(send, write, overrides, default_modules):
    """Called once in the zygote: the `http` client, `print`, the importer, the base builtins
    and the default modules' proxies, so a worker does not rebuild them for every call."""
    import builtins as real_builtins
    _SHARED["http"] = make_http(send)
    _SHARED["tcp"] = make_tcp(send)
    _SHARED["print"] = make_print(write)
    _SHARED["importer"] = make_importer(overrides)
    base = {name: getattr(real_builtins, name) for name in _SAFE_BUILTIN_NAMES}
    base["__build_class__"] = real_builtins.__build_class__
    base["print"] = _SHARED["print"]
    base["HTTPError"] = HTTPError
    base["HTTPStatusError"] = HTTPStatusError
    base["TCPError"] = TCPError
    _SHARED["builtins"] = base
    table = ModuleTable(default_modules, _SHARED["importer"])
    for name in default_modules:
        table.proxy(name)


def configure_content(image, audio, resource, progress):
    """Called once in the zygote after `configure`: the rich-result helpers and `progress`.
    Each is a Rust function (see content.rs), the first three returning a frozen Rust object;
    nothing here wraps them, so a tool has nothing of Python's to patch on the way."""
    base = _SHARED["builtins"]
    base["image"] = image
    base["audio"] = audio
    base["resource"] = resource
    base["progress"] = progress


# ---------------------------------------------------------------------------------------------
# Tools that ask back: ask / sample / roots
# ---------------------------------------------------------------------------------------------
# A worker is single-use, so a tool cannot wait for the client's answer: a helper whose answer
# is not among this round's records the request and ends the run (`InputRequired`). The origin
# asks the client (2025-11-25: over the session; 2026-07-28: an InputRequiredResult the client
# answers with a retry) and runs the tool again from the start with every answer so far.

MAX_INPUT_REQUESTS = 16
MAX_INPUT_KEY_CHARS = 64
_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CAPABILITY_OF = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}
_DEFAULT_PREFIX = {"elicitation/create": "ask", "sampling/createMessage": "sample", "roots/list": "roots"}


class InputRequired(BaseException):
    """Ends the run: the client must answer first. A BaseException so `except Exception` does
    not swallow it; a tool that catches it anyway still ends asking (its pending requests win
    over whatever `main` returns)."""


class InputUnavailable(Exception):
    """The caller cannot answer this kind of request (no MCP client, or it did not declare the
    capability). Check `client_can(name)` first to do without."""


class InputRequest:
    """One question for the client, made by `ask_request`, `sample_request`, `roots_request`
    and sent by `ask_all` (or by `ask`, `sample`, `roots` directly)."""

    __slots__ = ("method", "params")

    def __init__(self, method, params):
        self.method = method
        self.params = params


def ask_request(message, schema=None):
    """An elicitation (`elicitation/create`): `message` for the user and the JSON Schema of the
    object to fill in (flat properties; default: nothing but accept/decline)."""
    if not isinstance(message, str) or not message:
        raise TypeError("ask: the message must be a non-empty string")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise TypeError("ask: the schema must be a dict (a JSON Schema object)")
    return InputRequest("elicitation/create", {"message": message, "requestedSchema": schema})


def sample_request(prompt, *, max_tokens=256, system=None):
    """A completion from the client's model (`sampling/createMessage`)."""
    if not isinstance(prompt, str) or not prompt:
        raise TypeError("sample: the prompt must be a non-empty string")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise TypeError("sample: max_tokens must be a positive integer")
    params = {
        "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
        "maxTokens": max_tokens,
    }
    if system is not None:
        if not isinstance(system, str):
            raise TypeError("sample: system must be a string")
        params["systemPrompt"] = system
    return InputRequest("sampling/createMessage", params)


def roots_request():
    """The client's roots (`roots/list`)."""
    return InputRequest("roots/list", {})


def _elicitation_answer(answer):
    if not isinstance(answer, dict) or answer.get("action") not in ("accept", "decline", "cancel"):
        return False, None
    if answer["action"] != "accept":
        return True, None
    content = answer.get("content", {})
    return (True, content) if isinstance(content, dict) else (False, None)


def _sampling_answer(answer):
    if not isinstance(answer, dict):
        return False, None
    content = answer.get("content")
    blocks = content if isinstance(content, list) else [content]
    texts = [b.get("text") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
    if not texts or not all(isinstance(t, str) for t in texts):
        return False, None
    return True, "".join(texts)


def _roots_answer(answer):
    if not isinstance(answer, dict) or not isinstance(answer.get("roots"), list):
        return False, None
    roots = [r for r in answer["roots"] if isinstance(r, dict) and isinstance(r.get("uri"), str)]
    return True, roots


_READ_ANSWER = {
    "elicitation/create": _elicitation_answer,
    "sampling/createMessage": _sampling_answer,
    "roots/list": _roots_answer,
}


class _Asking:
    """One run's answers and requests. Built by `load` for every run; reached by tools only
    through the helper closures `make_asking` hands out."""

    def __init__(self, answers, capabilities):
        # `None`: no client behind this run (a test run).
        self.answers = answers
        self.capabilities = capabilities
        self.pending = {}
        self.asked = []
        self.counts = {}
        # The capability a helper needed and the client had not declared (python.rs reads it
        # when the run ends with InputUnavailable).
        self.missing = None

    def key_for(self, method, key):
        if key is None:
            prefix = _DEFAULT_PREFIX[method]
            self.counts[prefix] = self.counts.get(prefix, 0) + 1
            return f"{prefix}_{self.counts[prefix]}"
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(
                f"a request key is 1 to {MAX_INPUT_KEY_CHARS} letters, digits, '_', '.' or '-'"
            )
        return key

    def can(self, name):
        return self.capabilities is not None and name in self.capabilities

    def resolve(self, requests):
        """key -> InputRequest: the answers, or end the run asking for every missing one."""
        answers = {}
        missing = {}
        for key, request in requests.items():
            if not isinstance(request, InputRequest) or request.method not in _CAPABILITY_OF:
                raise TypeError("ask_all takes a dict of key -> ask_request/sample_request/roots_request")
            if key not in self.asked:
                self.asked.append(key)
            given = self.answers.get(key) if self.answers is not None else None
            if given is not None:
                usable, value = _READ_ANSWER[request.method](given)
                if usable:
                    answers[key] = value
                    continue
            capability = _CAPABILITY_OF[request.method]
            if self.answers is None:
                raise InputUnavailable(
                    f"no MCP client stands behind this run (a test run), so {request.method} "
                    f"({key!r}) cannot be answered; call the tool from an MCP client, or check "
                    f"client_can({capability!r}) first"
                )
            if not self.can(capability):
                self.missing = capability
                raise InputUnavailable(
                    f"the client did not declare the {capability} capability, so "
                    f"{request.method} ({key!r}) cannot be asked; check client_can({capability!r}) first"
                )
            missing[key] = {"method": request.method, "params": request.params}
        if len(set(self.pending) | set(missing)) > MAX_INPUT_REQUESTS:
            # Nothing of this call is recorded: the error, not a truncated round, is the outcome.
            raise ValueError(f"a run may ask at most {MAX_INPUT_REQUESTS} questions at once")
        self.pending.update(missing)
        if self.pending:
            raise InputRequired("the client must answer first; the tool runs again with the answers")
        return answers


_ASKING = [_Asking(None, None)]


def make_asking(asking):
    """The helpers a tool's builtins get for one run, closed over its `_Asking`."""

    def ask(message, schema=None, *, key=None):
        """Asks the user (elicitation): the accepted content dict, or None if declined."""
        name = asking.key_for("elicitation/create", key)
        return asking.resolve({name: ask_request(message, schema)})[name]

    def sample(prompt, *, max_tokens=256, system=None, key=None):
        """Asks the client's model (sampling): the reply text."""
        name = asking.key_for("sampling/createMessage", key)
        request = sample_request(prompt, max_tokens=max_tokens, system=system)
        return asking.resolve({name: request})[name]

    def roots(*, key=None):
        """The client's roots: a list of {"uri", "name"} dicts."""
        name = asking.key_for("roots/list", key)
        return asking.resolve({name: roots_request()})[name]

    def ask_all(requests):
        """Several questions in one round: {key: ask_request(...)/sample_request(...)/
        roots_request()} -> {key: answer}."""
        if not isinstance(requests, dict) or not requests:
            raise TypeError("ask_all takes a non-empty dict of key -> request")
        named = {_checked_key(asking, key): request for key, request in requests.items()}
        return asking.resolve(named)

    def client_can(name):
        """Whether the client declared `name` ("elicitation", "sampling", "roots")."""
        return asking.can(name)

    return {
        "ask": ask, "sample": sample, "roots": roots, "ask_all": ask_all,
        "ask_request": ask_request, "sample_request": sample_request,
        "roots_request": roots_request, "client_can": client_can,
        "InputUnavailable": InputUnavailable,
    }


def _checked_key(asking, key):
    if key is None:
        raise ValueError("ask_all needs a key for every request")
    return asking.key_for("roots/list", key)


def pending_requests():
    """After the run (python.rs): (requests, asked keys) when it ended asking, else None."""
    asking = _ASKING[0]
    if not asking.pending:
        return None
    return asking.pending, list(asking.asked)


def missing_capability():
    """After the run (python.rs): the undeclared capability a helper needed, or None."""
    return _ASKING[0].missing


def make_globals(allowed, secrets, asking=None):
    """A fresh globals dict for one tool run. `asking`: (answers, capabilities) of the call, or
    None when no client stands behind it."""
    table = ModuleTable(allowed, _SHARED["importer"])
    builtins = dict(_SHARED["builtins"])
    builtins["__import__"] = table.import_
    answers, capabilities = asking if asking is not None else (None, None)
    _ASKING[0] = _Asking(answers, capabilities)
    builtins.update(make_asking(_ASKING[0]))
    globals_ = {
        "__builtins__": builtins,
        "__name__": "tool",
        "secrets": types.MappingProxyType(dict(secrets)),
        "http": _SHARED["http"],
        "tcp": _SHARED["tcp"],
    }
    # The reference system gave tools `json` and `datetime` without an import; keep that.
    for name in ("json", "datetime"):
        if name in table.allowed:
            globals_[name] = table.proxy(name)
    return globals_


def load(source, allowed, secrets, asking=None):
    """Compiles and executes the module body; returns `main`."""
    code = compile(source, "<tool>", "exec", dont_inherit=True)
    globals_ = make_globals(allowed, secrets, asking)
    exec(code, globals_)
    main = globals_.get("main")
    if not callable(main):
        raise LookupError("the code defines no main function")
    return main


def call(main, arguments):
    """Calls main(**arguments); if it returns a coroutine, runs it to completion on the event
    loop built in the zygote (`make_loop`), which this worker adopts then (`_adopt_loop`). A
    sync tool never touches a loop."""
    result = main(**arguments)
    # types.CoroutineType, not asyncio.iscoroutine: the latter also accepts plain generators.
    if isinstance(result, types.CoroutineType):
        result = _adopt_loop().run_until_complete(result)
    return result


# The event loop every worker starts with: built once in the zygote (`make_loop`) and never run
# there. A fork copies the object, so each worker has its own copy of an unused loop; its three
# fd numbers are made to name this worker's own new epoll and socketpair before it reads a job
# (sandbox/src/worker.rs, `isolation::renew_loop_fds`), so no kernel object is shared either.
_LOOP = []


def make_loop(epoll_fd, self_read, self_write):
    """In the zygote, once: the template loop on the zygote's fds (which the worker replaces)."""
    _LOOP.append(PreparedLoop(epoll_fd, self_read, self_write))


def _adopt_loop():
    """The worker's loop. Its epoll fd is this worker's new epoll, empty: the self-pipe's read
    end, registered in the zygote's epoll when the loop was built, is registered again here."""
    loop = _LOOP[0]
    if len(_LOOP) == 1:
        loop._selector._selector.register(loop._ssock.fileno(), select.EPOLLIN)
        _LOOP.append(True)
    return loop


def run_closing(main, loop_fds):
    """The zygote's warm-up only: runs async `main()` on a `PreparedLoop` and closes it (and
    with it its three fds) before the zygote forks anything."""
    loop = PreparedLoop(*loop_fds)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


class _PreparedSelector(selectors.EpollSelector):
    """An epoll selector on an epoll fd the worker created before seccomp took
    `epoll_create1` away (`select.epoll.fromfd` makes no syscall)."""

    def __init__(self, epoll_fd):
        selectors._BaseSelectorImpl.__init__(self)
        self._selector = select.epoll.fromfd(epoll_fd)


class PreparedLoop(asyncio.SelectorEventLoop):
    """asyncio's own loop on three fds made for it (`isolation::loop_fds`): an epoll fd and a
    non-blocking unix socketpair for the self-pipe. Passing SOCK_NONBLOCK in the type gives the
    socket objects a zero timeout, as `setblocking(False)` would, without an `ioctl`; with
    family, type and proto given, `socket(fileno=…)` needs no `getsockopt` either."""

    def __init__(self, epoll_fd, self_read, self_write):
        self._prepared_pipe = (self_read, self_write)
        super().__init__(_PreparedSelector(epoll_fd))

    def _make_self_pipe(self):
        kind = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
        self_read, self_write = self._prepared_pipe
        self._ssock = socket.socket(socket.AF_UNIX, kind, 0, self_read)
        self._csock = socket.socket(socket.AF_UNIX, kind, 0, self_write)
        self._internal_fds += 1
        self._add_reader(self._ssock.fileno(), self._read_from_self)


def make_importer(overrides):
    """The real import behind proxies: our own modules (e.g. the linear-time `re`) first."""
    import importlib

    def importer(name):
        if name in overrides:
            return overrides[name]
        return importlib.import_module(name)

    return importer


def load_unguarded(source):
    """Layer tests only: full builtins and no static check, so the OS layers are attacked
    directly. Reachable only through a supervisor built with `Config::unguarded_python`."""
    globals_ = {"__name__": "tool", "http": _SHARED["http"], "print": _SHARED["print"], "secrets": {}}
    exec(compile(source, "<tool>", "exec", dont_inherit=True), globals_)
    return globals_["main"]
