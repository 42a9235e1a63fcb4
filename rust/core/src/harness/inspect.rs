//! Read-only inspection of single objects by handle, for navigable views (drgn style:
//! `vma.anon_vma.root`). Each accessor reads one live object and returns its fields with
//! the handles of the objects it points at; a handle whose object was freed, or that never
//! named one, is a [`SimError::StaleHandle`] saying which. Nothing here changes state.
//!
//! Fields that a kernel era does not have are `None` (or absent lists): `anon_vma->root`
//! and the refcount need `track_root` (2.6.35+), `anon_vma->parent` and `degree` came with
//! 3.19 (`fork_reuse = degree`), `num_children` / `num_active_vmas` replaced `degree` in
//! 6.0 (`fork_reuse = active_vmas`), `anon_vma->head` is the index up to 3.6
//! (`index = list`) and `anon_vma->rb_root` from 3.7 (`index = interval_tree`),
//! `vma->anon_vma_chain` exists from 2.6.34 (`linking = chain`).

use crate::error::{Result, SimError};
use crate::policy::{ForkReuse, Linking};
use crate::state::arena::{Arena, Id};
use crate::state::objects::*;
use crate::state::sim::Simulator;

/// An `mm_struct`: its owner and its VMAs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmFields {
    pub pid: u32,
    /// `mm->start_brk`, `mm->brk` (0 until a heap base is set).
    pub start_brk: u64,
    pub brk: u64,
    /// `mm->map_count`.
    pub map_count: usize,
}

/// A `vm_area_struct`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmaFields {
    pub vm_start: u64,
    pub vm_end: u64,
    pub vm_pgoff: u64,
    /// `VM_READ|VM_WRITE|VM_EXEC` as [`prot`] bits.
    pub prot: u8,
    /// The other `vm_flags` bits ([`vmflags`], without the file identity).
    pub flags: u32,
    /// `vm_file` identity, `None` for anonymous memory.
    pub vm_file: Option<u32>,
    /// `vma->vm_mm` (handle) and its owner's pid.
    pub vm_mm: u64,
    pub pid: u32,
    /// `vma->anon_vma`.
    pub anon_vma: Option<u64>,
    /// Entries on `vma->anon_vma_chain`; `None` in the legacy era (no such list).
    pub chain_len: Option<usize>,
}

/// An `anon_vma`. `None`: the era has no such field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnonVmaFields {
    pub root: Option<u64>,
    pub parent: Option<u64>,
    pub refcount: Option<u32>,
    pub degree: Option<u32>,
    pub num_children: Option<u32>,
    pub num_active_vmas: Option<u32>,
    /// Entries on its index: `anon_vma->head` (list eras) or `anon_vma->rb_root` (3.7+).
    pub entries: usize,
    /// Which index the era has: `"head"` or `"rb_root"`.
    pub index: &'static str,
}

/// Handle kinds, as messages and [`Simulator::inspect_list`] name them.
pub const KINDS: &[&str] = &["mm", "vma", "anon_vma", "anon_vma_chain", "page"];

/// `StaleHandle` for `id` of arena `a`: freed (by which operation, when this exact object
/// was the slot's last occupant) or never issued.
fn stale<T>(a: &Arena<T>, id: Id<T>, kind: &str) -> SimError {
    let h = id.to_u64();
    let an = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    match a.freed_by(id) {
        Some(op) if a.handle_at(id.index()) == Some(id) => {
            SimError::StaleHandle(format!("{kind} handle {h:#x} is stale: the {kind} was freed by operation #{op}"))
        }
        Some(_) => SimError::StaleHandle(format!(
            "{kind} handle {h:#x} is stale: the {kind} was freed (its slot has been reused since)"
        )),
        None => SimError::StaleHandle(format!("{kind} handle {h:#x} does not name {an} {kind}")),
    }
}

fn live<'a, T>(a: &'a Arena<T>, h: u64, kind: &str) -> Result<&'a T> {
    let id = Id::from_u64(h);
    a.get(id).ok_or_else(|| stale(a, id, kind))
}

