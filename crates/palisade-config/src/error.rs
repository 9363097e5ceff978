//! Config errors: each names where it is (file or environment variable, line, field path) and
//! what is wrong, with what would be valid. Loading returns all of them at once.

use std::fmt;

/// One problem in a config.
///
/// `file` is the config file as given, or `env NAME` when the problem comes from the
/// environment variable `NAME`. `path` is the field path (`server.listen`,
/// `upstreams.app.endpoints[0]`, `routes[1].timeout`), empty for whole-document problems.
/// `line` is 1-based, present when the file gives one. `message` never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config, in the order a reader meets them (by file line, then the
/// environment). Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A field path built segment by segment; displays as `routes[1].timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_owned()));
        next
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub(crate) fn push(&mut self, segment: Segment) {
        self.0.push(segment);
    }

    pub(crate) fn pop(&mut self) {
        self.0.pop();
    }

    pub(crate) fn parent(&self) -> Self {
        let mut parent = self.clone();
        parent.pop();
        parent
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.0
            .iter()
            .any(|s| matches!(s, Segment::Key(k) if k == key))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A problem found by validation or secret resolution, before it is given a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    pub(crate) path: FieldPath,
    pub(crate) message: String,
}

impl Issue {
    pub(crate) fn new(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_with_and_without_line_and_path() {
        let mut e = ConfigError {
            file: "palisade.toml".into(),
            path: "routes[0].timeout".into(),
            line: Some(12),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "palisade.toml:12: routes[0].timeout: bad");
        e.line = None;
        assert_eq!(e.to_string(), "palisade.toml: routes[0].timeout: bad");
        e.path.clear();
        assert_eq!(e.to_string(), "palisade.toml: bad");
        let all = ConfigErrors(vec![e.clone(), e]);
        assert_eq!(all.to_string(), "palisade.toml: bad\npalisade.toml: bad");
    }

    #[test]
    fn field_paths_display_keys_and_indices() {
        let p = FieldPath::root().key("routes").index(1).key("timeout");
        assert_eq!(p.to_string(), "routes[1].timeout");
        assert_eq!(p.parent().to_string(), "routes[1]");
    }
}
