//! `re` for tools, backed by Rust's linear-time `regex` engine so no pattern can make a tool
//! spin (ReDoS). The API follows Python's `re` for the common surface: `compile`, `search`,
//! `match`, `fullmatch`, `findall`, `finditer`, `sub`, `subn`, `split`, `escape`, the flags
//! `I M S X`, `Pattern` and `Match` objects with `group`/`groups`/`groupdict`/`start`/`end`/
//! `span`. Patterns that need backtracking (look-around, backreferences) are refused with a
//! clear `re.error`. Offsets are in characters, like Python's.

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

// Python code spells it `re.error`.
#[allow(non_camel_case_types)]
mod exception {
    pyo3::create_exception!(
        re,
        error,
        pyo3::exceptions::PyException,
        "A regular expression could not be compiled."
    );
}
use exception::error;

pub const IGNORECASE: u32 = 2;
pub const MULTILINE: u32 = 8;
pub const DOTALL: u32 = 16;
pub const UNICODE: u32 = 32;
pub const VERBOSE: u32 = 64;
pub const ASCII: u32 = 256;
const MAX_PATTERN_CHARS: usize = 10_000;
const MAX_CACHE: usize = 256;

/// Compiled patterns by (pattern, flags), like Python's own `re` cache.
type PatternCache = HashMap<(String, u32), Py<Pattern>>;
static CACHE: Mutex<Option<PatternCache>> = Mutex::new(None);

/// The `re` module object handed to tools through the import proxy.
pub fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let module = PyModule::new(py, "re")?;
    for (name, value) in [
        ("I", IGNORECASE),
        ("IGNORECASE", IGNORECASE),
        ("M", MULTILINE),
        ("MULTILINE", MULTILINE),
        ("S", DOTALL),
        ("DOTALL", DOTALL),
        ("U", UNICODE),
        ("UNICODE", UNICODE),
        ("X", VERBOSE),
        ("VERBOSE", VERBOSE),
        ("A", ASCII),
        ("ASCII", ASCII),
        ("NOFLAG", 0),
    ] {
        module.add(name, value)?;
    }
    module.add("error", py.get_type::<error>())?;
    module.add_class::<Pattern>()?;
    module.add_class::<Match>()?;
    module.add_function(wrap_pyfunction!(compile, &module)?)?;
    module.add_function(wrap_pyfunction!(search, &module)?)?;
    module.add_function(wrap_pyfunction!(match_, &module)?)?;
    module.add_function(wrap_pyfunction!(fullmatch, &module)?)?;
    module.add_function(wrap_pyfunction!(findall, &module)?)?;
    module.add_function(wrap_pyfunction!(finditer, &module)?)?;
    module.add_function(wrap_pyfunction!(sub, &module)?)?;
    module.add_function(wrap_pyfunction!(subn, &module)?)?;
    module.add_function(wrap_pyfunction!(split, &module)?)?;
    module.add_function(wrap_pyfunction!(escape, &module)?)?;
    module.add_function(wrap_pyfunction!(purge, &module)?)?;
    Ok(module)
}

#[pyclass(module = "re", name = "Pattern", frozen)]
pub struct Pattern {
    regex: regex::Regex,
    /// The same pattern anchored at the end, for `fullmatch`.
    full: regex::Regex,
    #[pyo3(get)]
    pattern: String,
    #[pyo3(get)]
    flags: u32,
    names: Vec<Option<String>>,
}

/// Python syntax → Rust syntax where they differ in spelling only.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('Z') => out.push_str("\\z"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn build(pattern: &str, flags: u32) -> PyResult<Pattern> {
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(error::new_err(format!(
            "the pattern is longer than {MAX_PATTERN_CHARS} characters"
        )));
    }
    let translated = translate(pattern);
    let make = |source: &str| {
        regex::RegexBuilder::new(source)
            .case_insensitive(flags & IGNORECASE != 0)
            .multi_line(flags & MULTILINE != 0)
            .dot_matches_new_line(flags & DOTALL != 0)
            .ignore_whitespace(flags & VERBOSE != 0)
            .size_limit(4 << 20)
            .dfa_size_limit(4 << 20)
            .nest_limit(128)
            .build()
    };
    let regex = make(&translated).map_err(|err| {
        let text = err.to_string();
        if text.contains("look-around") || text.contains("backreference") {
            error::new_err(format!(
                "this pattern needs look-around or backreferences, which the sandbox's linear-time \
                 regex engine does not support (it cannot be made to hang): {text}"
            ))
        } else {
            error::new_err(text)
        }
    })?;
    let full =
        make(&format!("(?:{translated})\\z")).map_err(|err| error::new_err(err.to_string()))?;
    let names = regex
        .capture_names()
        .map(|n| n.map(str::to_owned))
        .collect();
    Ok(Pattern {
        regex,
        full,
        pattern: pattern.to_owned(),
        flags,
        names,
    })
}

