//! How a verifier reads the request's headers, whatever holds them.
//!
//! A header that arrives twice is ambiguous (which line did the signer mean?), so a lookup
//! reports it as [`Lookup::Repeated`] instead of picking one, and the verifier refuses it.

use super::{Failure, Field, MAX_HEADER_BYTES};
use crate::pipeline::head::Line;

/// Every line of one header name, as far as a verifier cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    Absent,
    One(&'a [u8]),
    /// Two lines or more with this name.
    Repeated,
}

impl<'a> Lookup<'a> {
    /// Summarizes the values of every line with the name.
    pub fn from_values(mut values: impl Iterator<Item = &'a [u8]>) -> Self {
        match (values.next(), values.next()) {
            (None, _) => Self::Absent,
            (Some(value), None) => Self::One(value),
            (Some(_), Some(_)) => Self::Repeated,
        }
    }
}

/// A request's headers. `name` is lower case; implementations compare without regard to case.
pub trait Headers {
    fn lookup(&self, name: &str) -> Lookup<'_>;
}

impl Headers for http::HeaderMap {
    fn lookup(&self, name: &str) -> Lookup<'_> {
        Lookup::from_values(self.get_all(name).iter().map(|v| v.as_bytes()))
    }
}

/// `(name, value)` pairs, e.g. from a test or a file the CLI read.
impl<N: AsRef<[u8]>, V: AsRef<[u8]>> Headers for [(N, V)] {
    fn lookup(&self, name: &str) -> Lookup<'_> {
        Lookup::from_values(
            self.iter()
                .filter(|(n, _)| n.as_ref().eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| v.as_ref()),
        )
    }
}

/// The header lines of a parsed request head (`RequestHead::lines`).
impl Headers for [Line<'_>] {
    fn lookup(&self, name: &str) -> Lookup<'_> {
        Lookup::from_values(
            self.iter()
                .filter(|l| l.name.eq_ignore_ascii_case(name.as_bytes()))
                .map(|l| l.value),
        )
    }
}

/// The value of the header `field` is read from, under any of `names` (aliases such as
/// `webhook-id` and `svix-id`): one line in all, or lines that agree byte for byte. Bounded in
/// size, trimmed of surrounding blanks, and never empty.
pub(super) fn read<'h, H: Headers + ?Sized>(
    headers: &'h H,
    names: &[&str],
    field: Field,
) -> Result<Option<&'h [u8]>, Failure> {
    let mut found: Option<&[u8]> = None;
    for name in names {
        match headers.lookup(name) {
            Lookup::Absent => {}
            Lookup::Repeated => return Err(Failure::DuplicateHeader(field)),
            Lookup::One(value) => match found {
                Some(earlier) if earlier != value => return Err(Failure::DuplicateHeader(field)),
                _ => found = Some(value),
            },
        }
    }
    let Some(value) = found else {
        return Ok(None);
    };
    if value.len() > MAX_HEADER_BYTES {
        return Err(Failure::HeaderTooLarge(field));
    }
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(Failure::MalformedHeader(field));
    }
    Ok(Some(value))
}

/// [`read`], for a header the scheme cannot do without.
pub(super) fn require<'h, H: Headers + ?Sized>(
    headers: &'h H,
    names: &[&str],
    field: Field,
) -> Result<&'h [u8], Failure> {
    read(headers, names, field)?.ok_or(Failure::MissingHeader(field))
}
