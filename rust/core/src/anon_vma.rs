//! Linking VMAs to anon_vmas: the write side of `mm/rmap.c`.
//!
//! Legacy era (≤ 2.6.33): a VMA sits directly on its anon_vma's list.
//! Chain era (2.6.34+): `anon_vma_chain` entries link each VMA to every anon_vma whose
//! pages it may map; `vma->anon_vma` is only where *new* pages go.

use crate::error::Result;
use crate::objects::*;
use crate::policy::{Linking, PrepareReuse};
use crate::sim::{AllocSite, Simulator};

impl Simulator {
    /// `anon_vma_alloc` (after the caller's `may_alloc`).
    fn anon_vma_alloc(&mut self) -> AnonVmaId {
        self.avs.insert(AnonVma::default())
    }

    /// Remove one entry from `av`'s list and keep back-pointers valid across compaction.
    /// Returns true when the list became empty.
    fn av_list_del(&mut self, av: AnonVmaId, pos: ListPos) -> bool {
        let Some(a) = self.avs.get_mut(av) else {
            return false;
        };
        a.list.remove(pos);
        if a.list.wants_compaction() {
            let moved = a.list.compact();
            for (e, p) in moved {
                match e.avc {
                    Some(c) => {
                        if let Some(c) = self.avcs.get_mut(c) {
                            c.pos = p
                        }
                    }
                    None => self.vma_mut(e.vma).av_pos = p,
                }
            }
        }
        self.avs.get(av).is_some_and(|a| a.list.is_empty())
    }

    /// `anon_vma_chain_link` (2.6.34): put `avc` at the head of `vma`'s chain and at the
    /// tail (or, for prepare in 2.6.34, the head) of `av`'s list.
    fn anon_vma_chain_link(&mut self, vma: VmaId, av: AnonVmaId, at_head: bool) {
        // Callers pass a live anon_vma they just allocated or found on a live chain.
        debug_assert!(self.avs.contains(av));
        let avc = self.avcs.insert(Avc { vma, anon_vma: av, pos: 0 });
        let e = ListEntry { avc: Some(avc), vma };
        if let Some(a) = self.avs.get_mut(av) {
            let pos = if at_head { a.list.push_head(e) } else { a.list.push_tail(e) };
            if let Some(c) = self.avcs.get_mut(avc) {
                c.pos = pos;
            }
        }
        self.vma_mut(vma).chain.push(avc);
    }

    /// `anon_vma_link` / `__anon_vma_link` (≤ 2.6.33): append the VMA to its anon_vma's
    /// list. Allocates nothing and cannot fail.
    pub(crate) fn anon_vma_link(&mut self, vma: VmaId) {
        let Some(av) = self.vma(vma).anon_vma else { return };
        // vma->anon_vma of a live VMA is live (invariant 3 checks it).
        if let Some(a) = self.avs.get_mut(av) {
            let pos = a.list.push_tail(ListEntry { avc: None, vma });
            self.vma_mut(vma).av_pos = pos;
        }
    }

    /// `anon_vma_unlink` (≤ 2.6.33): take the VMA off its anon_vma's list and free the
    /// anon_vma when the list is empty.
    pub(crate) fn anon_vma_unlink(&mut self, vma: VmaId) {
        if let Some(av) = self.vma(vma).anon_vma {
            let pos = self.vma(vma).av_pos;
            if self.av_list_del(av, pos) {
                self.avs.remove(av, self.op);
            }
        }
    }

    /// `anon_vma_compatible(a, b)`: `a` ends where `b` starts, same file (none: all our
    /// mappings are anonymous), flags equal but for `VM_READ|VM_WRITE|VM_EXEC` (those
    /// may later be mprotected into each other), and contiguous `vm_pgoff`.
    fn anon_vma_compatible(&self, a: VmaId, b: VmaId) -> bool {
        let (a, b) = (self.vma(a), self.vma(b));
        a.end == b.start && a.flags == b.flags && b.pgoff == a.pgoff + a.pages()
    }

    /// `reusable_anon_vma` (2.6.34-rc4): the neighbour `old`'s anon_vma, if it may be
    /// shared. The era decides whether the neighbour's chain must be singular.
    fn reusable_anon_vma(&self, old: VmaId, a: VmaId, b: VmaId) -> Option<AnonVmaId> {
        if !self.anon_vma_compatible(a, b) {
            return None;
        }
        let o = self.vma(old);
        let av = o.anon_vma?;
        match self.policy.prepare_reuse {
            PrepareReuse::AnyCompatible => Some(av),
            PrepareReuse::SingularChain => (o.chain.len() == 1).then_some(av),
        }
    }

    /// `find_mergeable_anon_vma` (mm/mmap.c, 2.6.33 and 2.6.34): try the next VMA, then
    /// the previous one, for an anon_vma this VMA could share — one it might later be
    /// merged with by mprotect.
    pub(crate) fn find_mergeable_anon_vma(&self, vma: VmaId) -> Option<AnonVmaId> {
        if let Some(next) = self.vma_next(vma) {
            if let Some(av) = self.reusable_anon_vma(next, vma, next) {
                return Some(av);
            }
        }
        let prev = self.vma_prev(vma)?;
        self.reusable_anon_vma(prev, prev, vma)
    }