fn compiled<'py>(
    py: Python<'py>,
    pattern: &Bound<'py, PyAny>,
    flags: u32,
) -> PyResult<Bound<'py, Pattern>> {
    if let Ok(existing) = pattern.cast::<Pattern>() {
        return Ok(existing.clone());
    }
    let text = pattern
        .cast::<PyString>()
        .map_err(|_| {
            PyTypeError::new_err("the pattern must be a str (bytes patterns are not supported)")
        })?
        .to_str()?
        .to_owned();
    let key = (text, flags);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(hit) = cache.get(&key) {
        return Ok(hit.bind(py).clone());
    }
    let built = Bound::new(py, build(&key.0, flags)?)?;
    if cache.len() >= MAX_CACHE {
        cache.clear();
    }
    cache.insert(key, built.clone().unbind());
    Ok(built)
}

/// Char offset → byte offset (clamped to the text).
fn byte_at(text: &str, chars: isize) -> usize {
    let chars = if chars < 0 {
        (text.chars().count() as isize + chars).max(0) as usize
    } else {
        chars as usize
    };
    text.char_indices()
        .nth(chars)
        .map(|(b, _)| b)
        .unwrap_or(text.len())
}

fn char_at(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

fn text_of(string: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(string
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("expected a str to search (bytes are not supported)"))?
        .to_str()?
        .to_owned())
}

/// Successive non-overlapping matches from `start`, with Python's rules for empty matches.
fn each_match(
    regex: &regex::Regex,
    hay: &str,
    start: usize,
    mut visit: impl FnMut(&regex::Captures<'_>) -> PyResult<bool>,
) -> PyResult<()> {
    let mut at = start;
    while at <= hay.len() {
        let Some(caps) = regex.captures_at(hay, at) else {
            break;
        };
        let whole = caps
            .get(0)
            .map(|m| (m.start(), m.end()))
            .unwrap_or((at, at));
        if !visit(&caps)? {
            break;
        }
        at = if whole.1 == whole.0 {
            match hay[whole.1..].chars().next() {
                Some(c) => whole.1 + c.len_utf8(),
                None => break,
            }
        } else {
            whole.1
        };
    }
    Ok(())
}

impl Pattern {
    fn locations(caps: &regex::Captures<'_>) -> Vec<Option<(usize, usize)>> {
        (0..caps.len())
            .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
            .collect()
    }

    fn make_match(
        slf: &Bound<'_, Pattern>,
        text: &str,
        caps: &regex::Captures<'_>,
        pos: usize,
        endpos: usize,
    ) -> Match {
        Match {
            text: text.to_owned(),
            locations: Pattern::locations(caps),
            pattern: slf.clone().unbind(),
            pos,
            endpos,
        }
    }

    /// A match that must start at `pos`: leftmost-first search from there, so if any match
    /// begins at `pos` it is the one found. `regex` is the pattern (`match`) or the pattern
    /// anchored at the end (`fullmatch`).
    fn anchored(
        slf: &Bound<'_, Pattern>,
        regex: &regex::Regex,
        string: &Bound<'_, PyAny>,
        pos: isize,
        endpos: Option<isize>,
    ) -> PyResult<Option<Match>> {
        let text = text_of(string)?;
        let (start, end) = Pattern::bounds(&text, pos, endpos);
        Ok(regex
            .captures_at(&text[..end], start)
            .filter(|caps| caps.get(0).is_some_and(|m| m.start() == start))
            .map(|caps| Pattern::make_match(slf, &text, &caps, start, end)))
    }

    fn bounds(text: &str, pos: isize, endpos: Option<isize>) -> (usize, usize) {
        let end = endpos.map(|e| byte_at(text, e)).unwrap_or(text.len());
        let start = byte_at(text, pos).min(end);
        (start, end)
    }

    fn group_value<'py>(
        py: Python<'py>,
        hay: &str,
        caps: &regex::Captures<'_>,
        index: usize,
    ) -> Bound<'py, PyAny> {
        match caps.get(index) {
            Some(m) => PyString::new(py, &hay[m.start()..m.end()]).into_any(),
            None => py.None().into_bound(py),
        }
    }
}