impl Simulator {
    /// The handle of `pid`'s `mm_struct` (`task->mm`); a new one after `exec`.
    pub fn mm_handle(&self, pid: i64) -> Result<u64> {
        Ok(self.proc_mm(pid)?.to_u64())
    }

    /// The VMA of `pid` containing `addr` (the containing case of `find_vma`), if any.
    pub fn vma_handle_at(&self, pid: i64, addr: u64) -> Result<Option<u64>> {
        let mm = self.proc_mm(pid)?;
        Ok(self.find_vma(mm, addr).map(|v| v.to_u64()))
    }

    pub fn inspect_mm(&self, h: u64) -> Result<MmFields> {
        let m = live(&self.mms, h, "mm")?;
        Ok(MmFields { pid: m.pid, start_brk: m.start_brk, brk: m.brk, map_count: m.vmas.len() })
    }

    pub fn inspect_vma(&self, h: u64) -> Result<VmaFields> {
        let v = live(&self.vmas, h, "vma")?;
        Ok(VmaFields {
            vm_start: v.start,
            vm_end: v.end,
            vm_pgoff: v.pgoff,
            prot: v.prot,
            flags: v.flags & vmflags::ADVICE_MASK,
            vm_file: v.file(),
            vm_mm: v.mm.to_u64(),
            pid: self.mm(v.mm).pid,
            anon_vma: v.anon_vma.map(|a| a.to_u64()),
            chain_len: (self.policy.linking == Linking::Chain).then_some(v.chain.len()),
        })
    }

    pub fn inspect_anon_vma(&self, h: u64) -> Result<AnonVmaFields> {
        let a = live(&self.avs, h, "anon_vma")?;
        let p = &self.policy;
        let rooted = p.track_root;
        let (entries, index) = (a.index.len(), p.index.field_name());
        Ok(AnonVmaFields {
            root: rooted.then_some(a.root.to_u64()),
            parent: (p.fork_reuse != ForkReuse::Never).then_some(a.parent.to_u64()),
            refcount: rooted.then_some(a.refcount),
            degree: (p.fork_reuse == ForkReuse::Degree).then_some(a.degree),
            num_children: (p.fork_reuse == ForkReuse::ActiveVmas).then_some(a.num_children),
            num_active_vmas: (p.fork_reuse == ForkReuse::ActiveVmas).then_some(a.num_active_vmas),
            entries,
            index,
        })
    }

    /// An `anon_vma_chain`: `(vma, anon_vma)` handles.
    pub fn inspect_avc(&self, h: u64) -> Result<(u64, u64)> {
        let c = live(&self.avcs, h, "anon_vma_chain")?;
        Ok((c.vma.to_u64(), c.anon_vma.to_u64()))
    }

    /// A page: `(page->mapping, page->index, page_mapcount, swap slot if in the swap
    /// cache)`, as [`Simulator::page_info`].
    pub fn inspect_page(&self, h: u64) -> Result<(u64, u64, u32, Option<u32>)> {
        self.page_info(PageId::from_u64(h))
    }

