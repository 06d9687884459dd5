//! The single-pass walk of a mapped long-format message: one serde pass over the text that
//! descends only along the configured JSON Pointers, borrows the strings it finds, and skips
//! everything else while still rejecting a key that appears twice in any object (as the tree
//! path does). No `serde_json::Value` tree is built.
//!
//! A pointer that steps into an array (`/readings/0/value`) cannot be followed without knowing
//! the array's length in advance: the walk then reports [`Walked::Fallback`] and the caller
//! parses the message into a tree instead. So does a set of pointers in which one is a prefix
//! of another ([`PointerTree::new`] refuses it).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::DecodeError;
use super::error::echo;
use super::parse::{Key, Scalar};

/// The fields of a long-format message a pointer can lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Line = 0,
    Machine = 1,
    Ts = 2,
    Tag = 3,
    Value = 4,
}

/// What the walk found at each [`Slot`] (`None`: the pointer leads nowhere).
pub(super) type Found<'a> = [Option<Scalar<'a>>; 5];

/// The configured pointers as a tree of object keys (RFC 6901 tokens, unescaped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PointerTree {
    slot: Option<Slot>,
    children: Vec<(String, PointerTree)>,
}

impl PointerTree {
    /// The tree of `pointers`; `None` when one pointer is a prefix of another (or the whole
    /// document), which a single pass cannot serve.
    pub(super) fn new(pointers: &[(Slot, &str)]) -> Option<Self> {
        let mut root = Self::default();
        for &(slot, pointer) in pointers {
            let mut node = &mut root;
            for token in pointer.strip_prefix('/')?.split('/') {
                if node.slot.is_some() {
                    return None;
                }
                let key = token.replace("~1", "/").replace("~0", "~");
                let i = match node.children.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        node.children.push((key, Self::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[i].1;
            }
            if node.slot.is_some() || !node.children.is_empty() {
                return None;
            }
            node.slot = Some(slot);
        }
        root.fits_bitmask().then_some(root)
    }

    /// The top-level keys and their slots when every pointer is one key deep (the byte
    /// scanner's case, `fast/flat.rs`); `None` otherwise.
    pub(super) fn flat_keys(&self) -> Option<Vec<(String, Slot)>> {
        self.children
            .iter()
            .map(
                |(key, child)| match (child.slot, child.children.is_empty()) {
                    (Some(slot), true) => Some((key.clone(), slot)),
                    _ => None,
                },
            )
            .collect()
    }

    /// Whether every node has at most 64 children (the walk marks them in a `u64`).
    fn fits_bitmask(&self) -> bool {
        self.children.len() <= 64 && self.children.iter().all(|(_, c)| c.fits_bitmask())
    }
}

/// The outcome of [`walk`].
pub(super) enum Walked<'a> {
    /// The scalars at each slot.
    Found(Found<'a>),
    /// A pointer steps into an array: parse the message into a tree instead.
    Fallback,
}

#[derive(Default)]
struct State {
    error: Option<DecodeError>,
    fallback: bool,
}

/// Walks `text` (already checked for size and UTF-8) along `tree`.
///
/// # Errors
/// `not_json` (syntax), `not_an_object` (the top level), `duplicate_key` (any object).
pub(super) fn walk<'a>(text: &'a str, tree: &PointerTree) -> Result<Walked<'a>, DecodeError> {
    let mut found: Found<'a> = Default::default();
    let mut state = State::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let result = NodeSeed {
        node: tree,
        top: true,
        found: &mut found,
        state: &mut state,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (result, state.error) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(DecodeError::NotJson(e.to_string())),
        (Ok(()), None) if state.fallback => Ok(Walked::Fallback),
        (Ok(()), None) => Ok(Walked::Found(found)),
    }
}

fn fail<E: de::Error>(state: &mut State, err: DecodeError) -> E {
    state.error = Some(err);
    E::custom("rejected")
}

/// The JSON kind of a scalar as the tree path names it (one "number" for all numbers).
pub(super) fn kind(s: &Scalar<'_>) -> &'static str {
    match s {
        Scalar::I64(_) | Scalar::U64(_) | Scalar::F64(_) => "number",
        other => other.kind(),
    }
}

/// One node of the pointer tree at the current position of the text.
struct NodeSeed<'t, 'f, 'a> {
    node: &'t PointerTree,
    top: bool,
    found: &'f mut Found<'a>,
    state: &'f mut State,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.node.slot {
            Some(slot) => {
                let v = d.deserialize_any(Strict {
                    state: &mut *self.state,
                })?;
                self.found[slot as usize] = Some(v);
                Ok(())
            }
            None => d.deserialize_any(self),
        }
    }
}