#[pymethods]
impl Pattern {
    #[getter]
    fn groups(&self) -> usize {
        self.regex.captures_len() - 1
    }

    #[getter]
    fn groupindex<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (index, name) in self.names.iter().enumerate() {
            if let Some(name) = name {
                dict.set_item(name, index)?;
            }
        }
        Ok(dict)
    }

    #[pyo3(signature = (string, pos=0, endpos=None))]
    fn search(
        slf: &Bound<'_, Self>,
        string: &Bound<'_, PyAny>,
        pos: isize,
        endpos: Option<isize>,
    ) -> PyResult<Option<Match>> {
        let text = text_of(string)?;
        let (start, end) = Pattern::bounds(&text, pos, endpos);
        let me = slf.get();
        Ok(me
            .regex
            .captures_at(&text[..end], start)
            .map(|caps| Pattern::make_match(slf, &text, &caps, start, end)))
    }

    #[pyo3(name = "match", signature = (string, pos=0, endpos=None))]
    fn match_(
        slf: &Bound<'_, Self>,
        string: &Bound<'_, PyAny>,
        pos: isize,
        endpos: Option<isize>,
    ) -> PyResult<Option<Match>> {
        Pattern::anchored(slf, &slf.get().regex, string, pos, endpos)
    }

    #[pyo3(signature = (string, pos=0, endpos=None))]
    fn fullmatch(
        slf: &Bound<'_, Self>,
        string: &Bound<'_, PyAny>,
        pos: isize,
        endpos: Option<isize>,
    ) -> PyResult<Option<Match>> {
        Pattern::anchored(slf, &slf.get().full, string, pos, endpos)
    }

    #[pyo3(signature = (string, pos=0, endpos=None))]
    fn findall<'py>(
        slf: &Bound<'py, Self>,
        string: &Bound<'py, PyAny>,
        pos: isize,
        endpos: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let text = text_of(string)?;
        let (start, end) = Pattern::bounds(&text, pos, endpos);
        let hay = &text[..end];
        let me = slf.get();
        let groups = me.regex.captures_len() - 1;
        let out = PyList::empty(py);
        each_match(&me.regex, hay, start, |caps| {
            let item = match groups {
                0 => Pattern::group_value(py, hay, caps, 0),
                1 => caps
                    .get(1)
                    .map(|m| PyString::new(py, m.as_str()).into_any())
                    .unwrap_or_else(|| PyString::new(py, "").into_any()),
                _ => {
                    let items: Vec<Bound<'py, PyAny>> = (1..=groups)
                        .map(|i| {
                            caps.get(i)
                                .map(|m| PyString::new(py, m.as_str()).into_any())
                                .unwrap_or_else(|| PyString::new(py, "").into_any())
                        })
                        .collect();
                    PyTuple::new(py, items)?.into_any()
                }
            };
            out.append(item)?;
            Ok(true)
        })?;
        Ok(out)
    }

    #[pyo3(signature = (string, pos=0, endpos=None))]
    fn finditer<'py>(
        slf: &Bound<'py, Self>,
        string: &Bound<'py, PyAny>,
        pos: isize,
        endpos: Option<isize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let text = text_of(string)?;
        let (start, end) = Pattern::bounds(&text, pos, endpos);
        let out = PyList::empty(py);
        each_match(&slf.get().regex, &text[..end], start, |caps| {
            out.append(Bound::new(
                py,
                Pattern::make_match(slf, &text, caps, start, end),
            )?)?;
            Ok(true)
        })?;
        out.as_any().try_iter().map(Bound::into_any)
    }

    #[pyo3(signature = (repl, string, count=0))]
    fn sub<'py>(
        slf: &Bound<'py, Self>,
        repl: &Bound<'py, PyAny>,
        string: &Bound<'py, PyAny>,
        count: usize,
    ) -> PyResult<Bound<'py, PyString>> {
        let (text, _) = Pattern::substitute(slf, repl, string, count)?;
        Ok(PyString::new(slf.py(), &text))
    }

    #[pyo3(signature = (repl, string, count=0))]
    fn subn<'py>(
        slf: &Bound<'py, Self>,
        repl: &Bound<'py, PyAny>,
        string: &Bound<'py, PyAny>,
        count: usize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let (text, n) = Pattern::substitute(slf, repl, string, count)?;
        PyTuple::new(
            slf.py(),
            [
                PyString::new(slf.py(), &text).into_any(),
                n.into_pyobject(slf.py())?.into_any(),
            ],
        )
    }

    #[pyo3(signature = (string, maxsplit=0))]
    fn split<'py>(
        slf: &Bound<'py, Self>,
        string: &Bound<'py, PyAny>,
        maxsplit: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let text = text_of(string)?;
        let me = slf.get();
        let out = PyList::empty(py);
        let mut last = 0;
        let mut splits = 0;
        each_match(&me.regex, &text, 0, |caps| {
            if maxsplit != 0 && splits >= maxsplit {
                return Ok(false);
            }
            let whole = caps
                .get(0)
                .map(|m| (m.start(), m.end()))
                .unwrap_or((last, last));
            out.append(&text[last..whole.0])?;
            for index in 1..caps.len() {
                out.append(Pattern::group_value(py, &text, caps, index))?;
            }
            last = whole.1;
            splits += 1;
            Ok(true)
        })?;
        out.append(&text[last..])?;
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!("re.compile({:?})", self.pattern)
    }
}

