//! Users' own types in a manager (Python's `BaseManager.register`).
//!
//! The server process is started with a function that knows every
//! registered type at compile time (`serve::<(A, (B, ()))>`), so no code
//! address travels between processes: a registered type is found by name.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::dynval::{self, Blob};
use crate::Result;

/// A type whose objects live in a manager's server and are used through a
/// [`CustomProxy`](super::CustomProxy): each call is a value of
/// [`Call`](Self::Call) that the server applies to the object, answering with
/// a [`Reply`](Self::Reply). Register it with
/// [`ManagerBuilder::register`](super::ManagerBuilder::register).
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
/// use multiproc::manager::SharedObject;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Counter {
///     hits: u64,
/// }
///
/// #[derive(Serialize, Deserialize)]
/// enum CounterCall {
///     Hit(u64),
///     Read,
/// }
///
/// impl SharedObject for Counter {
///     type Call = CounterCall;
///     type Reply = u64;
///     fn call(&mut self, call: CounterCall) -> u64 {
///         if let CounterCall::Hit(n) = call {
///             self.hits += n;
///         }
///         self.hits
///     }
/// }
///
/// let manager = Manager::builder().register::<Counter>().start()?;
/// let counter = manager.create(Counter { hits: 0 })?;
/// counter.call(CounterCall::Hit(2))?;
/// assert_eq!(counter.call(CounterCall::Read)?, 2);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub trait SharedObject: Serialize + DeserializeOwned + Send + 'static {
    /// A method call, as a value (an enum of the methods, typically).
    type Call: Serialize + DeserializeOwned;
    /// What a call answers.
    type Reply: Serialize + DeserializeOwned;

    /// Applies `call` to the object, in the server.
    fn call(&mut self, call: Self::Call) -> Self::Reply;

    /// The name the type is registered under (by default its Rust path).
    fn type_name() -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// An object of a registered type, in the server.
trait Hosted: Send {
    fn invoke(&mut self, call: &[u8]) -> Result<Blob>;
    fn repr(&self) -> String;
}

struct Host<T>(T);

impl<T: SharedObject> Hosted for Host<T> {
    fn invoke(&mut self, call: &[u8]) -> Result<Blob> {
        let call = dynval::decode(call)?;
        dynval::encode(&self.0.call(call))
    }

    fn repr(&self) -> String {
        dynval::encode(&self.0).map_or_else(|e| e.to_string(), |b| dynval::repr(&b))
    }
}

/// An object of a registered type, as the server holds it (opaque).
#[doc(hidden)]
pub struct HostedObject(Box<dyn Hosted>);

impl HostedObject {
    /// Applies an encoded call; returns the encoded reply.
    pub(crate) fn invoke(&mut self, call: &[u8]) -> Result<Blob> {
        self.0.invoke(call)
    }

    /// Python's `repr` of the object's value.
    pub(crate) fn repr(&self) -> String {
        self.0.repr()
    }
}

impl fmt::Debug for HostedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr())
    }
}

/// Makes an object of a registered type from its name and initial value.
pub(crate) type Construct = fn(&str, &[u8]) -> Option<Result<HostedObject>>;

/// A list of registered types: `()`, `(A, ())`, `(B, (A, ()))`... built by
/// [`ManagerBuilder::register`](super::ManagerBuilder::register).
pub trait Registered: 'static {
    /// Makes an object of the type registered as `name`, or `None`.
    #[doc(hidden)]
    fn construct(name: &str, init: &[u8]) -> Option<Result<HostedObject>>;
}

impl Registered for () {
    fn construct(_: &str, _: &[u8]) -> Option<Result<HostedObject>> {
        None
    }
}

impl<T: SharedObject, R: Registered> Registered for (T, R) {
    fn construct(name: &str, init: &[u8]) -> Option<Result<HostedObject>> {
        if name == T::type_name() {
            Some(dynval::decode::<T>(init).map(|t| HostedObject(Box::new(Host(t)))))
        } else {
            R::construct(name, init)
        }
    }
}
