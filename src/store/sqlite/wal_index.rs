//! Whether anything committed since a moment, read from the WAL index without a lock or a system call.
//!
//! Every commit to a database in WAL mode, by any connection of any process, rewrites the header
//! at the start of the WAL index (the `-shm` file every connection maps): its change counter,
//! last frame, salts and checksums. Readers find the newest snapshot by reading that header
//! without a lock, twice, trusting it when the two copies agree
//! (<https://www.sqlite.org/walformat.html#the_wal_index_file_format>). A header read that way
//! and equal to an earlier one means nothing committed in between, which is what the memo
//! (`memo.rs`) must know: it then answers a whole request with no statement, no lock and no
//! system call (two `fcntl` locks and an `fstat` per request otherwise).
//!
//! The header is reached through the connection's own mapping (the VFS's `xShmMap`), so no file
//! is opened or closed here: closing any descriptor of the file would drop the process's POSIX
//! locks on it, SQLite's included.

use rusqlite::{Connection, ffi};

/// One copy of the header (`WalIndexHdr`, 48 bytes), as it stands in memory.
pub(super) type Header = [u8; HEADER_BYTES];

const HEADER_BYTES: usize = 48;
/// `WalIndexHdr.isInit`: 0 until a connection has built the index.
const IS_INIT: usize = 12;
/// The size of the WAL index's regions (`WALINDEX_PGSZ`): region 0 holds the header.
const REGION_BYTES: i32 = 32 * 1024;

/// The connection's current WAL-index header, or `None` when it cannot be trusted or had: the
/// index is not built yet, or a writer is rewriting it. Only for a connection in WAL mode: on
/// another, the VFS would create a `-shm` file.
pub(super) fn header(conn: &Connection) -> Option<Header> {
    // SAFETY: the handle is the live connection's and is used on this thread only, between
    // SQLite calls. The file pointer is the connection's main database file, valid while the
    // connection is open. `xShmMap` without extending returns the mapping SQLite already holds
    // (or null), which stays mapped while this connection is open; only the first two headers,
    // 96 bytes of a 32 KiB region, are read, with volatile reads because other processes write
    // them at any time.
    unsafe {
        let db = conn.handle();
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        let rc = ffi::sqlite3_file_control(
            db,
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
            return None;
        }
        let methods = &*(*file).pMethods;
        let (Some(map), Some(barrier)) = (methods.xShmMap, methods.xShmBarrier) else {
            return None;
        };
        if methods.iVersion < 2 {
            return None;
        }
        let mut region: *mut std::ffi::c_void = std::ptr::null_mut();
        if map(file, 0, REGION_BYTES, 0, &mut region) != ffi::SQLITE_OK || region.is_null() {
            return None;
        }
        let base = region.cast::<u8>();
        // SQLite's own reading order (walIndexTryHdr): the first copy, a barrier, the second. A
        // writer writes them in the other order, so equal copies are a whole header.
        let first = copy(base);
        barrier(file);
        let second = copy(base.add(HEADER_BYTES));
        (first == second && first[IS_INIT] != 0).then_some(first)
    }
}

/// # Safety
/// `from` must point to `HEADER_BYTES` readable bytes.
unsafe fn copy(from: *const u8) -> Header {
    let mut out = [0u8; HEADER_BYTES];
    for (i, byte) in out.iter_mut().enumerate() {
        // SAFETY: within the bytes the caller vouches for.
        *byte = unsafe { std::ptr::read_volatile(from.add(i)) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn a_commit_anywhere_changes_the_header_and_a_read_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        let before = header(&conn).expect("a WAL database has a header");
        let _: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(header(&conn), Some(before), "reading changes nothing");
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let after = header(&conn).expect("still readable");
        assert_ne!(after, before, "another connection's commit");
        conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_ne!(header(&conn), Some(after), "this connection's commit");
        let rollback = header(&conn);
        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (3); ROLLBACK")
            .unwrap();
        assert_eq!(header(&conn), rollback, "a rollback commits nothing");
    }
}
