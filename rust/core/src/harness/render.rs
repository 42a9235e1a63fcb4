//! ASCII pictures of an address space, in the style of the kernel's `tools/testing/vma`
//! scenarios (`PPPVVVVNNN`), with anon_vma identity and chains, for failing tests and
//! for users.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::error::Result;
use crate::state::objects::*;
use crate::state::sim::Simulator;

/// Spans up to this many pages are drawn to scale, one column per page.
const TO_SCALE_PAGES: u64 = 160;
/// Otherwise each VMA shows at most this many columns and each gap one.
const MAX_COLS_PER_VMA: u64 = 40;

impl Simulator {
    /// Picture of `pid`'s address space: one letter per VMA (`A`, `B`, …) on a page ruler,
    /// a line of page states under it (`.` no entry, `z` zero page, `p` anon page mapped
    /// once, `s` anon page mapped more than once, `w` swap entry), then one line per VMA
    /// with its range, pgoff, prot, flags, anon_vma and chain (oldest first). anon_vmas
    /// are labelled `av0`, `av1`, … across the whole simulator (see [`Self::anon_vma_labels`]),
    /// so one anon_vma has one label in every process's picture; the handles of the labels
    /// this picture uses follow.
    pub fn render_layout(&self, pid: i64) -> Result<String> {
        let mm = self.proc_mm(pid)?;
        let vmas: Vec<VmaId> = self.mm(mm).vmas.values().copied().collect();
        let mut out = String::new();
        if vmas.is_empty() {
            let _ = writeln!(out, "pid {pid}: no VMAs");
            return Ok(out);
        }
        let first = self.vma(vmas[0]).start;
        let last = self.vma(vmas[vmas.len() - 1]).end;
        let span = (last - first) >> PAGE_SHIFT;
        let to_scale = span <= TO_SCALE_PAGES;
        let _ = writeln!(
            out,
            "pid {pid}: {} VMA(s) in [{first:#x}, {last:#x}){}",
            vmas.len(),
            if to_scale { "" } else { "  (not to scale: long VMAs and gaps are shortened)" }
        );
        let labels = self.anon_vma_labels();
        let mut used: BTreeMap<usize, AnonVmaId> = BTreeMap::new();
        let mut label = |av: AnonVmaId| -> String {
            let n = labels[&av];
            used.insert(n, av);
            format!("av{n}")
        };
        let (mut ruler, mut letters, mut states) = (String::new(), String::new(), String::new());
        let mut col = 0u64;
        let mut cursor = first;
        for (i, &v) in vmas.iter().enumerate() {
            let vma = self.vma(v);
            if vma.start > cursor {
                let gap = (vma.start - cursor) >> PAGE_SHIFT;
                let cols = if to_scale { gap } else { 1 };
                for _ in 0..cols {
                    ruler.push(char::from(b'0' + (col % 10) as u8));
                    letters.push(' ');
                    states.push(' ');
                    col += 1;
                }
            }
            let letter = char::from(b'A' + (i % 26) as u8);
            let cols = if to_scale { vma.pages() } else { vma.pages().min(MAX_COLS_PER_VMA) };
            for c in 0..cols {
                ruler.push(char::from(b'0' + (col % 10) as u8));
                letters.push(letter);
                let addr = vma.start + (c << PAGE_SHIFT);
                let pte = vma.pte(addr);
                states.push(if pte.is_zero() {
                    'z'
                } else if pte.swap_slot().is_some() {
                    'w'
                } else if let Some(p) = pte.page() {
                    if self.pages.mapcount(p).is_some_and(|m| m > 1) {
                        's'
                    } else {
                        'p'
                    }
                } else {
                    '.'
                });
                col += 1;
            }
            cursor = vma.end;
        }
        let _ = writeln!(out, "  {ruler}");
        let _ = writeln!(out, "  {letters}");
        let _ = writeln!(out, "  {states}");
        for (i, &v) in vmas.iter().enumerate() {
            let vma = self.vma(v);
            let letter = char::from(b'A' + (i % 26) as u8);
            let av = vma.anon_vma.map_or("-".to_string(), &mut label);
            let chain: Vec<String> =
                vma.chain.iter().filter_map(|&c| self.avcs.get(c)).map(|c| label(c.anon_vma)).collect();
            let mut flags = Vec::new();
            for (bit, name) in [
                (vmflags::RAND_READ, "rand"),
                (vmflags::SEQ_READ, "seq"),
                (vmflags::DONTCOPY, "dontcopy"),
                (vmflags::WIPEONFORK, "wipeonfork"),
                (vmflags::HUGEPAGE, "hugepage"),
                (vmflags::NOHUGEPAGE, "nohugepage"),
                (vmflags::DONTDUMP, "dontdump"),
                (vmflags::NORESERVE, "noreserve"),
                (vmflags::LOCKED, "locked"),
                (vmflags::LOCKONFAULT, "lockonfault"),
                (vmflags::MERGEABLE, "mergeable"),
            ] {
                if vma.flags & bit != 0 {
                    flags.push(name);
                }
            }
            let _ = writeln!(
                out,
                "  {letter} [{:#x}, {:#x}) {} pages pgoff {:#x} {}{}{} anon_vma {av} chain [{}]",
                vma.start,
                vma.end,
                vma.pages(),
                vma.pgoff,
                Self::prot_string(vma.prot),
                if flags.is_empty() { "" } else { " " },
                flags.join(","),
                chain.join(" ")
            );
        }
        if !used.is_empty() {
            let names: Vec<String> = used.iter().map(|(i, a)| format!("av{i}={:#x}", a.to_u64())).collect();
            let _ = writeln!(out, "  {}", names.join(" "));
        }
        Ok(out)
    }
}

