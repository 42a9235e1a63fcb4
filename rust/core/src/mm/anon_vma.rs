//! Linking VMAs to anon_vmas: the write side of `mm/rmap.c`, for every era.
//!
//! Legacy era (≤ 2.6.33): a VMA sits directly on its anon_vma's list.
//! Chain eras (2.6.34+): `anon_vma_chain` entries link each VMA to every anon_vma whose
//! pages it may map; `vma->anon_vma` is only where *new* pages go.
//! Root eras (2.6.35+): every anon_vma records its fork tree's root, whose lock covers
//! the tree; non-roots pin the root (refcount) so it is freed last.
//! Index: a list (≤ 3.6) or an interval tree keyed by the VMA's pgoff range (3.7+).
//! Fork reuse: 3.19's `degree` rule, 6.0's `num_children` / `num_active_vmas` rule.

use crate::error::Result;
use crate::index::itree;
use crate::policy::{ForkReuse, Linking, LockScope, PrepareReuse};
use crate::state::objects::*;
use crate::state::sim::{AllocSite, Simulator};

impl Simulator {
    /// `anon_vma_alloc` (after the caller's `may_alloc`): a new root of its own tree.
    fn anon_vma_alloc(&mut self) -> AnonVmaId {
        let av = self.avs.insert(AnonVma {
            index: crate::index::AnonIndex::default(),
            root: crate::state::arena::Id::new(0, 0),
            parent: crate::state::arena::Id::new(0, 0),
            refcount: 1,
            degree: 1,
            num_children: 0,
            num_active_vmas: 0,
        });
        if let Some(a) = self.avs.get_mut(av) {
            a.root = av;
            a.parent = av;
        }
        av
    }

    fn av(&mut self, av: AnonVmaId) -> Option<&mut AnonVma> {
        self.avs.get_mut(av)
    }

    /// The lock a write-side operation on `av` takes (`anon_vma_lock_write`): the
    /// anon_vma itself, or its root.
    pub(crate) fn lock_of(&self, av: AnonVmaId) -> AnonVmaId {
        match self.policy.lock_scope {
            LockScope::PerAnonVma => av,
            LockScope::Root => self.avs.get(av).map_or(av, |a| a.root),
        }
    }

    /// Count a write-side lock acquisition unless `held` already holds that lock
    /// (`lock_anon_vma_root` keeps the root locked across a loop).
    fn lock_write(&mut self, av: AnonVmaId, held: &mut Option<AnonVmaId>) {
        let l = self.lock_of(av);
        if *held != Some(l) {
            self.count_lock_acquire();
            *held = Some(l);
        }
    }

    /// Insert `avc` into its anon_vma's index (list head/tail, or interval tree keyed by
    /// the VMA's current range).
    fn av_index_insert(&mut self, avc: AvcId, at_head: bool) {
        let Some(c) = self.avcs.get(avc) else { return };
        let (av, vma) = (c.anon_vma, c.vma);
        self.count_index_insert();
        let key = crate::index::key_of(self.vma(vma));
        // A tree insertion's number orders equal keys; lists need none.
        let seq = if self.policy.index.keyed() { self.next_tree_seq() } else { 0 };
        if let Some(a) = self.avs.get_mut(av) {
            a.index.insert(self.policy.index, &mut self.avcs, avc, key, at_head, seq);
        }
    }

    /// Remove `avc` from its anon_vma's index; true when the index became empty.
    fn av_index_remove(&mut self, avc: AvcId) -> bool {
        let Some(av) = self.avcs.get(avc).map(|c| c.anon_vma) else { return false };
        self.count_index_remove();
        self.avs.get_mut(av).is_some_and(|a| a.index.remove(&mut self.avcs, avc))
    }

    /// `anon_vma_interval_tree_pre_update_vma` + `post_update_vma`: `vma`'s range or pgoff
    /// changed, so every chain entry is taken out of its tree and put back with the new
    /// key. Nothing to do for list indexes.
    pub(crate) fn rekey_vma(&mut self, vma: VmaId) {
        if !self.policy.index.keyed() {
            return;
        }
        let key = crate::index::key_of(self.vma(vma));
        let chain = self.vma(vma).chain.clone();
        let mut held = None;
        for &c in &chain {
            let Some(av) = self.avcs.get(c).map(|x| x.anon_vma) else { continue };
            self.lock_write(av, &mut held);
            let seq = self.next_tree_seq();
            if let Some(a) = self.avs.get_mut(av) {
                a.index.rekey(&mut self.avcs, c, key, seq);
            }
            self.count_index_remove();
            self.count_index_insert();
            self.count_tree_rekey();
        }
    }

