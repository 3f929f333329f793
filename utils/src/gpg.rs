//! Importing GPG keys for an OSTree remote.

use anyhow::{bail, Context, Result};
use glib::translate::{from_glib_full, ToGlibPtr};
use ostree::gio;
use ostree::gio::prelude::*;

/// Import every key in `key` (armored or binary) for `remote`, returning how many were imported.
///
/// The ostree-rs binding of `ostree_repo_remote_gpg_import` turns an empty key-id list into an
/// empty array, which libostree reads as "import none of them"; "all keys" needs NULL.
pub fn import_all_keys(repo: &ostree::Repo, remote: &str, key: &[u8]) -> Result<u32> {
    let stream = gio::MemoryInputStream::from_bytes(&glib::Bytes::from(key));
    let mut imported: u32 = 0;
    let mut error = std::ptr::null_mut();
    let name: glib::GString = remote.into();
    // SAFETY: every pointer is valid for the call: the repo and stream are live GObjects, the
    // name a NUL-terminated string, key_ids NULL (import all), out-params point to locals.
    let ok = unsafe {
        ostree::ffi::ostree_repo_remote_gpg_import(
            repo.to_glib_none().0,
            name.as_ptr(),
            stream.upcast_ref::<gio::InputStream>().to_glib_none().0,
            std::ptr::null(),
            &mut imported,
            std::ptr::null_mut(),
            &mut error,
        )
    };
    if ok == glib::ffi::GFALSE {
        // SAFETY: on failure libostree set `error` to an owned GError.
        let e: glib::Error = unsafe { from_glib_full(error) };
        return Err(e).with_context(|| format!("importing GPG keys for remote {remote}"));
    }
    if imported == 0 {
        bail!("no GPG key found to import for remote {remote}");
    }
    Ok(imported)
}