    /// The list a handle's object heads, as `(anon_vma_chain handle or None, other
    /// handle)` pairs in kernel order:
    /// - `"mm"`: its VMAs in address order, `(None, vma)`;
    /// - `"vma"`: `vma->anon_vma_chain` as `list_for_each_entry` walks it, newest first
    ///   (the VMA's own anon_vma, then its parent's, …, the root's last), `(avc, anon_vma)`;
    ///   empty in the legacy era;
    /// - `"anon_vma"`: its index — `anon_vma->head` in list order (`(avc, vma)`; legacy:
    ///   `(None, vma)`, the VMAs themselves) or `anon_vma->rb_root` in order (`(avc, vma)`).
    pub fn inspect_list(&self, kind: &str, h: u64) -> Result<Vec<(Option<u64>, u64)>> {
        match kind {
            "mm" => {
                let m = live(&self.mms, h, "mm")?;
                Ok(m.vmas.values().map(|v| (None, v.to_u64())).collect())
            }
            "vma" => {
                let v = live(&self.vmas, h, "vma")?;
                Ok(v.chain
                    .iter()
                    .rev()
                    .filter_map(|&c| self.avcs.get(c).map(|x| (Some(c.to_u64()), x.anon_vma.to_u64())))
                    .collect())
            }
            "anon_vma" => {
                let a = live(&self.avs, h, "anon_vma")?;
                let mut out = Vec::with_capacity(a.index.len());
                a.index.for_each_entry(&self.avcs, |c, v, _| {
                    out.push((c.map(|c| c.to_u64()), v.to_u64()));
                    true
                });
                Ok(out)
            }
            _ => Err(SimError::InvalidArgument(format!(
                "kind must be one of \"mm\", \"vma\", \"anon_vma\" (objects that head a list), got {}",
                crate::error::quote(kind)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forked(era: &str) -> (Simulator, i64, i64, u64) {
        let mut s = Simulator::with_era(era, 0).unwrap();
        let p = s.spawn().unwrap() as i64;
        let a = s.mmap(p, 2 * PAGE_SIZE, None, prot::READ | prot::WRITE).unwrap();
        s.touch(p, a, 2 * PAGE_SIZE, true).unwrap();
        let c = s.fork(p).unwrap() as i64;
        (s, p, c, a)
    }

    #[test]
    fn fork_in_2_6_35_links_the_child_to_both_anon_vmas() {
        let (s, p, c, a) = forked("2.6.35");
        let pv = s.vma_handle_at(p, a).unwrap().unwrap();
        let cv = s.vma_handle_at(c, a + 4096).unwrap().unwrap();
        let pav = s.inspect_vma(pv).unwrap().anon_vma.unwrap();
        let cav = s.inspect_vma(cv).unwrap().anon_vma.unwrap();
        assert_ne!(pav, cav);
        let chain = s.inspect_list("vma", cv).unwrap();
        assert_eq!(chain.iter().map(|e| e.1).collect::<Vec<_>>(), vec![cav, pav], "newest first");
        let f = s.inspect_anon_vma(cav).unwrap();
        assert_eq!((f.root, f.refcount, f.parent, f.degree, f.index), (Some(pav), Some(1), None, None, "head"));
        assert_eq!(s.inspect_anon_vma(pav).unwrap().refcount, Some(2), "pinned by the child");
        let on_parent: Vec<u64> = s.inspect_list("anon_vma", pav).unwrap().iter().map(|e| e.1).collect();
        assert!(on_parent.contains(&pv) && on_parent.contains(&cv) && on_parent.len() == 2);
        let (avc, av) = chain[0];
        assert_eq!(s.inspect_avc(avc.unwrap()).unwrap(), (cv, av));
    }

    #[test]
    fn stale_and_unknown_handles_are_named() {
        let (mut s, _p, c, a) = forked("6.0");
        let cv = s.vma_handle_at(c, a).unwrap().unwrap();
        let mm = s.mm_handle(c).unwrap();
        s.exit(c).unwrap();
        let e = s.inspect_vma(cv).unwrap_err();
        assert!(matches!(&e, SimError::StaleHandle(m) if m.contains("was freed by operation #")), "{e}");
        assert!(matches!(s.inspect_mm(mm), Err(SimError::StaleHandle(_))));
        let e = s.inspect_anon_vma(u64::MAX).unwrap_err();
        assert_eq!(e, SimError::StaleHandle("anon_vma handle 0xffffffffffffffff does not name an anon_vma".into()));
        assert!(matches!(s.inspect_list("page", 0), Err(SimError::InvalidArgument(_))));
    }

    #[test]
    fn legacy_era_has_no_chain_and_lists_vmas() {
        let (s, p, c, a) = forked("2.6.33");
        let pv = s.vma_handle_at(p, a).unwrap().unwrap();
        let cv = s.vma_handle_at(c, a).unwrap().unwrap();
        let f = s.inspect_vma(cv).unwrap();
        assert_eq!(f.chain_len, None);
        let av = f.anon_vma.unwrap();
        assert_eq!(s.inspect_vma(pv).unwrap().anon_vma, Some(av), "one anon_vma per family");
        let members = s.inspect_list("anon_vma", av).unwrap();
        assert_eq!(members.len(), 2);
        assert!(members.iter().all(|e| e.0.is_none()));
        assert_eq!(s.inspect_anon_vma(av).unwrap().root, None);
    }
}
