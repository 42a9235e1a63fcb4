//! The anon_vma's index of the VMAs that may map its pages: the `same_anon_vma` list of
//! 2.6.33–3.6, or the interval tree (`rb_root`) of 3.7+.

pub mod itree;
pub mod list;