impl NodeSeed<'_, '_, '_> {
    /// A value that is not an object where the pointers expect one: at the top the message
    /// is not an object; below it, the pointers through here find nothing.
    fn not_object<E: de::Error>(self, found: &'static str) -> Result<(), E> {
        if self.top {
            Err(fail(self.state, DecodeError::NotAnObject { found }))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_object("boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_object("number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_object("number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_object("number")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_object("string")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_object("null")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            return Err(fail(
                self.state,
                DecodeError::NotAnObject { found: "array" },
            ));
        }
        // A pointer token may index this array: the tree path decides.
        self.state.fallback = true;
        while seq
            .next_element_seed(Strict {
                state: &mut *self.state,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys on a pointer path are marked by their child's index; other keys are kept.
        let mut visited = 0u64;
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.node.children.iter().position(|(k, _)| *k == *key) {
                Some(i) => {
                    if visited & (1 << i) != 0 {
                        return Err(fail(
                            self.state,
                            DecodeError::DuplicateKey { key: echo(&key) },
                        ));
                    }
                    visited |= 1 << i;
                    map.next_value_seed(NodeSeed {
                        node: &self.node.children[i].1,
                        top: false,
                        found: &mut *self.found,
                        state: &mut *self.state,
                    })?;
                }
                None => skip_unique(&mut map, &mut seen, key, self.state)?,
            }
        }
        Ok(())
    }
}

/// Skips the value of `key` (checked inside for repeated keys too), failing when `key` was
/// already `seen` in this object.
fn skip_unique<'de, A: MapAccess<'de>>(
    map: &mut A,
    seen: &mut Vec<Cow<'de, str>>,
    key: Cow<'de, str>,
    state: &mut State,
) -> Result<(), A::Error> {
    if seen.contains(&key) {
        return Err(fail(state, DecodeError::DuplicateKey { key: echo(&key) }));
    }
    map.next_value_seed(Strict { state })?;
    seen.push(key);
    Ok(())
}

/// A value read as a [`Scalar`] (arrays and objects skipped), rejecting a key that appears
/// twice in any object inside it.
struct Strict<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Scalar<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        // As the tree reads numbers: an integer that fits in i64 is one.
        Ok(i64::try_from(v).map_or(Scalar::U64(v), Scalar::I64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq
            .next_element_seed(Strict {
                state: &mut *self.state,
            })?
            .is_some()
        {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            skip_unique(&mut map, &mut seen, key, self.state)?;
        }
        Ok(Scalar::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> PointerTree {
        PointerTree::new(&[
            (Slot::Line, "/line"),
            (Slot::Machine, "/meta/asset"),
            (Slot::Ts, "/time"),
            (Slot::Tag, "/meta/a~1b"),
            (Slot::Value, "/v"),
        ])
        .unwrap()
    }

    fn found(text: &str) -> Found<'_> {
        match walk(text, &tree()) {
            Ok(Walked::Found(f)) => f,
            Ok(Walked::Fallback) => panic!("fallback for {text}"),
            Err(e) => panic!("{e} for {text}"),
        }
    }

    #[test]
    fn follows_nested_and_escaped_pointers_and_borrows() {
        let text = r#"{"x":{"y":[1,{"z":2}]},"line":"L","meta":{"asset":"P-1","a/b":"temp"},"time":5,"v":-1.5}"#;
        let f = found(text);
        assert!(matches!(&f[0], Some(Scalar::Str(Cow::Borrowed("L")))));
        assert!(matches!(&f[1], Some(Scalar::Str(Cow::Borrowed("P-1")))));
        assert!(matches!(f[2], Some(Scalar::I64(5))));
        assert!(matches!(&f[3], Some(Scalar::Str(s)) if s == "temp"));
        assert!(matches!(f[4], Some(Scalar::F64(v)) if v == -1.5));
        // A pointer through a non-object finds nothing; a missing key finds nothing.
        let f = found(r#"{"meta":"flat","v":null}"#);
        assert!(f[0].is_none() && f[1].is_none() && f[3].is_none());
        assert!(matches!(f[4], Some(Scalar::Null)));
    }

    #[test]
    fn rejects_duplicate_keys_anywhere_and_non_objects() {
        for text in [
            r#"{"v":1,"v":2}"#,
            r#"{"meta":{"asset":"a","asset":"b"}}"#,
            r#"{"skipped":{"k":1,"k":2}}"#,
            r#"{"skipped":[{"k":1,"k":2}]}"#,
        ] {
            assert!(
                matches!(walk(text, &tree()), Err(DecodeError::DuplicateKey { .. })),
                "{text}"
            );
        }
        assert!(matches!(
            walk("[1]", &tree()),
            Err(DecodeError::NotAnObject { found: "array" })
        ));
        assert!(matches!(
            walk("7", &tree()),
            Err(DecodeError::NotAnObject { found: "number" })
        ));
        assert!(matches!(
            walk(r#"{"v":1"#, &tree()),
            Err(DecodeError::NotJson(_))
        ));
    }

    #[test]
    fn arrays_on_a_path_and_prefix_pointers_go_to_the_tree() {
        let t = PointerTree::new(&[(Slot::Value, "/readings/0/value")]).unwrap();
        assert!(matches!(
            walk(r#"{"readings":[{"value":1}]}"#, &t),
            Ok(Walked::Fallback)
        ));
        assert!(PointerTree::new(&[(Slot::Tag, "/a"), (Slot::Value, "/a/b")]).is_none());
        assert!(PointerTree::new(&[(Slot::Tag, "/a/b"), (Slot::Value, "/a")]).is_none());
        assert!(PointerTree::new(&[(Slot::Tag, "/a"), (Slot::Value, "/a")]).is_none());
    }
}