impl Pattern {
    fn substitute(
        slf: &Bound<'_, Pattern>,
        repl: &Bound<'_, PyAny>,
        string: &Bound<'_, PyAny>,
        count: usize,
    ) -> PyResult<(String, usize)> {
        let py = slf.py();
        let text = text_of(string)?;
        let me = slf.get();
        let template = match repl.cast::<PyString>() {
            Ok(s) => Some(parse_template(s.to_str()?, &me.names)?),
            Err(_) if repl.is_callable() => None,
            Err(_) => return Err(PyTypeError::new_err("repl must be a str or a function")),
        };
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut done = 0;
        each_match(&me.regex, &text, 0, |caps| {
            if count != 0 && done >= count {
                return Ok(false);
            }
            let whole = caps
                .get(0)
                .map(|m| (m.start(), m.end()))
                .unwrap_or((last, last));
            out.push_str(&text[last..whole.0]);
            match &template {
                Some(pieces) => expand(pieces, caps, &mut out),
                None => {
                    let found =
                        Bound::new(py, Pattern::make_match(slf, &text, caps, 0, text.len()))?;
                    let replacement = repl.call1((found,))?;
                    let replacement = replacement.cast::<PyString>().map_err(|_| {
                        PyTypeError::new_err("the replacement function must return a str")
                    })?;
                    out.push_str(replacement.to_str()?);
                }
            }
            last = whole.1;
            done += 1;
            Ok(true)
        })?;
        out.push_str(&text[last..]);
        Ok((out, done))
    }
}

enum Piece {
    Literal(String),
    Group(usize),
}

/// Python's replacement template syntax: `\1`, `\g<1>`, `\g<name>`, and the usual escapes.
fn parse_template(template: &str, names: &[Option<String>]) -> PyResult<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = template.chars().peekable();
    let groups = names.len();
    let group_index = |name: &str| -> PyResult<usize> {
        if let Ok(index) = name.parse::<usize>() {
            if index < groups {
                return Ok(index);
            }
            return Err(error::new_err(format!("invalid group reference {index}")));
        }
        names
            .iter()
            .position(|n| n.as_deref() == Some(name))
            .ok_or_else(|| PyIndexError::new_err(format!("unknown group name {name:?}")))
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            literal.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            return Err(error::new_err("bad escape (end of pattern)"));
        };
        let group = match next {
            'n' => {
                literal.push('\n');
                None
            }
            't' => {
                literal.push('\t');
                None
            }
            'r' => {
                literal.push('\r');
                None
            }
            'f' => {
                literal.push('\x0c');
                None
            }
            'v' => {
                literal.push('\x0b');
                None
            }
            'a' => {
                literal.push('\x07');
                None
            }
            '\\' => {
                literal.push('\\');
                None
            }
            'g' => {
                if chars.next() != Some('<') {
                    return Err(error::new_err("missing < in \\g<...>"));
                }
                let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                Some(group_index(&name)?)
            }
            d if d.is_ascii_digit() => {
                let mut digits = d.to_string();
                if let Some(second) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(second);
                    chars.next();
                }
                Some(group_index(&digits)?)
            }
            other if other.is_ascii_alphabetic() => {
                return Err(error::new_err(format!("bad escape \\{other}")));
            }
            other => {
                literal.push('\\');
                literal.push(other);
                None
            }
        };
        if let Some(index) = group {
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Group(index));
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

fn expand(pieces: &[Piece], caps: &regex::Captures<'_>, out: &mut String) {
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Group(index) => {
                if let Some(m) = caps.get(*index) {
                    out.push_str(m.as_str());
                }
            }
        }
    }
}

