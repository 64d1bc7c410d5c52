//! Values as the manager's server keeps them: CBOR (RFC 8949), a
//! self-describing binary encoding, so that the server can print, compare
//! and sort values whose Rust type it does not know.
//!
//! Clients encode straight from their type to CBOR and decode straight back;
//! the server only parses a value into a [`ciborium::Value`] tree when it
//! must look inside (printing, sorting, searching a list). Searches compare
//! decoded values with Python's `==` ([`Needle`]): the same value may be
//! encoded in more than one way (a `HashMap` writes its entries in its
//! hasher's order; `-0.0` and `0.0` differ in their bits).

use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use ciborium::Value as Cbor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use crate::{Error, Result};

/// One encoded value.
pub(crate) type Blob = ByteBuf;

/// Encodes `value` as CBOR.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Blob> {
    let mut out = Vec::with_capacity(32);
    STORING.with(|depth| depth.set(depth.get() + 1));
    let result = ciborium::into_writer(value, &mut out);
    STORING.with(|depth| depth.set(depth.get() - 1));
    result.map_err(|e| Error::Encode { source: e.into() })?;
    Ok(ByteBuf::from(out))
}

thread_local! {
    /// How deep this thread is in [`encode`]: a proxy serialized there is
    /// on its way into another object.
    static STORING: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread is encoding a value to store in the server.
pub(crate) fn storing() -> bool {
    STORING.with(|depth| depth.get() > 0)
}

/// Decodes a `T` from CBOR.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    ciborium::from_reader(bytes).map_err(Error::decode::<T>)
}

/// Parses an encoded value into a tree (`None` if it is not valid CBOR).
fn parse(bytes: &[u8]) -> Option<Cbor> {
    ciborium::from_reader(bytes).ok()
}

/// Python's `repr` of an encoded value: `1`, `2.5`, `'text'`, `None`,
/// `True`, `[1, 2]`, `{'a': 1}`.
pub(crate) fn repr(bytes: &[u8]) -> String {
    let mut out = String::new();
    match parse(bytes) {
        Some(value) => write_repr(&mut out, &value),
        None => out.push_str("<undecodable>"),
    }
    out
}

fn write_repr(out: &mut String, value: &Cbor) {
    match value {
        Cbor::Integer(i) => {
            let _ = write!(out, "{}", i128::from(*i));
        }
        Cbor::Float(f) => write_float(out, *f),
        Cbor::Text(s) => write_str(out, s),
        Cbor::Bytes(b) => {
            out.push_str("b'");
            for &byte in b {
                match byte {
                    b'\\' => out.push_str("\\\\"),
                    b'\'' => out.push_str("\\'"),
                    b'\n' => out.push_str("\\n"),
                    b'\r' => out.push_str("\\r"),
                    b'\t' => out.push_str("\\t"),
                    0x20..=0x7e => out.push(char::from(byte)),
                    _ => {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
            }
            out.push('\'');
        }
        Cbor::Bool(true) => out.push_str("True"),
        Cbor::Bool(false) => out.push_str("False"),
        Cbor::Null => out.push_str("None"),
        Cbor::Tag(_, inner) => write_repr(out, inner),
        Cbor::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Cbor::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, k);
                out.push_str(": ");
                write_repr(out, v);
            }
            out.push('}');
        }
        _ => out.push_str("<unknown>"),
    }
}

/// Python's `repr` of a list of encoded values: `[1, 'a']`.
pub(crate) fn repr_list<'a>(items: impl Iterator<Item = &'a Blob>) -> String {
    let items: Vec<String> = items.map(|item| repr(item)).collect();
    format!("[{}]", items.join(", "))
}

/// Python's `repr` of a dict of encoded keys and values: `{'a': 1}`.
pub(crate) fn repr_dict<'a>(entries: impl Iterator<Item = (&'a Blob, &'a Blob)>) -> String {
    let entries: Vec<String> = entries.map(|(k, v)| format!("{}: {}", repr(k), repr(v))).collect();
    format!("{{{}}}", entries.join(", "))
}