    /// `anon_vma_chain_link`: a new entry linking `vma` to `av`, newest on the VMA's chain.
    fn anon_vma_chain_link(&mut self, vma: VmaId, av: AnonVmaId, at_head: bool) {
        // Callers pass a live anon_vma they just allocated or found on a live chain.
        debug_assert!(self.avs.contains(av));
        let avc = self.avcs.insert(Avc { vma, anon_vma: av, pos: 0, tree: itree::TreeLinks::default() });
        self.vma_mut(vma).chain.push(avc);
        self.av_index_insert(avc, at_head);
    }

    /// `anon_vma_link` / `__anon_vma_link` (≤ 2.6.33): append the VMA to its anon_vma's
    /// list. Allocates nothing and cannot fail.
    pub(crate) fn anon_vma_link(&mut self, vma: VmaId) {
        let Some(av) = self.vma(vma).anon_vma else { return };
        self.count_lock_acquire();
        self.count_index_insert();
        // vma->anon_vma of a live VMA is live (invariant 3 checks it).
        if let Some(a) = self.avs.get_mut(av) {
            let pos = a.index.link_vma(vma);
            self.vma_mut(vma).av_pos = pos;
        }
    }

    /// `anon_vma_unlink` (≤ 2.6.33): take the VMA off its anon_vma's list and free the
    /// anon_vma when the list is empty.
    pub(crate) fn anon_vma_unlink(&mut self, vma: VmaId) {
        if let Some(av) = self.vma(vma).anon_vma {
            self.count_lock_acquire();
            self.count_index_remove();
            let pos = self.vma(vma).av_pos;
            let vmas = &mut self.vmas;
            let emptied = self.avs.get_mut(av).is_some_and(|a| {
                a.index.list_del(pos, &mut self.avcs, |v, p| {
                    if let Some(v) = vmas.get_mut(v) {
                        v.av_pos = p;
                    }
                })
            });
            if emptied {
                self.avs.remove(av, self.op);
            }
        }
    }

    /// `anon_vma_compatible(a, b)`: `a` ends where `b` starts, same file (its identity
    /// lives in the compared `flags` word), flags equal but for `VM_READ|VM_WRITE|VM_EXEC` (those
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

    /// `find_mergeable_anon_vma`: try the next VMA, then the previous one, for an
    /// anon_vma this VMA could share — one it might later be merged with by mprotect.
    pub(crate) fn find_mergeable_anon_vma(&self, vma: VmaId) -> Option<AnonVmaId> {
        if let Some(next) = self.vma_next(vma) {
            if let Some(av) = self.reusable_anon_vma(next, vma, next) {
                return Some(av);
            }
        }
        let prev = self.vma_prev(vma)?;
        self.reusable_anon_vma(prev, prev, vma)
    }

