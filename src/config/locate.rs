use std::ops::Range;
use std::path::{Path, PathBuf};
use toml_edit::{Document, Item, Table, Value};

/// One step of a path into the config: a key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(k: &str) -> Self {
        Seg::Key(k.to_string())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// A problem found in the config, pointing at a place either by path (found in the document
/// afterwards, so checks need not carry spans around) or by a span the parser gave.
#[derive(Debug, Clone)]
pub struct Problem {
    pub path: Vec<Seg>,
    pub span: Option<Range<usize>>,
    pub message: String,
    /// Point at the last key of `path` itself rather than at its value: an unknown key.
    pub at_key: bool,
}

impl Problem {
    pub fn at(path: Vec<Seg>, message: impl Into<String>) -> Self {
        Problem {
            path,
            span: None,
            message: message.into(),
            at_key: false,
        }
    }

    /// A problem with the key at the end of `path` (a key that should not be there).
    pub fn at_key(path: Vec<Seg>, message: impl Into<String>) -> Self {
        Problem {
            at_key: true,
            ..Problem::at(path, message)
        }
    }

    /// A reference the checks should have refused, found while resolving: a config error
    /// rather than a panic.
    pub fn internal(what: &str) -> Self {
        Problem::at(
            vec![],
            format!("{what} (a check missed this: please report it as a bug)"),
        )
    }

    pub fn at_span(span: Option<Range<usize>>, message: String) -> Self {
        Problem {
            path: Vec::new(),
            span,
            message,
            at_key: false,
        }
    }
}

/// A problem with its place in the file, printed as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

pub fn locate(file: &Path, text: &str, problem: Problem) -> Located {
    let span = problem
        .span
        .clone()
        .or_else(|| span_of_path(text, &problem.path, problem.at_key));
    let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    Located {
        file: file.to_path_buf(),
        line,
        column,
        message: problem.message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// The span of the deepest item on `path` that exists (of its last key instead, `at_key`): a
/// missing key points at its table.
fn span_of_path(text: &str, path: &[Seg], at_key: bool) -> Option<Range<usize>> {
    let doc = Document::parse(text).ok()?;
    let mut node = Node::Item(doc.as_item());
    let mut best = None;
    for (i, seg) in path.iter().enumerate() {
        if at_key && i + 1 == path.len() {
            if let Some(span) = key_span(node, seg) {
                return Some(span);
            }
        }
        let Some((next, span)) = child(node, seg) else {
            break;
        };
        best = span.or(best);
        node = next;
    }
    best
}

fn key_span(node: Node<'_>, seg: &Seg) -> Option<Range<usize>> {
    match (node, seg) {
        (Node::Item(Item::Table(t)) | Node::Table(t), Seg::Key(k)) => t.key(k)?.span(),
        (
            Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)),
            Seg::Key(k),
        ) => t.key(k)?.span(),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

fn child<'a>(node: Node<'a>, seg: &Seg) -> Option<(Node<'a>, Option<Range<usize>>)> {
    match (node, seg) {
        (Node::Item(Item::Table(t)) | Node::Table(t), Seg::Key(k)) => {
            t.get(k).map(|i| (Node::Item(i), i.span()))
        }
        (Node::Item(Item::Value(v)), _) => child(Node::Value(v), seg),
        (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => {
            a.get(*i).map(|t| (Node::Table(t), t.span()))
        }
        (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => {
            t.get(k).map(|v| (Node::Value(v), v.span()))
        }
        (Node::Value(Value::Array(a)), Seg::Index(i)) => {
            a.get(*i).map(|v| (Node::Value(v), v.span()))
        }
        _ => None,
    }
}