#[pyclass(module = "re", name = "Match", frozen)]
pub struct Match {
    text: String,
    /// Byte ranges of every group (0 = the whole match).
    locations: Vec<Option<(usize, usize)>>,
    pattern: Py<Pattern>,
    pos: usize,
    endpos: usize,
}

impl Match {
    fn index(&self, py: Python<'_>, group: &Bound<'_, PyAny>) -> PyResult<usize> {
        let found = if let Ok(index) = group.extract::<usize>() {
            Some(index).filter(|index| *index < self.locations.len())
        } else if let Ok(name) = group.extract::<String>() {
            let pattern = self.pattern.bind(py).get();
            pattern
                .names
                .iter()
                .position(|n| n.as_deref() == Some(name.as_str()))
        } else {
            None
        };
        if let Some(index) = found {
            return Ok(index);
        }
        Err(PyIndexError::new_err("no such group"))
    }

    fn value<'py>(
        &self,
        py: Python<'py>,
        index: usize,
        default: Option<&Bound<'py, PyAny>>,
    ) -> Bound<'py, PyAny> {
        match self.locations[index] {
            Some((start, end)) => PyString::new(py, &self.text[start..end]).into_any(),
            None => default.cloned().unwrap_or_else(|| py.None().into_bound(py)),
        }
    }

    fn span_of(&self, index: usize) -> (isize, isize) {
        match self.locations[index] {
            Some((start, end)) => (
                char_at(&self.text, start) as isize,
                char_at(&self.text, end) as isize,
            ),
            None => (-1, -1),
        }
    }
}

#[pymethods]
impl Match {
    #[pyo3(signature = (*groups))]
    fn group<'py>(
        &self,
        py: Python<'py>,
        groups: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match groups.len() {
            0 => Ok(self.value(py, 0, None)),
            1 => Ok(self.value(py, self.index(py, &groups.get_item(0)?)?, None)),
            _ => {
                let mut items = Vec::with_capacity(groups.len());
                for group in groups.iter() {
                    items.push(self.value(py, self.index(py, &group)?, None));
                }
                Ok(PyTuple::new(py, items)?.into_any())
            }
        }
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        group: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.value(py, self.index(py, group)?, None))
    }

    #[pyo3(signature = (default=None))]
    fn groups<'py>(
        &self,
        py: Python<'py>,
        default: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            (1..self.locations.len()).map(|i| self.value(py, i, default)),
        )
    }

    #[pyo3(signature = (default=None))]
    fn groupdict<'py>(
        &self,
        py: Python<'py>,
        default: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        let pattern = self.pattern.bind(py).get();
        for (index, name) in pattern.names.iter().enumerate() {
            if let Some(name) = name {
                dict.set_item(name, self.value(py, index, default))?;
            }
        }
        Ok(dict)
    }

    #[pyo3(signature = (group=None))]
    fn start(&self, py: Python<'_>, group: Option<&Bound<'_, PyAny>>) -> PyResult<isize> {
        let index = group.map(|g| self.index(py, g)).transpose()?.unwrap_or(0);
        Ok(self.span_of(index).0)
    }

    #[pyo3(signature = (group=None))]
    fn end(&self, py: Python<'_>, group: Option<&Bound<'_, PyAny>>) -> PyResult<isize> {
        let index = group.map(|g| self.index(py, g)).transpose()?.unwrap_or(0);
        Ok(self.span_of(index).1)
    }

    #[pyo3(signature = (group=None))]
    fn span(&self, py: Python<'_>, group: Option<&Bound<'_, PyAny>>) -> PyResult<(isize, isize)> {
        let index = group.map(|g| self.index(py, g)).transpose()?.unwrap_or(0);
        Ok(self.span_of(index))
    }

    fn expand(&self, py: Python<'_>, template: &str) -> PyResult<String> {
        let pattern = self.pattern.bind(py).get();
        let pieces = parse_template(template, &pattern.names)?;
        let mut out = String::new();
        for piece in &pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Group(index) => {
                    if let Some((start, end)) = self.locations[*index] {
                        out.push_str(&self.text[start..end]);
                    }
                }
            }
        }
        Ok(out)
    }

    #[getter]
    fn string(&self) -> &str {
        &self.text
    }

    #[getter]
    fn re(&self, py: Python<'_>) -> Py<Pattern> {
        self.pattern.clone_ref(py)
    }

    #[getter]
    fn pos(&self) -> usize {
        char_at(&self.text, self.pos)
    }

    #[getter]
    fn endpos(&self) -> usize {
        char_at(&self.text, self.endpos)
    }

    #[getter]
    fn lastindex(&self) -> Option<usize> {
        (1..self.locations.len())
            .rev()
            .find(|i| self.locations[*i].is_some())
    }

    fn __bool__(&self) -> bool {
        true
    }

    fn __repr__(&self) -> String {
        let (start, end) = self.span_of(0);
        let matched = self.locations[0]
            .map(|(s, e)| &self.text[s..e])
            .unwrap_or("");
        format!("<re.Match object; span=({start}, {end}), match={matched:?}>")
    }
}