impl Simulator {
    /// The `avN` label of every anon_vma a VMA names (as its anon_vma or on its chain), in
    /// order of first appearance over all processes: pids ascending, each process's VMAs by
    /// address, a VMA's anon_vma before its chain (oldest first).
    fn anon_vma_labels(&self) -> BTreeMap<AnonVmaId, usize> {
        let mut labels = BTreeMap::new();
        for p in self.procs.values() {
            for &v in self.mm(p.mm).vmas.values() {
                let vma = self.vma(v);
                let chain = vma.chain.iter().filter_map(|&c| self.avcs.get(c)).map(|c| c.anon_vma);
                for av in vma.anon_vma.into_iter().chain(chain) {
                    let n = labels.len();
                    labels.entry(av).or_insert(n);
                }
            }
        }
        labels
    }
}

/// One VMA in [`Simulator::graph`]: (pid, start, end, pgoff, prot, anon_vma, chain oldest first).
pub type GraphVma = (u32, u64, u64, u64, u8, Option<u64>, Vec<u64>);
/// One anon_vma: (handle, root, parent, entries on its list or tree).
pub type GraphAnonVma = (u64, u64, u64, usize);

impl Simulator {
    /// The rmap object graph, for drawing (`to_dot` in Python).
    pub fn graph(&self) -> (Vec<GraphVma>, Vec<GraphAnonVma>) {
        let mut vmas = Vec::new();
        for (&pid, p) in &self.procs {
            for &v in self.mm(p.mm).vmas.values() {
                let x = self.vma(v);
                let chain = x.chain.iter().filter_map(|&c| self.avcs.get(c)).map(|c| c.anon_vma.to_u64()).collect();
                vmas.push((pid, x.start, x.end, x.pgoff, x.prot, x.anon_vma.map(|a| a.to_u64()), chain));
            }
        }
        let avs =
            self.avs.iter().map(|(a, x)| (a.to_u64(), x.root.to_u64(), x.parent.to_u64(), x.index.len())).collect();
        (vmas, avs)
    }
}
