//! Snapshots: a whole [`Simulator`] as bytes and back (machinery, not kernel model).
//!
//! The format (documented for users in `docs/snapshots.md`):
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 0 | 8 | magic `RMAPSNAP` |
//! | 8 | 4 | format version, little-endian `u32` ([`FORMAT_VERSION`]) |
//! | 12 | 8 | payload length `N`, little-endian `u64` |
//! | 20 | N | payload |
//! | 20 + N | 8 | [`checksum`] of the payload, little-endian `u64` |
//!
//! The payload starts with the writing library's version and the era spec (each a length
//! and UTF-8 bytes), then every field of the simulator in declaration order. Integers are
//! LEB128 varints (signed ones zigzagged first), `bool` and `Option` tags one byte, `f64`
//! eight bytes; a sequence is its length then its items; maps are written in key order.
//! Page-table entries are run-length coded (a count of empty entries before each
//! populated one), so the size grows with the populated entries, not the mapped range.
//!
//! Decoding never trusts a length: a sequence may not claim more items than bytes remain,
//! every container is reserved fallibly (an impossible size is `OutOfMemory`, not an
//! abort), and the checksum rejects any accidental change. Capacities and the host-memory
//! budget are not part of the state: a restored simulator has the reading host's budget.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

use crate::error::{Result, SimError};
use crate::policy::Policy;
use crate::state::arena::Id;
use crate::state::interrupt::Ticker;
use crate::state::objects::{Pte, SwapSlot};
use crate::state::sim::{Inject, Process, Simulator, WriteStats};

pub const MAGIC: &[u8; 8] = b"RMAPSNAP";
/// Bump whenever the payload layout changes; a reader refuses every other version but
/// [`OLD_FORMAT_VERSION`], which it upgrades.
pub const FORMAT_VERSION: u32 = 3;
/// Format 2: the same layout, but a page-table entry had no dirty bit (bit 31 was always
/// clear), `MADV_FREE`'s flag 2 meant "lazy-free and written again", and an mm had no
/// `def_flags` / `MMF_VM_MERGE_ANY` (read as 0 / off); see `snapshot/upgrade.rs`.
pub const OLD_FORMAT_VERSION: u32 = 2;
const HEADER: usize = 20;

/// Names `begin_op` may record (the snapshot stores the name; the simulator keeps a
/// `&'static str`).
pub const OP_NAMES: [&str; 20] = [
    "init",
    "spawn",
    "fork",
    "exit",
    "exec",
    "mmap",
    "brk",
    "munmap",
    "mprotect",
    "madvise",
    "mremap",
    "touch",
    "try_to_unmap",
    "drop_swap_cache",
    "set_brk_base",
    "mlock",
    "munlock",
    "mlockall",
    "munlockall",
    "memory_merge",
];

fn op_name(s: &str) -> Result<&'static str> {
    OP_NAMES.iter().copied().find(|n| *n == s).ok_or_else(|| bad(format!("unknown operation name {s:?}")))
}

fn bad(m: impl std::fmt::Display) -> SimError {
    SimError::InvalidArgument(format!("data: not a valid rmapsim snapshot: {m}"))
}

/// 64-bit checksum of `data`: each 8-byte word (the tail zero-padded) mixed in with a
/// multiply and rotate, then the length. Not cryptographic; it catches corruption.
pub fn checksum(data: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0x5241_4D50_534E_4150;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K).rotate_left(29);
    let mut z = h ^ data.len() as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Output buffer. Growth is fallible and Ctrl-C is polled every [`Writer::TICK`] bytes;
/// the first failure sticks (later writes do nothing) and [`Writer::finish`] reports it.
pub struct Writer {
    buf: Vec<u8>,
    err: Option<SimError>,
    next_tick: usize,
    ticker: Ticker,
}

impl Writer {
    const TICK: usize = 1 << 16;

    fn new() -> Writer {
        Writer { buf: Vec::new(), err: None, next_tick: Self::TICK, ticker: Ticker::new() }
    }