/// Python's float repr: the shortest digits that read back, with `.0` on
/// whole numbers, `inf`, `nan`.
fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("nan");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
    } else if f == f.trunc() && f.abs() < 1e16 {
        let _ = write!(out, "{f:.1}");
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Python's str repr: single quotes unless the text holds one and no double.
fn write_str(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// The class of a value for ordering: Python compares numbers (booleans
/// among them) with numbers, text with text and so on, and refuses to
/// compare across classes.
fn class(value: &Cbor) -> u8 {
    match value {
        Cbor::Tag(_, inner) => class(inner),
        Cbor::Integer(_) | Cbor::Float(_) | Cbor::Bool(_) => 0,
        Cbor::Text(_) => 1,
        Cbor::Bytes(_) => 2,
        Cbor::Null => 3,
        Cbor::Array(_) => 4,
        Cbor::Map(_) => 5,
        _ => 6,
    }
}

fn number(value: &Cbor) -> Option<f64> {
    match value {
        Cbor::Integer(i) => Some(i128::from(*i) as f64),
        Cbor::Float(f) => Some(*f),
        Cbor::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// A total order on values that agrees with Python's wherever Python
/// compares at all: numbers by value (exact for integers, NaN last), text
/// and bytes lexicographically, sequences element by element; values of
/// different classes by class. Being total, it is safe for `sort_by`.
fn total_order(a: &Cbor, b: &Cbor) -> Ordering {
    match (a, b) {
        (Cbor::Tag(_, a), b) => total_order(a, b),
        (a, Cbor::Tag(_, b)) => total_order(a, b),
        (Cbor::Integer(a), Cbor::Integer(b)) => i128::from(*a).cmp(&i128::from(*b)),
        (Cbor::Text(a), Cbor::Text(b)) => a.cmp(b),
        (Cbor::Bytes(a), Cbor::Bytes(b)) => a.cmp(b),
        (Cbor::Array(a), Cbor::Array(b)) => a
            .iter()
            .zip(b)
            .map(|(x, y)| total_order(x, y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.len().cmp(&b.len())),
        (Cbor::Map(a), Cbor::Map(b)) => a
            .iter()
            .zip(b)
            .map(|((ka, va), (kb, vb))| total_order(ka, kb).then_with(|| total_order(va, vb)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.len().cmp(&b.len())),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => class(a).cmp(&class(b)),
        },
    }
}

/// Python's `==` on decoded values: numbers by value whatever their type
/// (`1 == 1.0`, `0.0 == -0.0`, `True == 1`, NaN equal to nothing), text,
/// bytes and `None` as themselves, sequences element by element, maps
/// regardless of the order of their entries. Values of different classes
/// are never equal.
fn python_eq(a: &Cbor, b: &Cbor) -> bool {
    match (a, b) {
        (Cbor::Tag(_, a), b) => python_eq(a, b),
        (a, Cbor::Tag(_, b)) => python_eq(a, b),
        (Cbor::Integer(a), Cbor::Integer(b)) => a == b,
        (Cbor::Integer(i), Cbor::Float(f)) | (Cbor::Float(f), Cbor::Integer(i)) => {
            int_eq_float(i128::from(*i), *f)
        }
        (Cbor::Text(a), Cbor::Text(b)) => a == b,
        (Cbor::Bytes(a), Cbor::Bytes(b)) => a == b,
        (Cbor::Null, Cbor::Null) => true,
        (Cbor::Array(a), Cbor::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| python_eq(x, y))
        }
        (Cbor::Map(a), Cbor::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(ka, va)| b.iter().any(|(kb, vb)| python_eq(ka, kb) && python_eq(va, vb)))
        }
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// Whether integer `i` and float `f` are the same number (exactly: a large
/// integer is not equal to the float nearest to it unless it is that float).
fn int_eq_float(i: i128, f: f64) -> bool {
    // Every f64 of magnitude below 2^127 that is whole converts to i128
    // exactly; beyond, no i128 (ciborium's range) can equal it.
    f.fract() == 0.0 && f.abs() < 2f64.powi(127) && f as i128 == i
}

/// A value searched for in a list (`in`, `index`, `count`, `remove`),
/// decoded once and compared with each element by Python's `==`.
pub(crate) struct Needle {
    /// `None` if the needle is not valid CBOR: then it equals nothing.
    value: Option<Cbor>,
}

impl Needle {
    /// Decodes `bytes` for searching.
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self { value: parse(bytes) }
    }

    /// Whether the encoded `item` is `==` to the needle (an element that is
    /// not valid CBOR equals nothing).
    pub(crate) fn matches(&self, item: &[u8]) -> bool {
        let Some(needle) = &self.value else { return false };
        parse(item).is_some_and(|item| python_eq(needle, &item))
    }
}

/// Sorts encoded values in Python's order (stable, as Python's `sort`).
///
/// # Errors
///
/// [`Error::Manager`] if values of different classes are mixed (a number
/// and a text), which Python refuses to sort; the list is then left as it
/// was.
pub(crate) fn sort(items: &mut [Blob], reverse: bool) -> Result<()> {
    let mut keyed: Vec<(Cbor, usize)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let value = parse(item).ok_or_else(|| Error::Manager {
            message: "a list element is not valid CBOR".to_owned(),
        })?;
        keyed.push((value, i));
    }
    if keyed.windows(2).any(|w| class(&w[0].0) != class(&w[1].0)) {
        return Err(Error::Manager { message: "list elements cannot be compared".to_owned() });
    }
    keyed.sort_by(|(a, _), (b, _)| {
        let order = total_order(a, b);
        if reverse { order.reverse() } else { order }
    });
    let mut old: Vec<Option<Blob>> = items.iter_mut().map(|b| Some(std::mem::take(b))).collect();
    for (slot, (_, i)) in items.iter_mut().zip(keyed) {
        *slot = old[i].take().unwrap_or_default();
    }
    Ok(())
}

/// Writes `Namespace(a=1, b='x')` as Python's `Namespace.__repr__` does:
/// the `name=value` items sorted as text, names starting with `_` left out.
pub(crate) fn namespace_repr<'a>(
    f: &mut impl fmt::Write,
    attrs: impl Iterator<Item = (&'a String, &'a Blob)>,
) -> fmt::Result {
    let mut items: Vec<String> = attrs
        .filter(|(name, _)| !name.starts_with('_'))
        .map(|(name, value)| format!("{name}={}", repr(value)))
        .collect();
    items.sort();
    write!(f, "Namespace({})", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_python_prints_them() {
        let r = |bytes: Blob| repr(&bytes);
        assert_eq!(r(encode(&1u8).unwrap()), "1");
        assert_eq!(r(encode(&-7i64).unwrap()), "-7");
        assert_eq!(r(encode(&2.5f64).unwrap()), "2.5");
        assert_eq!(r(encode(&3.0f64).unwrap()), "3.0");
        assert_eq!(r(encode("it's").unwrap()), "\"it's\"");
        assert_eq!(r(encode("hi").unwrap()), "'hi'");
        assert_eq!(r(encode(&None::<u8>).unwrap()), "None");
        assert_eq!(r(encode(&(true, vec![1, 2])).unwrap()), "[True, [1, 2]]");
    }

    #[test]
    fn namespaces_print_sorted_as_text_without_private_names() {
        let attrs = [("x", 1), ("x1", 2), ("_hidden", 3)]
            .map(|(name, v)| (name.to_owned(), encode(&v).unwrap()));
        let mut out = String::new();
        namespace_repr(&mut out, attrs.iter().map(|(n, v)| (n, v))).unwrap();
        assert_eq!(out, "Namespace(x1=2, x=1)"); // as Python: '1' sorts before '='
    }

    #[test]
    fn integers_encode_the_same_whatever_their_type() {
        assert_eq!(encode(&5u8).unwrap(), encode(&5i64).unwrap());
    }

    #[test]
    fn searches_use_python_equality() {
        fn e<T: Serialize>(v: T) -> Blob {
            encode(&v).unwrap()
        }
        let eq = |a: Blob, b: Blob| Needle::new(&a).matches(&b);
        assert!(eq(e(0.0f64), e(-0.0f64)));
        assert!(eq(e(1u8), e(1.0f64)));
        assert!(eq(e(true), e(1u8)));
        assert!(!eq(e(f64::NAN), e(f64::NAN)));
        assert!(!eq(e(1u8), e("1")));
        assert!(!eq(e((1u64 << 60) + 1), e((1u64 << 60) as f64))); // as Python: exact
        assert!(eq(e(u64::MAX), e(u64::MAX)));
        assert!(!eq(e(u64::MAX - 1), e(u64::MAX as f64)));
        assert!(eq(e(vec![(1, "a")]), e(vec![(1.0, "a")])));
        assert!(!eq(e(vec![1, 2]), e(vec![1, 2, 3])));
        assert!(!Needle::new(&[0xff]).matches(&[0xff]));
    }

    #[test]
    fn sorting_follows_python_and_refuses_mixed_types() {
        let mut items: Vec<Blob> = [3.5f64, 1.0, 2.0].iter().map(|x| encode(x).unwrap()).collect();
        items.push(encode(&2u8).unwrap());
        sort(&mut items, false).unwrap();
        let back: Vec<String> = items.iter().map(|b| repr(b)).collect();
        assert_eq!(back, ["1.0", "2.0", "2", "3.5"]); // stable: 2.0 came first
        let mut mixed = vec![encode(&1).unwrap(), encode("a").unwrap()];
        let before = mixed.clone();
        assert!(sort(&mut mixed, false).is_err());
        assert_eq!(mixed, before);
        // NaN, nested mixtures and many elements never panic the sort.
        let mut odd: Vec<Blob> = (0..100)
            .map(|i| match i % 3 {
                0 => encode(&f64::NAN).unwrap(),
                1 => encode(&(i as f64)).unwrap(),
                _ => encode(&i).unwrap(),
            })
            .collect();
        sort(&mut odd, true).unwrap();
        let mut nested: Vec<Blob> = (0..50)
            .map(|i| if i % 2 == 0 { encode(&(1, "a")) } else { encode(&("b", 2)) }.unwrap())
            .collect();
        sort(&mut nested, false).unwrap();
    }
}
