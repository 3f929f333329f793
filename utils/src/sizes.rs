//! The size index Atoll commits carry (`atoll.sizes`): for every content object a commit
//! introduces (one its parent does not have), its stored (archived) and unpacked size.
//!
//! Entries use libostree's `ostree.sizes` encoding (`checksum[32] ‖ varint archived ‖ varint
//! unpacked ‖ object type`), but the index is *sparse*: a full `ostree.sizes` lists every object
//! of the tree, which for a host tree is some 300 KiB in every commit object, downloaded with
//! every update however small. Listing only what is new keeps a one-package update's commit
//! object small; a client walks the commits between the one it has and the target and adds up
//! the entries it lacks (see `updater::pull::needed`).

use glib::prelude::*;
use glib::translate::IntoGlib;

/// The commit metadata key.
pub const METADATA_KEY: &str = "atoll.sizes";

/// One content object's sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub checksum: String,
    pub archived: u64,
    pub unpacked: u64,
}

/// Encode `entries` (sorted by checksum) as the `aay` metadata value.
pub fn encode(entries: &[Entry]) -> anyhow::Result<glib::Variant> {
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(entries.len());
    for e in entries {
        let mut b =
            hex_to_bytes(&e.checksum).ok_or_else(|| anyhow::anyhow!("`{}` is not a SHA-256 checksum", e.checksum))?;
        put_varint(&mut b, e.archived);
        put_varint(&mut b, e.unpacked);
        b.push(ostree::ObjectType::File.into_glib() as u8);
        out.push(b);
    }
    Ok(out.to_variant())
}

/// The index of a commit object: `None` when the commit has none (or it is malformed).
pub fn of_commit(commit: &glib::Variant) -> Option<Vec<Entry>> {
    let raw = glib::VariantDict::new(Some(&commit.child_value(0))).lookup::<Vec<Vec<u8>>>(METADATA_KEY).ok()??;
    raw.iter().map(|b| decode_entry(b)).collect()
}

fn decode_entry(b: &[u8]) -> Option<Entry> {
    let checksum: String = b.get(..32)?.iter().map(|x| format!("{x:02x}")).collect();
    let mut rest = &b[32..];
    let archived = get_varint(&mut rest)?;
    let unpacked = get_varint(&mut rest)?;
    Some(Entry { checksum, archived, unpacked })
}

fn hex_to_bytes(h: &str) -> Option<Vec<u8>> {
    if h.len() != 64 {
        return None;
    }
    (0..32).map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// Unsigned LEB128, as libostree's `_ostree_write_varuint64`.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn get_varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&x, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit variant (`(a{sv}aya(say)sstayay)`) whose metadata holds `key` = `value`.
    fn commit_with(key: &str, value: &glib::Variant) -> glib::Variant {
        let meta = glib::VariantDict::new(None);
        meta.insert_value(key, value);
        let parent: Vec<u8> = vec![];
        let related: Vec<(String, Vec<u8>)> = vec![];
        glib::Variant::tuple_from_iter([
            meta.end(),
            parent.to_variant(),
            related.to_variant(),
            "subject".to_variant(),
            "body".to_variant(),
            0u64.to_variant(),
            vec![0u8; 32].to_variant(),
            vec![0u8; 32].to_variant(),
        ])
    }

    #[test]
    fn round_trip_and_libostree_reads_the_same_entries() {
        let entries = vec![
            Entry { checksum: "00".repeat(32), archived: 0, unpacked: 0 },
            Entry { checksum: "ab".repeat(32), archived: 127, unpacked: 128 },
            Entry { checksum: "ff".repeat(32), archived: 300_000_000_000, unpacked: 1 << 40 },
        ];
        let v = encode(&entries).unwrap();
        assert_eq!(of_commit(&commit_with(METADATA_KEY, &v)).unwrap(), entries);
        // Same bytes under libostree's own key: its parser agrees entry by entry.
        let theirs = ostree::commit_get_object_sizes(&commit_with("ostree.sizes", &v)).unwrap();
        assert_eq!(theirs.len(), 3);
        for (t, e) in theirs.iter().zip(&entries) {
            assert_eq!(
                (t.checksum().as_str(), t.archived(), t.unpacked()),
                (e.checksum.as_str(), e.archived, e.unpacked)
            );
            assert_eq!(t.objtype(), ostree::ObjectType::File);
        }
        assert!(of_commit(&commit_with("other", &v)).is_none());
        assert!(encode(&[Entry { checksum: "zz".into(), archived: 0, unpacked: 0 }]).is_err());
    }
}