    /// `anon_vma_prepare` (2.6.33 / 2.6.34): give `vma` an anon_vma before its first
    /// anonymous page. 2.6.34 allocates the chain entry first, then reuses a neighbour's
    /// anon_vma (only with a singular chain) or allocates a new one.
    pub(crate) fn anon_vma_prepare(&mut self, vma: VmaId) -> Result<()> {
        if self.vma(vma).anon_vma.is_some() {
            return Ok(());
        }
        match self.policy.linking {
            Linking::Legacy => {
                let av = match self.find_mergeable_anon_vma(vma) {
                    Some(av) => av,
                    None => {
                        self.may_alloc(AllocSite::AnonVmaPrepare)?;
                        self.anon_vma_alloc()
                    }
                };
                self.vma_mut(vma).anon_vma = Some(av);
                self.anon_vma_link(vma);
            }
            Linking::Chain => {
                self.may_alloc(AllocSite::AvcPrepare)?;
                let av = match self.find_mergeable_anon_vma(vma) {
                    Some(av) => av,
                    None => {
                        // On failure the kernel frees the chain entry it allocated: here
                        // nothing was inserted yet, so there is nothing to undo.
                        self.may_alloc(AllocSite::AnonVmaPrepare)?;
                        self.anon_vma_alloc()
                    }
                };
                self.vma_mut(vma).anon_vma = Some(av);
                let at_head = self.policy.prepare_links_at_head;
                self.anon_vma_chain_link(vma, av, at_head);
            }
        }
        Ok(())
    }

    /// `anon_vma_clone(dst, src)` (2.6.34): link `dst` to every anon_vma on `src`'s chain,
    /// oldest first (so `dst`'s chain has `src`'s order). On ENOMEM, unlink what was
    /// linked and fail.
    pub(crate) fn anon_vma_clone(&mut self, dst: VmaId, src: VmaId) -> Result<()> {
        let mut src_avs: Vec<AnonVmaId> = self
            .vma(src)
            .chain
            .iter()
            // Chain entries of a live VMA are live (invariant 3 checks it).
            .filter_map(|&c| self.avcs.get(c).map(|x| x.anon_vma))
            .collect();
        if self.policy.clone_reverses_chain {
            // The patch as posted walked the source newest first while adding each entry
            // at the head of the destination: the clone comes out reversed.
            src_avs.reverse();
        }
        for av in src_avs {
            if let Err(e) = self.may_alloc(AllocSite::AvcClone) {
                self.unlink_anon_vmas(dst);
                return Err(e);
            }
            self.anon_vma_chain_link(dst, av, false);
        }
        Ok(())
    }

    /// `anon_vma_fork(vma, pvma)` (2.6.34): attach the child VMA to the parent's anon_vmas
    /// (so rmap finds not-yet-COWed pages in the child), then give it its own anon_vma
    /// for the pages it will COW. On ENOMEM everything linked here is unlinked.
    pub(crate) fn anon_vma_fork(&mut self, vma: VmaId, pvma: VmaId) -> Result<()> {
        if self.vma(pvma).anon_vma.is_none() {
            return Ok(());
        }
        self.anon_vma_clone(vma, pvma)?;
        // The patch as posted returned -ENOMEM here without unlinking the cloned chain
        // (`fork_error_unlinks = false`): its entries leak, pointing at a VMA that
        // dup_mmap is about to free.
        let unlink = self.policy.fork_error_unlinks;
        if let Err(e) = self.may_alloc(AllocSite::AnonVmaFork) {
            if unlink {
                self.unlink_anon_vmas(vma);
            }
            return Err(e);
        }
        let av = self.anon_vma_alloc();
        if let Err(e) = self.may_alloc(AllocSite::AvcFork) {
            self.avs.remove(av, self.op);
            if unlink {
                self.unlink_anon_vmas(vma);
            }
            return Err(e);
        }
        self.anon_vma_chain_link(vma, av, false);
        self.vma_mut(vma).anon_vma = Some(av);
        Ok(())
    }

    /// `unlink_anon_vmas(vma)` (2.6.34), or `anon_vma_unlink` in the legacy era: remove
    /// each chain entry, newest first, from its anon_vma's list; free an anon_vma whose
    /// list becomes empty; free the entries.
    pub(crate) fn unlink_anon_vmas(&mut self, vma: VmaId) {
        if self.policy.linking == Linking::Legacy {
            self.anon_vma_unlink(vma);
            return;
        }
        let chain = std::mem::take(&mut self.vma_mut(vma).chain);
        for &c in chain.iter().rev() {
            let Some(avc) = self.avcs.remove(c, self.op) else {
                continue;
            };
            if self.av_list_del(avc.anon_vma, avc.pos) {
                self.avs.remove(avc.anon_vma, self.op);
            }
        }
    }

    /// `anon_vma_merge(vma, next)`: `next` is being merged into `vma`, which links the
    /// same anon_vmas, so dropping `next`'s links frees no anon_vma.
    pub(crate) fn anon_vma_merge(&mut self, _vma: VmaId, next: VmaId) {
        self.unlink_anon_vmas(next);
    }

    /// Give `importer` (which has no anon_vma) the anon_vma and chain of `exporter`, the
    /// importer rule of `vma_adjust` ("Easily overlooked: when mprotect shifts the
    /// boundary…"); `adjusted` is the VMA `vma_adjust` was called on. 2.6.34 clones the
    /// chain and can fail; 2.6.33 only links. The patch as posted cloned `adjusted`'s
    /// chain instead of the exporter's — an empty chain when the importer is `adjusted`.
    pub(crate) fn import_anon_vma(&mut self, importer: VmaId, exporter: VmaId, adjusted: VmaId) -> Result<()> {
        let av = self.vma(exporter).anon_vma;
        if av.is_none() || self.vma(importer).anon_vma.is_some() {
            return Ok(());
        }
        let source = if self.policy.importer_clones_exporter { exporter } else { adjusted };
        match self.policy.linking {
            Linking::Legacy => {
                self.vma_mut(importer).anon_vma = av;
                self.anon_vma_link(importer);
            }
            Linking::Chain => {
                self.anon_vma_clone(importer, source)?;
                self.vma_mut(importer).anon_vma = av;
            }
        }
        Ok(())
    }
}