    /// `anon_vma_prepare` (all eras): give `vma` an anon_vma before its first anonymous
    /// page. Chain eras allocate the chain entry first, then reuse a neighbour's anon_vma
    /// (era rule) or allocate a new root. 3.19 counts a degree for the VMA reference (and
    /// for a new root, its self-parent link); 6.0 counts an active VMA (and a child for a
    /// new root).
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
                let (av, new_root) = match self.find_mergeable_anon_vma(vma) {
                    Some(av) => (av, false),
                    None => {
                        // On failure the kernel frees the chain entry it allocated: here
                        // nothing was inserted yet, so there is nothing to undo.
                        self.may_alloc(AllocSite::AnonVmaPrepare)?;
                        (self.anon_vma_alloc(), true)
                    }
                };
                self.lock_write(av, &mut None);
                self.vma_mut(vma).anon_vma = Some(av);
                let at_head = self.policy.prepare_links_at_head;
                self.anon_vma_chain_link(vma, av, at_head);
                if let Some(a) = self.av(av) {
                    // 3.19: VMA reference or self-parent link for a new root.
                    a.degree += 1;
                    // 6.0: self-parent link for a new root; one more active VMA.
                    if new_root {
                        a.num_children += 1;
                    }
                    a.num_active_vmas += 1;
                }
            }
        }
        Ok(())
    }

    /// May `anon_vma_clone` hand `av` to a forked VMA instead of a new anon_vma? (3.19:
    /// `degree < 2` and not the source's own; 6.0: no active VMA and fewer than two
    /// children.)
    fn fork_may_reuse(&self, av: AnonVmaId, src_av: Option<AnonVmaId>) -> bool {
        let Some(a) = self.avs.get(av) else { return false };
        match self.policy.fork_reuse {
            ForkReuse::Never => false,
            ForkReuse::Degree => Some(av) != src_av && a.degree < 2,
            ForkReuse::ActiveVmas => a.num_children < 2 && a.num_active_vmas == 0,
        }
    }

    /// `anon_vma_clone(dst, src)`: link `dst` to every anon_vma on `src`'s chain, oldest
    /// first (the patch as posted and 7.0 reverse the order, `clone_reverses_chain`). From
    /// 3.19, when called from fork (`dst` has no anon_vma yet), the first reusable anon_vma
    /// becomes `dst`'s; a `dst->anon_vma` set on return counts one more degree / active VMA.
    /// Up to 6.19 each entry is linked as it is allocated and an ENOMEM unlinks what was
    /// linked; 7.0 (`clone_allocs_first`) allocates every entry first and links them in a
    /// second pass. On ENOMEM `dst->anon_vma` is cleared (`clone_error_clears_anon_vma`;
    /// not in 7.0-rc1..rc5).
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
            // at the head of the destination: the clone comes out reversed. 7.0's first
            // pass does the same (list_for_each_entry over src, list_add onto dst).
            src_avs.reverse();
        }
        if self.policy.clone_allocs_first {
            return self.anon_vma_clone_allocs_first(dst, src, &src_avs);
        }
        let src_av = self.vma(src).anon_vma;
        let mut held = None;
        for av in src_avs {
            if let Err(e) = self.may_alloc(AllocSite::AvcClone) {
                if self.policy.clone_error_clears_anon_vma {
                    self.vma_mut(dst).anon_vma = None;
                }
                self.unlink_anon_vmas(dst);
                return Err(e);
            }
            self.lock_write(av, &mut held);
            self.anon_vma_chain_link(dst, av, false);
            self.maybe_reuse_anon_vma(dst, av, src_av);
        }
        self.clone_counts_active(dst);
        Ok(())
    }

    /// The fork-only reuse of `anon_vma_clone` (7.0 `maybe_reuse_anon_vma`; 3.19–6.19
    /// inline): a `dst` still without anon_vma takes `av` when the era's rule allows.
    fn maybe_reuse_anon_vma(&mut self, dst: VmaId, av: AnonVmaId, src_av: Option<AnonVmaId>) {
        if self.vma(dst).anon_vma.is_none() && src_av.is_some() && self.fork_may_reuse(av, src_av) {
            self.vma_mut(dst).anon_vma = Some(av);
        }
    }

    /// The end of a successful `anon_vma_clone`: `dst->anon_vma` (reused by fork, or
    /// preset by the caller) counts one more degree / active VMA.
    fn clone_counts_active(&mut self, dst: VmaId) {
        if let Some(a) = self.vma(dst).anon_vma {
            if let Some(a) = self.av(a) {
                a.degree += 1;
                a.num_active_vmas += 1;
            }
        }
    }

    /// 7.0 `anon_vma_clone` (bfc2b13b05a1, mm/rmap.c 7.0-rc6 320-371): pass 1, without a
    /// lock, allocates one entry per anon_vma of `src_avs` and puts it on `dst`'s chain
    /// (`anon_vma_chain_assign`: no tree insert); an ENOMEM frees them through
    /// `cleanup_partial_anon_vmas`. Pass 2 takes the root lock once and inserts each entry
    /// into its tree, oldest on `dst`'s chain first, offering each anon_vma to fork reuse.
    fn anon_vma_clone_allocs_first(&mut self, dst: VmaId, src: VmaId, src_avs: &[AnonVmaId]) -> Result<()> {
        let src_av = self.vma(src).anon_vma;
        for &av in src_avs {
            if let Err(e) = self.may_alloc(AllocSite::AvcClone) {
                self.cleanup_partial_anon_vmas(dst);
                return Err(e);
            }
            let avc = self.avcs.insert(Avc { vma: dst, anon_vma: av, pos: 0, tree: itree::TreeLinks::default() });
            self.vma_mut(dst).chain.push(avc);
        }
        let mut held = None;
        let chain = self.vma(dst).chain.clone();
        for c in chain {
            let Some(av) = self.avcs.get(c).map(|x| x.anon_vma) else { continue };
            self.lock_write(av, &mut held);
            self.av_index_insert(c, false);
            self.maybe_reuse_anon_vma(dst, av, src_av);
        }
        self.clone_counts_active(dst);
        Ok(())
    }

    /// `cleanup_partial_anon_vmas(vma)` (7.0): free the chain entries a failed clone made
    /// (none is in a tree yet) and, since 3a206a8649f8 (7.0-rc6), clear `vma->anon_vma`.
    /// Without the fix (`clone_error_clears_anon_vma = false`, 7.0-rc1..rc5) the anon_vma
    /// the caller preset stays on `vma`, uncounted in its `num_active_vmas`.
    fn cleanup_partial_anon_vmas(&mut self, vma: VmaId) {
        for c in std::mem::take(&mut self.vma_mut(vma).chain) {
            self.avcs.remove(c, self.op);
        }
        if self.policy.clone_error_clears_anon_vma {
            self.vma_mut(vma).anon_vma = None;
        }
    }

    /// `anon_vma_fork(vma, pvma)`: attach the child VMA to the parent's anon_vmas (so
    /// rmap finds not-yet-COWed pages in the child), then — unless the clone reused one
    /// (3.19+) — give it its own anon_vma, a child of the parent VMA's, pinning the root.
    /// On ENOMEM everything linked here is unlinked (not in the patch as posted). 7.0
    /// (`fork_alloc_first`) allocates the anon_vma and its entry before the clone.
    pub(crate) fn anon_vma_fork(&mut self, vma: VmaId, pvma: VmaId) -> Result<()> {
        let Some(pav) = self.vma(pvma).anon_vma else { return Ok(()) };
        self.vma_mut(vma).anon_vma = None;
        if self.policy.fork_alloc_first {
            return self.anon_vma_fork_alloc_first(vma, pvma, pav);
        }
        self.anon_vma_clone(vma, pvma)?;
        if self.vma(vma).anon_vma.is_some() {
            return Ok(()); // an existing anon_vma was reused
        }
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
            self.avs.remove(av, self.op); // put_anon_vma of a fresh anon_vma frees it
            if unlink {
                self.unlink_anon_vmas(vma);
            }
            return Err(e);
        }
        let avc = self.avcs.insert(Avc { vma, anon_vma: av, pos: 0, tree: itree::TreeLinks::default() });
        self.fork_attach_own(vma, pav, av, avc);
        Ok(())
    }

    /// 7.0 `anon_vma_fork` (91901a441fa1, mm/rmap.c 7.0-rc6 378-442): allocate the new
    /// anon_vma, then its chain entry (a failure frees the anon_vma), then clone; when the
    /// clone fails or reused an anon_vma, both allocations are freed unused.
    fn anon_vma_fork_alloc_first(&mut self, vma: VmaId, pvma: VmaId, pav: AnonVmaId) -> Result<()> {
        self.may_alloc(AllocSite::AnonVmaFork)?;
        let av = self.anon_vma_alloc();
        if let Err(e) = self.may_alloc(AllocSite::AvcFork) {
            self.avs.remove(av, self.op); // put_anon_vma of a fresh anon_vma frees it
            return Err(e);
        }
        let avc = self.avcs.insert(Avc { vma, anon_vma: av, pos: 0, tree: itree::TreeLinks::default() });
        let cloned = self.anon_vma_clone(vma, pvma);
        if cloned.is_err() || self.vma(vma).anon_vma.is_some() {
            self.avs.remove(av, self.op);
            self.avcs.remove(avc, self.op);
            return cloned;
        }
        self.fork_attach_own(vma, pav, av, avc);
        Ok(())
    }

    /// The end of `anon_vma_fork`: `av` (fresh, with its unlinked entry `avc`) becomes
    /// `vma`'s anon_vma, a child of `pav` in `pav`'s tree (pinning the root), its entry
    /// newest on `vma`'s chain and in its index.
    fn fork_attach_own(&mut self, vma: VmaId, pav: AnonVmaId, av: AnonVmaId, avc: AvcId) {
        if self.policy.track_root {
            let root = self.avs.get(pav).map_or(pav, |p| p.root);
            if let Some(a) = self.av(av) {
                a.root = root;
                a.parent = pav;
                a.num_active_vmas = 1;
            }
            if let Some(r) = self.av(root) {
                r.refcount += 1; // get_anon_vma(root)
            }
        }
        self.vma_mut(vma).anon_vma = Some(av);
        self.lock_write(av, &mut None);
        self.vma_mut(vma).chain.push(avc);
        self.av_index_insert(avc, false);
        if let Some(p) = self.av(pav) {
            p.degree += 1;
            p.num_children += 1;
        }
    }

    /// `put_anon_vma`: drop one reference; at zero the anon_vma is freed and, for a
    /// non-root, its pin on the root is dropped (so the root goes last).
    fn put_anon_vma(&mut self, av: AnonVmaId) {
        let Some(a) = self.av(av) else { return };
        a.refcount = a.refcount.saturating_sub(1);
        if a.refcount > 0 {
            return;
        }
        let root = a.root;
        self.avs.remove(av, self.op);
        if root != av {
            self.put_anon_vma(root);
        }
    }

    /// `unlink_anon_vmas(vma)` (2.6.34+), or `anon_vma_unlink` in the legacy era: remove
    /// each chain entry, newest first, from its anon_vma's index; an anon_vma whose index
    /// becomes empty loses its parent's child count (3.19+) and is released — freed at
    /// once (2.6.34), or through its refcount after the loop (2.6.35+, so the root, last
    /// on the chain and pinned by its children, goes last). The VMA's own anon_vma loses a
    /// degree / active VMA and, from 3.19, `vma->anon_vma` is cleared.
    pub(crate) fn unlink_anon_vmas(&mut self, vma: VmaId) {
        if self.policy.linking == Linking::Legacy {
            self.anon_vma_unlink(vma);
            return;
        }
        let chain = std::mem::take(&mut self.vma_mut(vma).chain);
        let mut emptied = Vec::new();
        let mut held = None;
        for &c in chain.iter().rev() {
            let Some(av) = self.avcs.get(c).map(|x| x.anon_vma) else { continue };
            self.lock_write(av, &mut held);
            let empty = self.av_index_remove(c);
            self.avcs.remove(c, self.op);
            if !empty {
                continue;
            }
            if self.policy.track_root {
                let parent = self.avs.get(av).map_or(av, |a| a.parent);
                if let Some(p) = self.av(parent) {
                    p.degree = p.degree.saturating_sub(1);
                    p.num_children = p.num_children.saturating_sub(1);
                }
                emptied.push(av);
            } else {
                self.avs.remove(av, self.op);
            }
        }
        if self.policy.fork_reuse != ForkReuse::Never {
            if let Some(own) = self.vma(vma).anon_vma {
                let mut underflow = false;
                if let Some(a) = self.av(own) {
                    a.degree = a.degree.saturating_sub(1);
                    // An unsigned long in the kernel: a decrement never matched by an
                    // increment (7.0-rc1's stale anon_vma) wraps instead of stopping at 0.
                    underflow = a.num_active_vmas == 0;
                    a.num_active_vmas = a.num_active_vmas.wrapping_sub(1);
                }
                if underflow {
                    self.kernel_warn(format!(
                        "unlink_anon_vmas: num_active_vmas of anon_vma {:#x} underflows",
                        own.to_u64()
                    ));
                }
                self.vma_mut(vma).anon_vma = None;
            }
        }
        for av in emptied {
            self.warn_if_still_counted(av);
            self.put_anon_vma(av);
        }
    }

    /// The second pass of `unlink_anon_vmas` (6.0+, `VM_WARN_ON` on both counters): an
    /// anon_vma whose index became empty counts no child and no active VMA any more.
    fn warn_if_still_counted(&mut self, av: AnonVmaId) {
        if self.policy.fork_reuse != ForkReuse::ActiveVmas {
            return;
        }
        let Some(a) = self.avs.get(av) else { return };
        let (kids, active) = (a.num_children, a.num_active_vmas);
        if kids != 0 || active != 0 {
            self.kernel_warn(format!(
                "unlink_anon_vmas: anon_vma {:#x} is released with num_children {kids} / num_active_vmas {active} (the kernel's VM_WARN_ON)",
                av.to_u64()
            ));
        }
    }

    /// `anon_vma_merge(vma, next)`: `next` is being merged into `vma`, which links the
    /// same anon_vmas, so dropping `next`'s links frees no anon_vma.
    pub(crate) fn anon_vma_merge(&mut self, _vma: VmaId, next: VmaId) {
        self.unlink_anon_vmas(next);
    }

    /// Give `importer` (which has no anon_vma) the anon_vma and chain of `exporter`, the
    /// importer rule of `vma_adjust` ("Easily overlooked: when mprotect shifts the
    /// boundary…", `dup_anon_vma` in 6.x); `adjusted` is the VMA `vma_adjust` was called
    /// on. 2.6.34+ clones the chain and can fail; 2.6.33 only links. The patch as posted
    /// cloned `adjusted`'s chain instead of the exporter's — an empty chain when the
    /// importer is `adjusted`.
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
                self.vma_mut(importer).anon_vma = av;
                self.anon_vma_clone(importer, source)?;
            }
        }
        Ok(())
    }
}
