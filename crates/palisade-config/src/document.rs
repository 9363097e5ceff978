//! The parsed TOML document with its spans, and the mapping from spans back to locations.
//!
//! Values set from the environment are inserted into the same tree with spans past the end of
//! the file text, one block of spans per variable, so that an error anywhere in such a value is
//! reported against the variable (`env PALISADE_SERVER__LISTN`) instead of a line of the file.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, FieldPath, Issue, Segment};

/// Spans reserved per environment variable (one per node it creates).
const ENV_BLOCK: usize = 1 << 16;

pub(crate) struct Document<'a> {
    file: &'a str,
    text: &'a str,
    pub(crate) root: Spanned<DeTable<'a>>,
    env_vars: Vec<String>,
}

/// Hands out distinct spans for the nodes one environment variable creates.
pub(crate) struct EnvSpans {
    start: usize,
    next: usize,
}

impl EnvSpans {
    pub(crate) fn next(&mut self) -> Range<usize> {
        let start = self.start.saturating_add(self.next);
        self.next = (self.next + 1).min(ENV_BLOCK - 1);
        start..start.saturating_add(1)
    }
}

/// Where an error's span falls in the tree.
pub(crate) struct Hit {
    /// Path of the deepest key or value containing the span.
    pub(crate) path: FieldPath,
    /// The span is the key itself (e.g. an unknown field), not its value.
    pub(crate) on_key: bool,
    /// The value there, when it is a string.
    pub(crate) text: Option<String>,
}

impl<'a> Document<'a> {
    /// Parses the file text; a syntax error is returned with its line.
    pub(crate) fn parse(file: &'a str, text: &'a str) -> Result<Self, ConfigError> {
        match DeTable::parse(text) {
            Ok(root) => Ok(Self {
                file,
                text,
                root,
                env_vars: Vec::new(),
            }),
            Err(error) => {
                let (line, column) = match error.span() {
                    Some(span) => {
                        let (line, column) = line_column(text, span.start);
                        (Some(line), Some(column))
                    }
                    None => (None, None),
                };
                let at = column
                    .map(|c| format!(" at column {c}"))
                    .unwrap_or_default();
                Err(ConfigError {
                    file: file.to_owned(),
                    path: String::new(),
                    line,
                    message: format!(
                        "invalid TOML{at}: {}",
                        error.message().trim_end().replace('`', "'")
                    ),
                })
            }
        }
    }

    /// Registers an environment variable; the spans it hands out map back to that variable.
    pub(crate) fn add_env_var(&mut self, name: &str) -> EnvSpans {
        self.env_vars.push(name.to_owned());
        let var = self.env_vars.len() - 1;
        let start = self
            .text
            .len()
            .saturating_add(1)
            .saturating_add(var.saturating_mul(ENV_BLOCK));
        EnvSpans { start, next: 0 }
    }

    /// File (or `env NAME`) and line of a span.
    fn place(&self, span: Option<&Range<usize>>) -> (String, Option<usize>) {
        let Some(span) = span else {
            return (self.file.to_owned(), None);
        };
        if span.start > self.text.len() {
            let var = (span.start - self.text.len() - 1) / ENV_BLOCK;
            if let Some(name) = self.env_vars.get(var) {
                return (format!("env {name}"), None);
            }
            return (self.file.to_owned(), None);
        }
        (
            self.file.to_owned(),
            Some(line_column(self.text, span.start).0),
        )
    }

    /// An error at a span, with the given path.
    pub(crate) fn error_at(
        &self,
        span: Option<&Range<usize>>,
        path: &FieldPath,
        message: String,
    ) -> ConfigError {
        let (file, line) = self.place(span);
        ConfigError {
            file,
            path: path.to_string(),
            line,
            message,
        }
    }

    /// An issue found after deserialization, placed at the deepest part of its path present in
    /// the document (the field, else the table it would be in).
    pub(crate) fn locate_issue(&self, issue: Issue) -> ConfigError {
        let span = self.span_of(&issue.path);
        self.error_at(span.as_ref(), &issue.path, issue.message)
    }

    /// The span of the deepest node along `path`.
    pub(crate) fn span_of(&self, path: &FieldPath) -> Option<Range<usize>> {
        let mut found = None;
        let mut node: Option<&DeValue<'a>> = None; // None: the root table
        for segment in path.segments() {
            let next = match (segment, node) {
                (Segment::Key(key), None) => self.root.get_ref().get(key.as_str()),
                (Segment::Key(key), Some(DeValue::Table(t))) => t.get(key.as_str()),
                (Segment::Index(i), Some(DeValue::Array(items))) => items.get(*i),
                _ => None,
            };
            let Some(next) = next else { break };
            found = Some(next.span());
            node = Some(next.get_ref());
        }
        found
    }

    /// Finds where a span falls in the tree: the deepest key or value containing it.
    pub(crate) fn locate(&self, span: &Range<usize>) -> Option<Hit> {
        let mut best = None;
        let mut path = FieldPath::root();
        search_table(self.root.get_ref(), span, &mut path, &mut best);
        best
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

fn record(best: &mut Option<Hit>, path: &FieldPath, on_key: bool, value: &DeValue<'_>) {
    let deeper = best.as_ref().is_none_or(|b| path.len() > b.path.len());
    if deeper {
        *best = Some(Hit {
            path: path.clone(),
            on_key,
            text: value.as_str().map(str::to_owned),
        });
    }
}

fn search_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    path: &mut FieldPath,
    best: &mut Option<Hit>,
) {
    for (key, value) in table {
        path.push(Segment::Key(key.get_ref().to_string()));
        search_value(value, Some(&key.span()), span, path, best);
        path.pop();
    }
}

fn search_value(
    value: &Spanned<DeValue<'_>>,
    key_span: Option<&Range<usize>>,
    span: &Range<usize>,
    path: &mut FieldPath,
    best: &mut Option<Hit>,
) {
    if key_span.is_some_and(|k| contains(k, span)) {
        record(best, path, true, value.get_ref());
    }
    if contains(&value.span(), span) {
        record(best, path, false, value.get_ref());
    }
    match value.get_ref() {
        DeValue::Table(t) => search_table(t, span, path, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                search_value(item, None, span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let offset = offset.min(bytes.len());
    let before = &bytes[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        assert_eq!(line_column("a\nbc", 0), (1, 1));
        assert_eq!(line_column("a\nbc", 3), (2, 2));
        assert_eq!(line_column("a", 99), (1, 2));
    }
}
