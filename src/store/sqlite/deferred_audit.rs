//! The audit records of the writer's open transaction, held back and inserted just before its COMMIT.
//!
//! Every write request records what it changed, in the same transaction as the change. Inserted
//! inside the request's own SAVEPOINT, each record's four B-tree pages (the table and its three
//! indexes) were copied into the savepoint's sub-journal first, request after request, and the
//! insert was about a fifth of the writer thread's work (docs/benchmarks.md). Held here instead,
//! a batch's records go in one after another once its last request has run, outside any
//! savepoint, and commit with it or not at all.
//!
//! A request's records go when its savepoint (or a nested `SAVEPOINT change` of the core) is
//! rolled back; all of them go when the transaction is. Nothing reads the audit trail on the
//! writer connection while records are held: the audit API reads through read sessions, which
//! see committed rows only. Pruning deletes committed records only; the records held are those
//! of the transaction it runs in, made moments ago, and newer than any cutoff the server uses
//! (at least a day ago).

use std::cell::RefCell;

use rusqlite::Connection;

use crate::store::AuditEvent;

#[derive(Default)]
pub(super) struct DeferredAudit {
    events: RefCell<Vec<AuditEvent>>,
    /// How many records were held when each open `SAVEPOINT change` began, innermost last.
    changes: RefCell<Vec<usize>>,
}

/// What `DeferredAudit::mark` saw, for `rewind`.
#[derive(Clone, Copy)]
pub(super) struct Mark {
    events: usize,
    changes: usize,
}

impl DeferredAudit {
    pub(super) fn hold(&self, events: impl IntoIterator<Item = AuditEvent>) {
        self.events.borrow_mut().extend(events);
    }

    /// Where a request's savepoint begins.
    pub(super) fn mark(&self) -> Mark {
        Mark {
            events: self.events.borrow().len(),
            changes: self.changes.borrow().len(),
        }
    }

    /// Forgets what was held since `mark`: its savepoint was rolled back, and with it every
    /// savepoint nested in it.
    pub(super) fn rewind(&self, mark: Mark) {
        self.events.borrow_mut().truncate(mark.events);
        self.changes.borrow_mut().truncate(mark.changes);
    }

    pub(super) fn change_begun(&self) {
        let held = self.events.borrow().len();
        self.changes.borrow_mut().push(held);
    }

    pub(super) fn change_released(&self) {
        self.changes.borrow_mut().pop();
    }

    pub(super) fn change_rolled_back(&self) {
        if let Some(held) = self.changes.borrow_mut().pop() {
            self.events.borrow_mut().truncate(held);
        }
    }

    /// The transaction ended without committing what was held.
    pub(super) fn clear(&self) {
        self.events.borrow_mut().clear();
        self.changes.borrow_mut().clear();
    }

    /// Inserts every record held, in the order they were made, on `conn` inside the
    /// transaction about to commit. On an error the caller rolls the transaction back.
    pub(super) fn insert_all(&self, conn: &Connection) -> rusqlite::Result<()> {
        let events = std::mem::take(&mut *self.events.borrow_mut());
        self.changes.borrow_mut().clear();
        for event in &events {
            super::audit::insert_event(conn, event)?;
        }
        Ok(())
    }
}
