//! The authkeys this process knows, by manager address.
//!
//! A proxy travels as its manager's address and an object id, never with
//! the key (Python refuses to pickle an authkey too). Where a proxy
//! arrives, the key is looked up here by the address. A process learns
//! keys by starting a manager ([`Manager::start`](super::Manager::start)),
//! by connecting to one ([`Manager::connect`](super::Manager::connect)),
//! and from its parent: a forked child has its parent's memory, and a
//! spawned or fork-server child gets its parent's keys in its bootstrap
//! message (the private socket its parent starts it with; see
//! `process::current::ChildInfo`), which is the only message that ever
//! carries a key.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::connection::Address;

/// An authkey, shared by the links that use it; never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct AuthKey(Arc<[u8]>);

impl AuthKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        Self(key.into())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(<redacted>)")
    }
}

/// Address -> key (`None`: the manager takes no key).
type Known = HashMap<Address, Option<AuthKey>>;

static KNOWN: Mutex<Option<Known>> = Mutex::new(None);

fn known() -> MutexGuard<'static, Option<Known>> {
    KNOWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Remembers `key` as the manager at `address`'s (replacing what was known).
pub(crate) fn register(address: &Address, key: Option<&AuthKey>) {
    known().get_or_insert_with(HashMap::new).insert(address.clone(), key.cloned());
}

/// The key of the manager at `address`: `None` if this process does not
/// know that manager, `Some(None)` if it takes no key.
pub(crate) fn lookup(address: &Address) -> Option<Option<AuthKey>> {
    known().as_ref()?.get(address).cloned()
}

/// Holds the registry locked across a fork, so that no other thread holds
/// it at the instant of the fork (the child would find it locked forever).
pub(crate) fn lock_for_fork() -> MutexGuard<'static, Option<Known>> {
    known()
}

/// The keys this process knows, as its spawned children inherit them
/// through their bootstrap message. `Debug` does not show the keys.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct KnownKeys(Vec<(Address, Option<Vec<u8>>)>);

impl fmt::Debug for KnownKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownKeys").field("managers", &self.0.len()).finish_non_exhaustive()
    }
}

/// What a child inherits: every key this process knows.
pub(crate) fn snapshot() -> KnownKeys {
    let known = known();
    KnownKeys(
        known
            .iter()
            .flatten()
            .map(|(address, key)| (address.clone(), key.as_ref().map(|k| k.bytes().to_vec())))
            .collect(),
    )
}

/// Adds the keys inherited from the parent to what this process knows.
pub(crate) fn inherit(keys: KnownKeys) {
    let mut known = known();
    let known = known.get_or_insert_with(HashMap::new);
    for (address, key) in keys.0 {
        known.entry(address).or_insert_with(|| key.as_deref().map(AuthKey::new));
    }
}