    /// Has a write failed (callers of long loops stop early)?
    pub fn failed(&self) -> bool {
        self.err.is_some()
    }

    #[cold]
    fn grow(&mut self, n: usize) -> bool {
        if self.err.is_some() {
            return false;
        }
        if self.buf.len() >= self.next_tick {
            self.next_tick = self.buf.len() + Self::TICK;
            if let Err(e) = self.ticker.tick_by(u64::MAX) {
                self.err = Some(e);
                return false;
            }
        }
        if self.buf.capacity() - self.buf.len() < n {
            let more = self.buf.capacity().max(1 << 12).max(n);
            if self.buf.try_reserve(more).is_err() {
                self.err = Some(SimError::OutOfMemory(format!(
                    "snapshot: could not grow the output beyond {} bytes",
                    self.buf.len()
                )));
                return false;
            }
        }
        true
    }

    #[inline]
    fn room(&mut self, n: usize) -> bool {
        (self.buf.capacity() - self.buf.len() >= n && self.buf.len() < self.next_tick) || self.grow(n)
    }

    #[inline]
    pub fn byte(&mut self, b: u8) {
        if self.room(1) {
            self.buf.push(b);
        }
    }

    #[inline]
    pub fn varint(&mut self, mut v: u64) {
        if !self.room(10) {
            return;
        }
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        if self.room(b.len()) {
            self.buf.extend_from_slice(b);
        }
    }

    fn finish(self) -> Result<Vec<u8>> {
        match self.err {
            Some(e) => Err(e),
            None => Ok(self.buf),
        }
    }
}

/// Input cursor over a payload; every read is bounds-checked.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    next_tick: usize,
    ticker: Ticker,
    /// Format 2: page-table entries with the flag word as stored (no dirty bit), mms
    /// without `def_flags` / `merge_any`.
    pub(crate) ptes_v2: bool,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0, next_tick: Writer::TICK, ticker: Ticker::new(), ptes_v2: false }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    #[inline]
    pub fn byte(&mut self) -> Result<u8> {
        let b = *self.data.get(self.pos).ok_or_else(|| bad("truncated payload"))?;
        self.pos += 1;
        if self.pos >= self.next_tick {
            self.next_tick = self.pos + Writer::TICK;
            self.ticker.tick_by(u64::MAX)?;
        }
        Ok(b)
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                if shift == 63 && b > 1 {
                    break;
                }
                return Ok(v);
            }
        }
        Err(bad("an integer is longer than 64 bits"))
    }

    /// A sequence length, at most one item per remaining byte (each item takes at least
    /// one), so no claimed length can make the reader reserve more than the input's size.
    pub fn read_len(&mut self) -> Result<usize> {
        let n = self.varint()?;
        if n > self.remaining() as u64 {
            return Err(bad(format!("a sequence claims {n} items with {} bytes left", self.remaining())));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.read_len()?;
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
}

/// A vector with room for `n` items, reserved fallibly.
pub fn vec_with<T>(n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| SimError::OutOfMemory(format!("snapshot: could not reserve {n} items while reading")))?;
    Ok(v)
}

/// A value that can be written to and read from a snapshot payload.
pub trait Wire: Sized {
    fn put(&self, w: &mut Writer);
    fn get(r: &mut Reader<'_>) -> Result<Self>;
}

/// `Wire` for a struct, field by field in the order listed. The `put` side destructures
/// the struct without `..`, so a field added to the struct and not to the list is a
/// compile error rather than a silently dropped part of the state.
#[macro_export]
macro_rules! wire_struct {
    ($ty:ident $(<$g:ident>)? { $($f:ident),* $(,)? }) => {
        impl$(<$g: $crate::state::snapshot::Wire>)? $crate::state::snapshot::Wire for $ty$(<$g>)? {
            fn put(&self, w: &mut $crate::state::snapshot::Writer) {
                let $ty { $($f),* } = self;
                $( $crate::state::snapshot::Wire::put($f, w); )*
            }
            fn get(r: &mut $crate::state::snapshot::Reader<'_>) -> $crate::error::Result<Self> {
                Ok($ty { $($f: $crate::state::snapshot::Wire::get(r)?),* })
            }
        }
    };
}

macro_rules! wire_uint {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            #[inline]
            fn put(&self, w: &mut Writer) {
                w.varint(*self as u64);
            }
            #[inline]
            fn get(r: &mut Reader<'_>) -> Result<Self> {
                let v = r.varint()?;
                <$t>::try_from(v).map_err(|_| bad(format!("{v} does not fit in {}", stringify!($t))))
            }
        }
    )*};
}
wire_uint!(u16, u32, u64, usize);

