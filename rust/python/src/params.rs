//! Typed parameters. A binding declares each parameter by the kind of value it accepts —
//! `pid: In<Pid>`, `addr: In<Addr>`, `length: In<Len>`, `write: In<Flag>` (default
//! `In::value(true)`), `addr: Option<In<Addr>>` (None: absent) — and its body starts with
//! `args!(pid, addr, length, write)`, which converts each in that order (the order errors
//! are reported in) and names the parameter in any error. A kind's conversion and error
//! message are written once, in [`crate::args`].
//!
//! Extraction itself never fails: PyO3 adds a "while processing" note to an exception raised
//! while it extracts an argument, and a doctest's expected exception would then differ. So
//! `In` only holds the object, and the conversion runs in the body.

use std::marker::PhantomData;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3::Borrowed;

use rmapsim_core::Simulator as Core;

use crate::args as conv;
use crate::call::IntoPy;

/// What a parameter accepts, and how a Python object converts to it.
pub trait Kind {
    type Out<'py>;
    /// Convert `obj`, an rmapsim exception naming `name` and the value when it does not fit.
    fn convert<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Self::Out<'py>>;
}

/// A parameter of kind `K`: the object as given, or a default value.
pub enum In<'a, 'py, K: Kind> {
    Obj(Borrowed<'a, 'py, PyAny>, PhantomData<K>),
    Value(K::Out<'py>),
}

impl<'py, K: Kind> In<'_, 'py, K> {
    /// A default (a `#[pyo3(signature)]` default; an explicit None is then still converted,
    /// and refused unless the kind takes it).
    pub fn value(v: K::Out<'py>) -> Self {
        In::Value(v)
    }
}

impl<'a, 'py, K: Kind> FromPyObject<'a, 'py> for In<'a, 'py, K> {
    type Error = std::convert::Infallible;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> Result<Self, Self::Error> {
        Ok(In::Obj(obj, PhantomData))
    }
}

/// Conversion of a declared parameter under its name: `In<K>` gives `K`'s value,
/// `Option<In<K>>` an `Option` of it (None when absent or None).
pub trait Get {
    type Out;
    fn get(self, name: &str) -> PyResult<Self::Out>;
}

impl<'py, K: Kind> Get for In<'_, 'py, K> {
    type Out = K::Out<'py>;
    #[inline]
    fn get(self, name: &str) -> PyResult<K::Out<'py>> {
        match self {
            In::Obj(o, _) => K::convert(&o, name),
            In::Value(v) => Ok(v),
        }
    }
}

impl<'py, K: Kind> Get for Option<In<'_, 'py, K>> {
    type Out = Option<K::Out<'py>>;
    #[inline]
    fn get(self, name: &str) -> PyResult<Self::Out> {
        self.map(|p| p.get(name)).transpose()
    }
}

/// `args!(pid, addr, rows as "ops")`: shadow each declared parameter by its converted value,
/// named by the identifier (or the name given after `as`, where a message says otherwise).
macro_rules! args {
    (@name $p:ident) => {
        stringify!($p)
    };
    (@name $p:ident $name:literal) => {
        $name
    };
    ($($p:ident $(as $name:literal)?),+ $(,)?) => {
        $( let $p = $crate::params::Get::get($p, args!(@name $p $($name)?))?; )+
    };
}
pub(crate) use args;

/// Declare kinds: `Name => Out: |obj, name| conversion;`.
macro_rules! kinds {
    ($($(#[$doc:meta])* $k:ident => $out:ty: |$o:ident, $n:ident| $body:expr;)+) => {
        $(
            $(#[$doc])*
            pub struct $k;
            impl Kind for $k {
                type Out<'py> = $out;
                #[inline]
                fn convert<'py>($o: &Bound<'py, PyAny>, $n: &str) -> PyResult<$out> {
                    $body
                }
            }
        )+
    };
}

kinds! {
    /// A pid (`NoSuchProcess` when no process can have it).
    Pid => i64: |o, _n| conv::pid(o);
    /// An address from 0 to 2**64 - 1 (`BadAddress` otherwise).
    Addr => u64: |o, n| conv::addr(o, n);
    /// An unsigned 64-bit count or size.
    U64 => u64: |o, n| conv::u64_arg(o, n);
    /// `True` or `False`.
    Flag => bool: |o, n| conv::flag(o, n);
    /// A number from 0 to 1 (a rate).
    Fraction => f64: |o, n| conv::real(o, n, 0.0, 1.0);
    /// A number of seconds, 0 or more.
    Seconds => f64: |o, n| conv::real(o, n, 0.0, f64::MAX);
    /// A string.
    Text => String: |o, n| conv::text(o, n);
    /// A dict.
    Dict => Bound<'py, PyDict>: |o, n| o.cast::<PyDict>().cloned().map_err(|_| conv::invalid(o, n, "a dict"));
    /// A prot string ("rw", "r-x", ...) as `PROT_*` bits.
    Prot => u8: |o, n| Core::parse_prot(&conv::text(o, n)?).py(o.py());
    /// An madvise advice name.
    Advice => rmapsim_core::Advice: |o, n| rmapsim_core::Advice::parse(&conv::text(o, n)?).py(o.py());
    /// A list of pids.
    Pids => Vec<i64>: |o, n| conv::pids(o, n);
    /// A list of process symbols' pids (1 to 2**32 - 1).
    Symbols => Vec<u32>: |o, n| conv::pids(o, n)?
        .into_iter()
        .map(|p| u32::try_from(p).map_err(|_| conv::invalid(o, n, "a list of pids from 1 to 2**32 - 1")))
        .collect();
    /// A page handle (`StaleHandle` when it cannot be one).
    Page => u64: |o, n| conv::handle(o, n);
    /// A list of page handles (None, as `Option<In<Pages>>`: every anon page).
    Pages => Vec<u64>: |o, n| conv::handles(o, n);
    /// Walk threads: None (0: all cores) or 1 to `THREADS_MAX`.
    Threads => usize: |o, n| conv::threads(o, n);
    /// Op rows `[code, p, a, b, c, d, e]`.
    Rows => Vec<[u64; 7]>: |o, n| conv::rows(o, n);
    /// Program words: a list of ints, or bytes of whole little-endian 64-bit words.
    Words => Vec<u64>: |o, n| match o.cast::<PyBytes>() {
        Ok(b) if b.as_bytes().len() % 8 == 0 => Ok(b
            .as_bytes()
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()),
        Ok(_) => Err(conv::invalid(o, n, "bytes of whole little-endian 64-bit words, or a list of ints")),
        Err(_) => conv::words(o, n),
    };
}

/// Byte counts.
pub type Len = U64;

/// An int of type `T` from `LO` to `HI`.
pub struct Int<T, const LO: i128, const HI: i128>(PhantomData<T>);

impl<T: TryFrom<i128>, const LO: i128, const HI: i128> Kind for Int<T, LO, HI> {
    type Out<'py> = T;
    #[inline]
    fn convert<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<T> {
        conv::ranged(obj, name, LO, HI)
    }
}
