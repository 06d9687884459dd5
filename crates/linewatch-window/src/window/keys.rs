//! Who a reading belongs to: the configured channels ([`ChannelSet`]) and
//! the machine identity ([`MachineKey`]) with its borrowed lookup form.

use std::fmt;
use std::sync::Arc;

use hashbrown::{Equivalent, HashMap};

use super::ConfigError;

/// The ordered list of channels that become features. Readings' other
/// channels are counted and ignored.
#[derive(Debug, Clone)]
pub struct ChannelSet {
    pub(super) names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, usize>,
}

impl PartialEq for ChannelSet {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl ChannelSet {
    /// A channel set in the given order. Fails on an empty list, an empty
    /// name, or a duplicate.
    pub fn new<I, S>(names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Self {
            names: Vec::new(),
            index: HashMap::new(),
        };
        for name in names {
            let name = name.as_ref();
            if name.is_empty() {
                return Err(ConfigError::EmptyChannelName);
            }
            if out.index.contains_key(name) {
                return Err(ConfigError::DuplicateChannel(name.to_owned()));
            }
            let name: Arc<str> = Arc::from(name);
            out.index.insert(name.clone(), out.names.len());
            out.names.push(name);
        }
        if out.names.is_empty() {
            return Err(ConfigError::NoChannels);
        }
        Ok(out)
    }

    /// Number of channels.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false (a channel set is never empty); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Channel names in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.names.iter().map(|n| &**n)
    }

    /// Name of channel `i`.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(|n| &**n)
    }

    /// Position of a channel.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Position of a channel, trying position `hint` first (readings usually
    /// list channels in the configured order, which makes this one compare).
    #[inline]
    pub(super) fn index_hinted(&self, name: &str, hint: usize) -> Option<usize> {
        match self.names.get(hint) {
            Some(n) if same_short(n.as_bytes(), name.as_bytes()) => Some(hint),
            _ => self.index.get(name).copied(),
        }
    }
}

/// `a == b`, comparing strings of 4 to 16 bytes by two overlapping words each instead of
/// calling `memcmp` (channel names are that short; the call cost more than the compare).
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    fn word<const W: usize>(s: &[u8], at: usize) -> Option<[u8; W]> {
        s.get(at..at + W)?.try_into().ok()
    }
    match n {
        8..=16 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        _ => a == b,
    }
}

/// Identity of a machine: `(line, machine)`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineKey {
    /// Production line id.
    pub line: Arc<str>,
    /// Machine id.
    pub machine: Arc<str>,
}

impl MachineKey {
    /// A key from its parts.
    pub fn new(line: &str, machine: &str) -> Self {
        Self {
            line: Arc::from(line),
            machine: Arc::from(machine),
        }
    }
}

impl fmt::Display for MachineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.line, self.machine)
    }
}

/// Borrowed form of [`MachineKey`] for allocation-free lookups. Hashes
/// exactly like `MachineKey` (derived `Hash` of two `str`s in the same order).
#[derive(Hash)]
pub(crate) struct KeyRef<'a> {
    pub(crate) line: &'a str,
    pub(crate) machine: &'a str,
}

impl Equivalent<MachineKey> for KeyRef<'_> {
    fn equivalent(&self, key: &MachineKey) -> bool {
        *key.line == *self.line && *key.machine == *self.machine
    }
}

impl From<&KeyRef<'_>> for MachineKey {
    fn from(k: &KeyRef<'_>) -> Self {
        MachineKey::new(k.line, k.machine)
    }
}

#[cfg(test)]
mod tests {
    use super::same_short;

    /// Against `==` for every length up to 20 and a difference at every position, or none.
    #[test]
    fn same_short_is_equality() {
        let base: Vec<u8> = (b'a'..=b'z').collect();
        for n in 0..=20 {
            let a = &base[..n];
            assert!(same_short(a, a));
            assert!(!same_short(a, &base[..n + 1]));
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert_eq!(same_short(a, &b), a == &b[..], "length {n}, byte {at}");
                assert!(!same_short(a, &b));
            }
        }
    }
}