#[pyfunction]
#[pyo3(signature = (pattern, flags=0))]
fn compile<'py>(
    py: Python<'py>,
    pattern: &Bound<'py, PyAny>,
    flags: u32,
) -> PyResult<Bound<'py, Pattern>> {
    compiled(py, pattern, flags)
}

#[pyfunction]
#[pyo3(signature = (pattern, string, flags=0))]
fn search(
    py: Python<'_>,
    pattern: &Bound<'_, PyAny>,
    string: &Bound<'_, PyAny>,
    flags: u32,
) -> PyResult<Option<Match>> {
    Pattern::search(&compiled(py, pattern, flags)?, string, 0, None)
}

#[pyfunction]
#[pyo3(name = "match", signature = (pattern, string, flags=0))]
fn match_(
    py: Python<'_>,
    pattern: &Bound<'_, PyAny>,
    string: &Bound<'_, PyAny>,
    flags: u32,
) -> PyResult<Option<Match>> {
    Pattern::match_(&compiled(py, pattern, flags)?, string, 0, None)
}

#[pyfunction]
#[pyo3(signature = (pattern, string, flags=0))]
fn fullmatch(
    py: Python<'_>,
    pattern: &Bound<'_, PyAny>,
    string: &Bound<'_, PyAny>,
    flags: u32,
) -> PyResult<Option<Match>> {
    Pattern::fullmatch(&compiled(py, pattern, flags)?, string, 0, None)
}

#[pyfunction]
#[pyo3(signature = (pattern, string, flags=0))]
fn findall<'py>(
    py: Python<'py>,
    pattern: &Bound<'py, PyAny>,
    string: &Bound<'py, PyAny>,
    flags: u32,
) -> PyResult<Bound<'py, PyList>> {
    Pattern::findall(&compiled(py, pattern, flags)?, string, 0, None)
}

#[pyfunction]
#[pyo3(signature = (pattern, string, flags=0))]
fn finditer<'py>(
    py: Python<'py>,
    pattern: &Bound<'py, PyAny>,
    string: &Bound<'py, PyAny>,
    flags: u32,
) -> PyResult<Bound<'py, PyAny>> {
    Pattern::finditer(&compiled(py, pattern, flags)?, string, 0, None)
}

#[pyfunction]
#[pyo3(signature = (pattern, repl, string, count=0, flags=0))]
fn sub<'py>(
    py: Python<'py>,
    pattern: &Bound<'py, PyAny>,
    repl: &Bound<'py, PyAny>,
    string: &Bound<'py, PyAny>,
    count: usize,
    flags: u32,
) -> PyResult<Bound<'py, PyString>> {
    Pattern::sub(&compiled(py, pattern, flags)?, repl, string, count)
}

#[pyfunction]
#[pyo3(signature = (pattern, repl, string, count=0, flags=0))]
fn subn<'py>(
    py: Python<'py>,
    pattern: &Bound<'py, PyAny>,
    repl: &Bound<'py, PyAny>,
    string: &Bound<'py, PyAny>,
    count: usize,
    flags: u32,
) -> PyResult<Bound<'py, PyTuple>> {
    Pattern::subn(&compiled(py, pattern, flags)?, repl, string, count)
}

#[pyfunction]
#[pyo3(signature = (pattern, string, maxsplit=0, flags=0))]
fn split<'py>(
    py: Python<'py>,
    pattern: &Bound<'py, PyAny>,
    string: &Bound<'py, PyAny>,
    maxsplit: usize,
    flags: u32,
) -> PyResult<Bound<'py, PyList>> {
    Pattern::split(&compiled(py, pattern, flags)?, string, maxsplit)
}

#[pyfunction]
fn escape(pattern: &str) -> String {
    regex::escape(pattern)
}

#[pyfunction]
fn purge() {
    if let Some(cache) = CACHE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        cache.clear();
    }
}
