//! Package-level views of commits: `db list` and `db diff`, read from the package list that
//! compose stores in each commit's metadata (`atoll.packages`). The list and its diff live in
//! [`atoll_utils::packages`], shared with `host upgrade --preview`.

pub use atoll_utils::packages::{diff, render, Changed, Diff};