impl Wire for u8 {
    fn put(&self, w: &mut Writer) {
        w.byte(*self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        r.byte()
    }
}

impl Wire for i32 {
    fn put(&self, w: &mut Writer) {
        w.varint(((*self << 1) ^ (*self >> 31)) as u32 as u64);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let z = u32::get(r)?;
        Ok((z >> 1) as i32 ^ -((z & 1) as i32))
    }
}

impl Wire for bool {
    fn put(&self, w: &mut Writer) {
        w.byte(*self as u8);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        match r.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(bad(format!("boolean byte {b}"))),
        }
    }
}

impl Wire for f64 {
    fn put(&self, w: &mut Writer) {
        for b in self.to_bits().to_le_bytes() {
            w.byte(b);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = r.byte()?;
        }
        Ok(f64::from_bits(u64::from_le_bytes(b)))
    }
}

impl Wire for String {
    fn put(&self, w: &mut Writer) {
        w.bytes(self.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let b = r.bytes()?;
        let s = std::str::from_utf8(b).map_err(|_| bad("a string is not UTF-8"))?;
        let mut out = vec_with::<u8>(s.len()).map(|_| String::new())?;
        out.push_str(s);
        Ok(out)
    }
}

impl<T> Wire for Id<T> {
    #[inline]
    fn put(&self, w: &mut Writer) {
        w.varint(self.index() as u64);
        w.varint(self.generation() as u64);
    }
    #[inline]
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let (idx, gen) = (u32::get(r)?, u32::get(r)?);
        Ok(Id::from_u64(((gen as u64) << 32) | idx as u64))
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, w: &mut Writer) {
        match self {
            None => w.byte(0),
            Some(v) => {
                w.byte(1);
                v.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        match r.byte()? {
            0 => Ok(None),
            1 => Ok(Some(T::get(r)?)),
            b => Err(bad(format!("option tag {b}"))),
        }
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, w: &mut Writer) {
        w.varint(self.len() as u64);
        for x in self {
            if w.failed() {
                return;
            }
            x.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let n = r.read_len()?;
        let mut v = vec_with(n)?;
        for _ in 0..n {
            v.push(T::get(r)?);
        }
        Ok(v)
    }
}

impl<T: Wire + Copy + Default, const N: usize> Wire for [T; N] {
    fn put(&self, w: &mut Writer) {
        for x in self {
            x.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let mut a = [T::default(); N];
        for x in &mut a {
            *x = T::get(r)?;
        }
        Ok(a)
    }
}

macro_rules! wire_tuple {
    ($($n:ident),*) => {
        impl<$($n: Wire),*> Wire for ($($n,)*) {
            #[allow(non_snake_case)]
            fn put(&self, w: &mut Writer) {
                let ($($n,)*) = self;
                $($n.put(w);)*
            }
            fn get(r: &mut Reader<'_>) -> Result<Self> {
                Ok(($($n::get(r)?,)*))
            }
        }
    };
}
wire_tuple!(A, B);
wire_tuple!(A, B, C);
wire_tuple!(A, B, C, D);

impl<K: Wire + Ord, V: Wire> Wire for BTreeMap<K, V> {
    fn put(&self, w: &mut Writer) {
        w.varint(self.len() as u64);
        for (k, v) in self {
            if w.failed() {
                return;
            }
            k.put(w);
            v.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let n = r.read_len()?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = K::get(r)?;
            if m.last_key_value().is_some_and(|(last, _)| *last >= k) {
                return Err(bad("map keys out of order"));
            }
            m.insert(k, V::get(r)?);
        }
        Ok(m)
    }
}

/// Hash maps are written in key order, so equal maps give equal bytes.
impl<K: Wire + Ord + Hash + Copy, V: Wire, S: BuildHasher + Default> Wire for HashMap<K, V, S> {
    fn put(&self, w: &mut Writer) {
        let mut keys: Vec<K> = Vec::new();
        if keys.try_reserve_exact(self.len()).is_err() {
            w.err.get_or_insert(SimError::OutOfMemory("snapshot: could not sort a side map".into()));
            return;
        }
        keys.extend(self.keys().copied());
        keys.sort_unstable();
        w.varint(keys.len() as u64);
        for k in keys {
            k.put(w);
            self[&k].put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let n = r.read_len()?;
        let mut m = HashMap::with_hasher(S::default());
        m.try_reserve(n).map_err(|_| SimError::OutOfMemory(format!("snapshot: could not reserve {n} map entries")))?;
        for _ in 0..n {
            let k = K::get(r)?;
            if m.insert(k, V::get(r)?).is_some() {
                return Err(bad("a map key repeats"));
            }
        }
        Ok(m)
    }
}

/// A `u32` column as its length, then each value as the zigzag difference from the one
/// before it (wrapping): equal or consecutive neighbours take one byte.
pub fn put_deltas(w: &mut Writer, col: &[u32]) {
    w.varint(col.len() as u64);
    let mut prev = 0u32;
    for &v in col {
        if w.failed() {
            return;
        }
        let d = v.wrapping_sub(prev) as i32;
        w.varint(((d << 1) ^ (d >> 31)) as u32 as u64);
        prev = v;
    }
}

/// Inverse of [`put_deltas`].
pub fn get_deltas(r: &mut Reader<'_>) -> Result<Vec<u32>> {
    let n = r.read_len()?;
    let mut col = vec_with(n)?;
    let mut prev = 0u32;
    for _ in 0..n {
        let d = i32::get(r)?;
        prev = prev.wrapping_add(d as u32);
        col.push(prev);
    }
    Ok(col)
}

/// `entries` run-length coded: each populated entry preceded by the count of empty ones
/// before it, then the count of trailing empty ones. An entry is its upper half (the page
/// or swap slot) as a zigzag difference from the previous entry's, then its lower half
/// (flags, generation) rotated left by one, so that the dirty bit (31) comes first and the
/// word stays small: neighbouring pages are usually neighbouring slots, so a populated
/// entry takes about three bytes. The length is the caller's. (Format 2 stored the lower
/// half as it was, without a dirty bit.)
pub fn put_ptes(w: &mut Writer, entries: &[Pte]) {
    let (mut gap, mut prev) = (0u64, 0i64);
    for e in entries {
        if e.is_none() {
            gap += 1;
        } else {
            let (hi, lo) = ((e.raw() >> 32) as i64, e.raw() & 0xFFFF_FFFF);
            let d = hi - prev;
            w.varint(gap);
            w.varint(((d << 1) ^ (d >> 63)) as u64);
            w.varint(((lo << 1) & 0xFFFF_FFFF) | (lo >> 31));
            (gap, prev) = (0, hi);
        }
    }
    w.varint(gap);
}

/// Fill `out` (all empty, of the caller's length) from [`put_ptes`]'s coding; returns the
/// populated entries read.
pub fn get_ptes(r: &mut Reader<'_>, out: &mut [Pte]) -> Result<u32> {
    let (mut at, mut used, mut prev) = (0usize, 0u32, 0i64);
    loop {
        let gap = r.varint()?;
        let end = (at as u64)
            .checked_add(gap)
            .filter(|&e| e <= out.len() as u64)
            .ok_or_else(|| bad("page-table entries overrun their table"))?;
        at = end as usize;
        if at == out.len() {
            return Ok(used);
        }
        let z = r.varint()?;
        let hi = prev.wrapping_add((z >> 1) as i64 ^ -((z & 1) as i64));
        let code = u32::get(r)?;
        let lo = if r.ptes_v2 { code } else { code.rotate_right(1) };
        if !(0..=u32::MAX as i64).contains(&hi) || (hi == 0 && lo == 0) {
            return Err(bad("a malformed page-table entry"));
        }
        out[at] = Pte::from_raw(((hi as u64) << 32) | lo as u64);
        (at, used, prev) = (at + 1, used + 1, hi);
    }
}

crate::wire_struct!(Process { mm, parent });
crate::wire_struct!(SwapSlot { count, cache });
crate::wire_struct!(WriteStats {
    ops,
    anon_vma_alloc,
    anon_vma_free,
    avc_alloc,
    avc_free,
    vma_alloc,
    vma_free,
    page_alloc,
    page_free,
    index_insert,
    index_remove,
    tree_rekey,
    lock_acquire,
});

impl Wire for Inject {
    fn put(&self, w: &mut Writer) {
        match *self {
            Inject::Off => w.byte(0),
            Inject::Nth(n) => {
                w.byte(1);
                w.varint(n);
            }
            Inject::Rate(p) => {
                w.byte(2);
                p.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        match r.byte()? {
            0 => Ok(Inject::Off),
            1 => Ok(Inject::Nth(u64::get(r)?)),
            2 => {
                let p = f64::get(r)?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(bad(format!("injection rate {p}")));
                }
                Ok(Inject::Rate(p))
            }
            b => Err(bad(format!("injection tag {b}"))),
        }
    }
}

/// The simulator field by field (the policy as its name and canonical spec; the
/// operation names as text). `alloc_fast` and `host_budget` belong to the process, not
/// the state: a restored simulator re-checks its next allocation against the reading
/// host's budget.
impl Wire for Simulator {
    fn put(&self, w: &mut Writer) {
        let Simulator {
            policy,
            seed,
            op,
            op_name,
            procs,
            next_pid,
            pid_max,
            ram,
            alloc_fast: _,
            host_budget: _,
            mms,
            vmas,
            avs,
            avcs,
            pages,
            allocations,
            site_allocs,
            inject,
            rng,
            ptes,
            merge_sites,
            merge_failed,
            swap,
            tree_seq,
            ws_cur,
            ws_snap,
            ws_totals,
            kernel_warning: _, // a log line, not state
        } = self;
        policy.name.put(w);
        policy.spec().put(w);
        seed.put(w);
        op.put(w);
        w.bytes(op_name.as_bytes());
        procs.put(w);
        next_pid.put(w);
        pid_max.put(w);
        ram.put(w);
        mms.put(w);
        vmas.put(w);
        avs.put(w);
        avcs.put(w);
        pages.put(w);
        allocations.put(w);
        site_allocs.put(w);
        inject.put(w);
        rng.put(w);
        ptes.put(w);
        merge_sites.put(w);
        merge_failed.put(w);
        swap.put(w);
        tree_seq.put(w);
        ws_cur.put(w);
        ws_snap.put(w);
        w.varint(ws_totals.len() as u64);
        for (k, v) in ws_totals {
            w.bytes(k.as_bytes());
            v.put(w);
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let name = String::get(r)?;
        let spec = String::get(r)?;
        let mut policy = Policy::from_spec(&spec).map_err(|m| bad(format!("era spec: {m}")))?;
        policy.name = name;
        let mut s = Simulator::new(policy, 0);
        (s.seed, s.op) = Wire::get(r)?;
        s.op_name = op_name(std::str::from_utf8(r.bytes()?).map_err(|_| bad("operation name"))?)?;
        (s.procs, s.next_pid, s.pid_max, s.ram) = Wire::get(r)?;
        (s.mms, s.vmas, s.avs, s.avcs) = Wire::get(r)?;
        s.pages = Wire::get(r)?;
        (s.allocations, s.site_allocs, s.inject, s.rng) = Wire::get(r)?;
        (s.ptes, s.merge_sites, s.merge_failed) = Wire::get(r)?;
        (s.swap, s.tree_seq) = Wire::get(r)?;
        (s.ws_cur, s.ws_snap) = Wire::get(r)?;
        let n = r.read_len()?;
        for _ in 0..n {
            let k = op_name(std::str::from_utf8(r.bytes()?).map_err(|_| bad("operation name"))?)?;
            if s.ws_totals.insert(k, WriteStats::get(r)?).is_some() {
                return Err(bad("an operation kind repeats"));
            }
        }
        Ok(s)
    }
}

impl Simulator {
    /// The whole state as a snapshot (see the module documentation): everything that
    /// decides future results (objects, page tables, random stream, injection, limits,
    /// counters). Fails with `OutOfMemory` beyond the host budget, `Interrupted` on Ctrl-C.
    pub fn to_snapshot(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        for b in MAGIC {
            w.byte(*b);
        }
        for b in FORMAT_VERSION.to_le_bytes().into_iter().chain([0u8; 8]) {
            w.byte(b);
        }
        w.bytes(env!("CARGO_PKG_VERSION").as_bytes());
        self.put(&mut w);
        let mut buf = w.finish()?;
        let n = (buf.len() - HEADER) as u64;
        buf[12..HEADER].copy_from_slice(&n.to_le_bytes());
        let sum = checksum(&buf[HEADER..]);
        buf.try_reserve_exact(8).map_err(|_| SimError::OutOfMemory("snapshot: no room for the checksum".into()))?;
        buf.extend_from_slice(&sum.to_le_bytes());
        Ok(buf)
    }

    /// A simulator from [`Simulator::to_snapshot`]'s bytes. Anything else is an
    /// `InvalidArgument` naming what is wrong: not a snapshot, another format version,
    /// truncated, a checksum mismatch, or a malformed payload.
    pub fn from_snapshot(data: &[u8]) -> Result<Simulator> {
        if data.len() < 8 || &data[..8] != MAGIC {
            return Err(SimError::InvalidArgument(format!(
                "data: not an rmapsim snapshot (it does not start with {:?})",
                std::str::from_utf8(MAGIC).unwrap()
            )));
        }
        if data.len() < HEADER + 8 {
            return Err(bad(format!("truncated: {} bytes, shorter than any snapshot", data.len())));
        }
        let version = u32::from_le_bytes(data[8..12].try_into().unwrap());
        if version != FORMAT_VERSION && version != OLD_FORMAT_VERSION {
            return Err(SimError::InvalidArgument(format!(
                "data: snapshot format version {version}; this rmapsim ({}) reads versions {OLD_FORMAT_VERSION} and {FORMAT_VERSION} only",
                env!("CARGO_PKG_VERSION")
            )));
        }
        let n = u64::from_le_bytes(data[12..HEADER].try_into().unwrap());
        if n != (data.len() - HEADER - 8) as u64 {
            return Err(bad(format!(
                "the header gives a {n}-byte payload but {} bytes follow it (truncated or extended)",
                data.len() - HEADER - 8
            )));
        }
        let payload = &data[HEADER..data.len() - 8];
        let sum = u64::from_le_bytes(data[data.len() - 8..].try_into().unwrap());
        if checksum(payload) != sum {
            return Err(bad("checksum mismatch (the bytes were changed or corrupted)"));
        }
        let mut r = Reader::new(payload);
        r.ptes_v2 = version == OLD_FORMAT_VERSION;
        let _writer_version = r.bytes()?;
        let mut s = Simulator::get(&mut r)?;
        if r.remaining() != 0 {
            return Err(bad(format!("{} bytes left over after the state", r.remaining())));
        }
        if version == OLD_FORMAT_VERSION {
            s.upgrade_format_2();
        }
        Ok(s)
    }
}

mod upgrade;

#[cfg(test)]
mod tests;
