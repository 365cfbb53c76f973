//! One pass over a raw document and everything nested in it, without recursion (a hostile 16 MiB
//! frame can nest millions of levels): validates every element, bounds the nesting depth, and lets
//! a dialect refuse values. Errors name the field as a dotted path (`a.b.0.c`).

use bson::raw::{RawBsonRef, RawDocument, RawIter};

use crate::error::Error;

/// Why a walk stopped.
pub(crate) enum Problem {
    /// The bytes are not a valid BSON document (bad length, tag, UTF-8, bool, ...).
    Malformed(String),
    /// Nested deeper than the limit.
    TooDeep(u32),
    /// Valid BSON that the caller's check refused.
    Refused(String),
}

pub(crate) struct WalkError {
    pub path: String,
    pub problem: Problem,
}

impl WalkError {
    pub(crate) fn into_error(self, what: &str) -> Error {
        let at = if self.path.is_empty() { String::new() } else { format!(" at `{}`", self.path) };
        match self.problem {
            Problem::Malformed(message) => {
                Error::Decode { what: what.to_string(), message: format!("{message}{at}") }
            }
            Problem::TooDeep(limit) => Error::Decode {
                what: what.to_string(),
                message: format!("nested deeper than {limit} levels{at}"),
            },
            Problem::Refused(reason) => Error::PyBsonUnsupported { field: self.path, reason },
        }
    }
}

/// Visits every value of `doc` depth-first, in order. `max_depth` counts the top level as 1.
/// `check` returns a reason to refuse a value.
pub(crate) fn walk<'a>(
    doc: &'a RawDocument,
    max_depth: u32,
    mut check: impl FnMut(&RawBsonRef<'a>) -> Option<String>,
) -> Result<(), WalkError> {
    // Each level: its element iterator and the key it sits under (for error paths).
    let mut stack: Vec<(RawIter<'a>, &'a str)> = Vec::with_capacity(8);
    stack.push((doc.iter_elements(), ""));
    loop {
        let Some((iter, _)) = stack.last_mut() else { return Ok(()) };
        let element = match iter.next() {
            None => {
                stack.pop();
                continue;
            }
            Some(Ok(element)) => element,
            Some(Err(e)) => return Err(error(&stack, None, Problem::Malformed(e.to_string()))),
        };
        let key = element.key().as_str();
        let value =
            element.value().map_err(|e| error(&stack, Some(key), Problem::Malformed(e.to_string())))?;
        if let Some(reason) = check(&value) {
            return Err(error(&stack, Some(key), Problem::Refused(reason)));
        }
        let child = match value {
            RawBsonRef::Document(d) => d,
            RawBsonRef::Array(a) => RawDocument::from_bytes(a.as_bytes())
                .map_err(|e| error(&stack, Some(key), Problem::Malformed(e.to_string())))?,
            RawBsonRef::JavaScriptCodeWithScope(c) => c.scope,
            _ => continue,
        };
        if stack.len() >= max_depth as usize {
            return Err(error(&stack, Some(key), Problem::TooDeep(max_depth)));
        }
        stack.push((child.iter_elements(), key));
    }
}

fn error(stack: &[(RawIter<'_>, &str)], key: Option<&str>, problem: Problem) -> WalkError {
    let mut path = String::new();
    for part in stack.iter().skip(1).map(|(_, k)| *k).chain(key) {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(part);
    }
    WalkError { path, problem }
}
